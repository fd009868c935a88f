"""Scoring rankings of chunks against BEIR qrels: passages, fusion, nDCG@10 and recall.

The api ranks chunks, BEIR judges passages. A passage longer than one chunk (800
characters) is several chunks, so a chunk ranking becomes a passage ranking by each
passage's best chunk (its first appearance: "max-passage"). A document stands for every
passage of identical text (the api stores one document per content hash; ArguAna has 48
such repeats): they share its place, in corpus order, as BEIR would rank equal texts. The
query's own id is then dropped (BEIR's `ignore_identical_ids`, needed on ArguAna, whose
queries are also passages), and the list cut at MAX_DEPTH.

The measures are trec_eval's, through pytrec_eval (the terrier team's maintained build), as
BEIR computes them: `ndcg_cut.10` and `recall.N`. pytrec_eval leaves out a query for which
the run holds nothing; here every test query counts, such a query scoring 0.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import pytrec_eval

MAX_DEPTH = 100  # passages kept per query: recall@100 needs no more
MEASURES = ("ndcg_cut_10", "recall_50", "recall_100")


def passages_of(
    chunk_ranking: Sequence[int],
    document_of: Mapping[int, str],
    passages_of_document: Mapping[str, Sequence[str]],
    query_id: str,
    depth: int = MAX_DEPTH,
) -> list[str]:
    """The passage ranking of a chunk ranking (see the module docstring)."""
    out: list[str] = []
    seen_docs: set[str] = set()
    for chunk in chunk_ranking:
        doc = document_of[chunk]
        if doc in seen_docs:
            continue
        seen_docs.add(doc)
        for pid in passages_of_document[doc]:
            if pid != query_id:
                out.append(pid)
        if len(out) >= depth:
            break
    return out[:depth]


def rrf(rankings: Sequence[Sequence[int]], weights: Sequence[float], k: float, candidates: int) -> list[int]:
    """Reciprocal rank fusion as the api's SQL does it: sum of weight/(k + rank) over the
    first `candidates` of each ranking, best first, ties by chunk id."""
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, chunk in enumerate(ranking[:candidates], 1):
            scores[chunk] = scores.get(chunk, 0.0) + weight / (k + rank)
    return sorted(scores, key=lambda c: (-scores[c], c))


def evaluate(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Mean nDCG@10, recall@50 and recall@100 over every query of `qrels`."""
    trec_run = {q: {pid: float(len(ranked) - i) for i, pid in enumerate(ranked)} for q, ranked in run.items()}
    trec_run = {q: r for q, r in trec_run.items() if r}
    evaluator = pytrec_eval.RelevanceEvaluator(
        {q: dict(rel) for q, rel in qrels.items()}, {"ndcg_cut.10", "recall.50", "recall.100"}
    )
    per_query = evaluator.evaluate(trec_run)
    return {
        m: statistics.fmean(per_query.get(q, {}).get(m, 0.0) for q in qrels) if qrels else 0.0
        for m in MEASURES
    }
