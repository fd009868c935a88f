"""A BEIR-format data set read for `bench retrieval`: corpus, queries, test qrels.

The layout is BEIR's own (what its `GenericDataLoader` reads): `corpus.jsonl` (or
`corpus.jsonl.gz`) of `{"_id", "title", "text"}`, `queries.jsonl` of `{"_id", "text"}`, and
`qrels/test.tsv` with a `query-id corpus-id score` header. Only queries that have a test
qrel are evaluated, as in BEIR. A qrel may name a passage that is not in the corpus (ArguAna
has five): the query stays and scores 0 on it, as with BEIR and pytrec_eval.

Anything else malformed is refused with one sentence naming the file and line, before a
single passage is uploaded: a benchmark that silently skipped lines would measure another
data set than the one named.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The api refuses a longer `q` (rag_api.search.MAX_QUERY_CHARS, docs/contract.md §4).
API_MAX_QUERY_CHARS = 1000


class RetrievalDataError(ValueError):
    """The folder is not a usable BEIR data set; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    title: str
    text: str

    def document(self) -> bytes:
        """The uploaded file: the title, a blank line, the text (the title alone when it is blank)."""
        title, text = self.title.strip(), self.text.strip()
        return (f"{title}\n\n{text}" if title and text else title or text).encode()

    def sha256(self) -> str:
        return hashlib.sha256(self.document()).hexdigest()


@dataclass
class Dataset:
    folder: Path
    passages: list[Passage]
    queries: dict[str, str]  # id → text, only the queries of the test qrels
    qrels: dict[str, dict[str, int]]  # query id → passage id → relevance
    missing_relevant: int = 0  # qrel passages absent from the corpus
    subset: bool = False  # cut by load(max_queries=, max_passages=): a smoke run

    def api_query(self, query_id: str) -> str:
        return api_query_text(self.queries[query_id])


def api_query_text(text: str, limit: int = API_MAX_QUERY_CHARS) -> str:
    """The query as the api can take it: at most `limit` characters, cut at a word boundary.

    Why: the api refuses a longer `q` with 400, and more than half of ArguAna's queries (whole
    arguments) are longer. MiniLM reads only the first 256 word pieces anyway (about 1,000
    characters of English), so the vector side loses little; the full-text side loses the
    words past the cut, which the bench measures as a variant on the full text.
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    return text[: cut if cut > 0 else limit].strip()


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield number, line
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise RetrievalDataError(f"{path}: cannot be read ({exc})") from None


def _json_object(path: Path, number: int, line: str) -> dict[str, object]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RetrievalDataError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("_id"), str) or not obj["_id"]:
        raise RetrievalDataError(f'{path}:{number}: not an object with a string "_id"')
    for key in ("title", "text"):
        if key in obj and not isinstance(obj[key], str):
            raise RetrievalDataError(f'{path}:{number}: "{key}" is not a string')
    return obj


def _corpus_path(folder: Path) -> Path:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise RetrievalDataError(f"{folder}: no corpus.jsonl or corpus.jsonl.gz")


def read_corpus(folder: Path) -> list[Passage]:
    path = _corpus_path(folder)
    passages: list[Passage] = []
    seen: set[str] = set()
    for number, line in _lines(path):
        obj = _json_object(path, number, line)
        pid = str(obj["_id"])
        if pid in seen:
            raise RetrievalDataError(f"{path}:{number}: passage id {pid!r} is repeated")
        seen.add(pid)
        passage = Passage(pid, str(obj.get("title", "")), str(obj.get("text", "")))
        if not passage.document():
            raise RetrievalDataError(f"{path}:{number}: passage {pid!r} has neither title nor text")
        passages.append(passage)
    if not passages:
        raise RetrievalDataError(f"{path}: no passages")
    return passages


def read_queries(folder: Path) -> dict[str, str]:
    path = folder / "queries.jsonl"
    if not path.is_file():
        raise RetrievalDataError(f"{folder}: no queries.jsonl")
    queries: dict[str, str] = {}
    for number, line in _lines(path):
        obj = _json_object(path, number, line)
        qid = str(obj["_id"])
        if qid in queries:
            raise RetrievalDataError(f"{path}:{number}: query id {qid!r} is repeated")
        queries[qid] = str(obj.get("text", ""))
    return queries


def read_qrels(folder: Path) -> dict[str, dict[str, int]]:
    """qrels/test.tsv (CRLF line ends, as ArguAna's, are fine: csv reads them)."""
    path = folder / "qrels" / "test.tsv"
    if not path.is_file():
        raise RetrievalDataError(f"{folder}: no qrels/test.tsv")
    qrels: dict[str, dict[str, int]] = {}
    text = "".join(line for _, line in _lines(path))
    rows = list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or [c.strip() for c in rows[0]] != ["query-id", "corpus-id", "score"]:
        raise RetrievalDataError(f"{path}: the first line must be the header query-id, corpus-id, score")
    for number, row in enumerate(rows[1:], 2):
        cells = [c.strip() for c in row]
        if len(cells) != 3 or not cells[0] or not cells[1]:
            raise RetrievalDataError(f"{path}:{number}: expected three tab-separated columns")
        try:
            score = int(cells[2])
        except ValueError:
            raise RetrievalDataError(f"{path}:{number}: score {cells[2]!r} is not an integer") from None
        qrels.setdefault(cells[0], {})[cells[1]] = score
    if not qrels:
        raise RetrievalDataError(f"{path}: no qrels")
    return qrels


def load(folder: Path, *, max_queries: int | None = None, max_passages: int | None = None) -> Dataset:
    """The data set of `folder`, optionally cut to a subset (a quick run).

    A subset keeps the first `max_queries` test queries and a corpus of their relevant
    passages, their own passages (a query that is also a passage, as in ArguAna), then the
    first passages of the file up to `max_passages`: fewer distractors, so its figures are
    higher than the whole set's and only good for a smoke run.
    """
    if not folder.is_dir():
        raise RetrievalDataError(f"{folder}: not a folder")
    passages = read_corpus(folder)
    all_queries = read_queries(folder)
    qrels = read_qrels(folder)
    unknown = sorted(set(qrels) - set(all_queries))
    if unknown:
        raise RetrievalDataError(
            f"{folder}: {len(unknown)} qrel query ids are not in queries.jsonl (first: {unknown[0]!r})"
        )
    query_ids = [q for q in all_queries if q in qrels]
    if max_queries is not None:
        query_ids = query_ids[:max_queries]
    for qid in query_ids:
        if not api_query_text(all_queries[qid]):
            raise RetrievalDataError(f"{folder}: query {qid!r} has no text")
    qrels = {q: qrels[q] for q in query_ids}
    if max_passages is not None:
        wanted = {p for q in query_ids for p in qrels[q]} | set(query_ids)
        keep = [p for p in passages if p.id in wanted]
        for p in passages:
            if len(keep) >= max_passages:
                break
            if p.id not in wanted:
                keep.append(p)
        passages = keep
    ids = {p.id for p in passages}
    missing = sum(1 for q in qrels for p in qrels[q] if p not in ids)
    subset = max_queries is not None or max_passages is not None
    return Dataset(folder, passages, {q: all_queries[q] for q in query_ids}, qrels, missing, subset)
