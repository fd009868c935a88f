"""bench retrieval: its scoring against hand-computed cases, its reading of BEIR folders
(malformed ones refused before anything is uploaded), and one run end to end on the small
fixture through a real system (api, parse and ingest workers with minilm, moto S3).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import re
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.common import Bench
from bench.retrieval import run
from bench.retrieval_data import Passage, RetrievalDataError, api_query_text, load
from bench.retrieval_eval import evaluate, passages_of, rrf

FIXTURE = Path(__file__).parents[2] / "bench" / "fixtures" / "retrieval-mini"


# -- the measures, by hand ------------------------------------------------------------------


def test_ndcg_at_10_is_trec_evals_with_one_relevant_passage() -> None:
    qrels = {"q": {"rel": 1}}

    def at(rank: int) -> list[str]:
        return [f"n{i}" for i in range(rank - 1)] + ["rel"]

    assert evaluate(qrels, {"q": at(1)})["ndcg_cut_10"] == pytest.approx(1.0)
    assert evaluate(qrels, {"q": at(3)})["ndcg_cut_10"] == pytest.approx(0.5)  # 1 / log2(4)
    assert evaluate(qrels, {"q": at(10)})["ndcg_cut_10"] == pytest.approx(1 / math.log2(11))
    deep = evaluate(qrels, {"q": at(11)})
    assert deep["ndcg_cut_10"] == 0.0 and deep["recall_50"] == 1.0 and deep["recall_100"] == 1.0
    far = evaluate(qrels, {"q": at(51)})
    assert far["recall_50"] == 0.0 and far["recall_100"] == 1.0


def test_ndcg_uses_linear_gains_and_the_ideal_order() -> None:
    # trec_eval's nDCG: gain = relevance (not 2^rel - 1), discount log2(rank + 1).
    qrels = {"q": {"a": 2, "b": 1}}
    dcg = 1 / math.log2(2) + 2 / math.log2(3)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert evaluate(qrels, {"q": ["b", "a"]})["ndcg_cut_10"] == pytest.approx(dcg / ideal)
    two = {"q": {"a": 1, "b": 1}}
    assert evaluate(two, {"q": ["a", "x", "b"]})["ndcg_cut_10"] == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert evaluate(two, {"q": ["a"]})["recall_100"] == pytest.approx(0.5)


def test_every_test_query_counts_an_empty_or_missing_ranking_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    m = evaluate(qrels, {"q1": ["a"], "q2": []})
    assert m["ndcg_cut_10"] == pytest.approx(1 / 3)
    assert m["recall_100"] == pytest.approx(1 / 3)


def test_chunks_become_passages_by_their_best_chunk_without_the_query_itself() -> None:
    document_of = {1: "d-self", 2: "d-a", 3: "d-a", 4: "d-twins", 5: "d-b"}
    passages = {"d-self": ["q"], "d-a": ["a"], "d-twins": ["t1", "t2"], "d-b": ["b"]}
    # chunk 3 repeats d-a (its second chunk): counted once; twins share their document's place.
    assert passages_of([1, 2, 3, 4, 5], document_of, passages, "q") == ["a", "t1", "t2", "b"]
    assert passages_of([1, 2, 3, 4, 5], document_of, passages, "other") == ["q", "a", "t1", "t2", "b"]
    assert passages_of([1, 2, 4, 5], document_of, passages, "q", depth=2) == ["a", "t1"]


def test_rrf_is_the_apis_fusion() -> None:
    vector, full_text = [10, 20, 30], [30, 40]
    # 10: 1/61; 20: 1/62; 30: 1/63 + 1/61; 40: 1/62 (ties with 20: by chunk id)
    assert rrf([vector, full_text], (1.0, 1.0), 60, 50) == [30, 10, 20, 40]
    assert rrf([vector, full_text], (1.0, 1.0), 60, 1) == [10, 30]
    # weighted 1 : 3, 40 (3/61) passes 10 (1/61); 30 stays first (1/63 + 3/62)
    assert rrf([vector, [40, 30]], (1.0, 1.0), 60, 50) == [30, 10, 40, 20]
    assert rrf([vector, [40, 30]], (1.0, 3.0), 60, 50) == [30, 40, 10, 20]


# -- reading a folder ------------------------------------------------------------------------


def test_queries_are_cut_for_the_api_at_a_word_boundary() -> None:
    text = "word " * 400
    cut = api_query_text(text)
    assert len(cut) <= 1000 and cut.endswith("word") and cut == " ".join(cut.split())
    assert api_query_text("  two\n\nlines  ") == "two lines"
    assert len(api_query_text("x" * 1500)) == 1000  # one long token: cut inside it


def test_the_fixture_reads_as_beir_does() -> None:
    ds = load(FIXTURE)
    assert len(ds.passages) == 9
    assert set(ds.queries) == {"q-ships", "q-valleys", "q-bread", "arg-rail", "q-missing"}  # not q-unjudged
    assert ds.qrels["arg-rail"] == {"p-rail-counter": 1}  # CRLF line ends read
    assert ds.missing_relevant == 1
    assert Passage("p", "Title", "Text").document() == b"Title\n\nText"
    assert Passage("p", " ", "Text").document() == b"Text"


def _folder(tmp_path: Path, corpus: str, queries: str, qrels: str, *, gz: bool = False) -> Path:
    (tmp_path / "qrels").mkdir(exist_ok=True)
    if gz:
        (tmp_path / "corpus.jsonl.gz").write_bytes(gzip.compress(corpus.encode()))
    else:
        (tmp_path / "corpus.jsonl").write_text(corpus)
    (tmp_path / "queries.jsonl").write_text(queries)
    (tmp_path / "qrels" / "test.tsv").write_text(qrels)
    return tmp_path


GOOD_CORPUS = json.dumps({"_id": "p1", "title": "", "text": "some text"}) + "\n"
GOOD_QUERIES = json.dumps({"_id": "q1", "text": "a query"}) + "\n"
GOOD_QRELS = "query-id\tcorpus-id\tscore\nq1\tp1\t1\n"


def test_a_gzipped_corpus_reads_like_a_plain_one(tmp_path: Path) -> None:
    ds = load(_folder(tmp_path, GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS, gz=True))
    assert [p.id for p in ds.passages] == ["p1"] and ds.qrels == {"q1": {"p1": 1}}


@pytest.mark.parametrize(
    ("corpus", "queries", "qrels", "message"),
    [
        ("", GOOD_QUERIES, GOOD_QRELS, "no passages"),
        ("{not json\n", GOOD_QUERIES, GOOD_QRELS, "corpus.jsonl:1: not a JSON line"),
        ('{"title": "no id"}\n', GOOD_QUERIES, GOOD_QRELS, 'not an object with a string "_id"'),
        ('{"_id": "p1", "text": 5}\n', GOOD_QUERIES, GOOD_QRELS, '"text" is not a string'),
        (GOOD_CORPUS * 2, GOOD_QUERIES, GOOD_QRELS, "corpus.jsonl:2: passage id 'p1' is repeated"),
        ('{"_id": "p1", "title": " ", "text": ""}\n', GOOD_QUERIES, GOOD_QRELS, "has neither title nor text"),
        (GOOD_CORPUS, GOOD_QUERIES * 2, GOOD_QRELS, "query id 'q1' is repeated"),
        (GOOD_CORPUS, '{"_id": "q1", "text": "  "}\n', GOOD_QRELS, "query 'q1' has no text"),
        (GOOD_CORPUS, GOOD_QUERIES, "q1\tp1\t1\n", "the first line must be the header"),
        (GOOD_CORPUS, GOOD_QUERIES, "query-id\tcorpus-id\tscore\n", "no qrels"),
        (GOOD_CORPUS, GOOD_QUERIES, "query-id\tcorpus-id\tscore\nq1\tp1\n", "test.tsv:2: expected three"),
        (GOOD_CORPUS, GOOD_QUERIES, "query-id\tcorpus-id\tscore\nq1\tp1\thigh\n", "'high' is not an integer"),
        (GOOD_CORPUS, GOOD_QUERIES, "query-id\tcorpus-id\tscore\nq9\tp1\t1\n", "not in queries.jsonl"),
    ],
)
def test_a_malformed_folder_is_refused_with_where_and_why(
    tmp_path: Path, corpus: str, queries: str, qrels: str, message: str
) -> None:
    with pytest.raises(RetrievalDataError, match=re.escape(message)):
        load(_folder(tmp_path, corpus, queries, qrels))


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(RetrievalDataError, match="not a folder"):
        load(tmp_path / "absent")
    with pytest.raises(RetrievalDataError, match=r"no corpus\.jsonl or corpus\.jsonl\.gz"):
        load(tmp_path)
    (tmp_path / "corpus.jsonl").write_text(GOOD_CORPUS)
    with pytest.raises(RetrievalDataError, match=r"no queries\.jsonl"):
        load(tmp_path)
    (tmp_path / "queries.jsonl").write_text(GOOD_QUERIES)
    with pytest.raises(RetrievalDataError, match=r"no qrels/test\.tsv"):
        load(tmp_path)
    (tmp_path / "corpus.jsonl.gz").unlink(missing_ok=True)
    (tmp_path / "corpus.jsonl").write_bytes(b"\xff\xfe\n")
    with pytest.raises(RetrievalDataError, match="cannot be read"):
        load(tmp_path)


def test_a_subset_keeps_its_queries_relevant_and_own_passages(tmp_path: Path) -> None:
    ds = load(FIXTURE, max_queries=2, max_passages=3)
    assert list(ds.queries) == ["q-ships", "q-valleys"]
    ids = [p.id for p in ds.passages]
    assert {"p-lighthouse", "p-glacier"} <= set(ids) and len(ids) == 3


def test_the_command_line_takes_a_folder_after_retrieval_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["retrieval", "/no/such/folder"])
    assert exc.value.code == 2 and "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["wakeup", str(FIXTURE)])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.timeout(900)  # three processes and the model's load: minutes on a loaded 2-core machine
def test_the_bench_scores_the_fixture_through_the_real_api(pg_admin_dsn: str, tmp_path: Path) -> None:
    """Every query's relevant passage is first in each mode, once the query's own passage
    (arg-rail, first in every raw ranking) is dropped; q-missing's relevant passage is not in
    the corpus: 4 of 5 queries score 1, so nDCG@10 = recall = 0.8, whatever the mode."""
    bench = Bench(admin_dsn=pg_admin_dsn, quick=False, work_dir=tmp_path)
    section = asyncio.run(run(bench, data=FIXTURE))
    d = section.details
    assert (d["passages"], d["documents"], d["queries"], d["missing_relevant"]) == (9, 8, 5, 1)
    assert d["api_agreement"] == 1.0 and d["api_agreement_exact"] == 1.0  # the pieces fused = the api
    results = d["results"]
    for name in (
        "hybrid, the api as shipped",
        "full-text alone, the api's side",
        "vector alone, the api's side",
    ):
        assert results[name]["ndcg_cut_10"] == pytest.approx(0.8), name
        assert results[name]["recall_50"] == pytest.approx(0.8), name
    # The ranking and fusion the api had before ArguAna was measured, from the same pieces.
    assert results["hybrid, the api before this measure"]["ndcg_cut_10"] == pytest.approx(0.8)
    assert "full-text variant: or(english) · chunk tsv · ts_rank_cd" in results
    assert "| hybrid, the api as shipped | GET /search, k=50 | 0.800 | 0.800 | n/a |" in section.extra
    assert section.rows[0].name == "hybrid (api): nDCG@10"
