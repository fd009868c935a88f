"""9. Retrieval quality: a BEIR data set through the real api, scored as BEIR scores it.

`python -m bench retrieval [FOLDER]` (default: ArguAna's test split in ../shared/data/):
every passage is uploaded as a document (title + text, 100 files a request) into a fresh
workspace of a real system (api, parse worker, ingest worker with the `minilm` embedder),
and once all are `ingested` every test query goes through `GET /api/workspaces/{id}/search`
with k=50, the api's largest. The api's hybrid is what the product serves; full-text alone
and vector alone are not api modes, so they are the same SQL pieces run directly on the
bench's database with the same query text (bench/retrieval_sql.py), as are the variants
that would change the api (the full-text query and ranking, RRF k and weights, candidate
counts, a title field). The bench checks that its pieces, fused as the api fuses them, give
the api's own answers. Scoring: bench/retrieval_eval.py.

The ingest is most of the run (ArguAna: about 15 minutes on 2 cores). To score a ranking
change without it, keep a copy of an ingested database (`pg_dump` of the bench's database
while it runs, restored anywhere) and name it: `BENCH_RETRIEVAL_DATABASE=<dsn> python -m
bench retrieval` searches its `retrieval` workspace through a fresh api and leaves the
database as it was (the side table of the variants is dropped again).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.common import ROOT, Bench, Row, Section, percentile
from bench.retrieval_data import Dataset, api_query_text, load
from bench.retrieval_eval import MAX_DEPTH, evaluate, passages_of, rrf
from bench.retrieval_sql import (
    API_FULL_TEXT,
    API_VECTOR_SETTINGS,
    BEFORE_FULL_TEXT,
    CHUNK_COUNT,
    CHUNK_DOCUMENTS,
    COPY_TITLES,
    CREATE_SIDE_TABLE,
    DOCUMENT_HASHES,
    DROP_SIDE_TABLE,
    EMBEDDING_MODELS,
    FILL_SIDE_TABLE,
    INDEX_SIDE_TABLE,
    INGEST_PROGRESS,
    INGESTED_WORKSPACE,
    SERVER_VERSIONS,
    VECTOR_EXACT,
    VECTOR_SIDE,
    FullText,
)
from bench.stack import s3
from rag_api.search import ITERATIVE_SCAN, MAX_SCAN_TUPLES
from rag_embedding import MiniLMEmbedder, vector_literal
from rag_testing.system import start_system

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "retrieval" / "arguana"
UPLOAD_BATCH = 100  # MAX_UPLOAD_FILES
API_K = 50  # the api's largest k
API_CANDIDATES = 50  # rag_api.search.CANDIDATES (max(CANDIDATES, k) with k = 50)
API_RRF_K = 60  # rag_api.search.RRF_K
API_WEIGHTS = (2.0, 1.0)  # rag_api.search.VECTOR_WEIGHT, TEXT_WEIGHT
BEFORE_WEIGHTS = (1.0, 1.0)  # the api's fusion until ArguAna was measured
DEEP = 200  # chunks read per side for the variants (recall@100 counts passages, not chunks)
QUICK_QUERIES, QUICK_PASSAGES = 100, 1000
CONCURRENCY = 2  # searches and SQL rankings in flight (the machine has 2 cores)
INGEST_TIMEOUT_S = 4 * 3600
# What the api's vector side sets before its scan (rag_api.search): ef_search = its candidates.
HNSW_SETTINGS = {
    "iterative_scan": ITERATIVE_SCAN,
    "ef_search": API_CANDIDATES,
    "max_scan_tuples": MAX_SCAN_TUPLES,
}

# Published figures on ArguAna's test split (nDCG@10, recall@100), named in the docs.
PUBLISHED = {
    "BM25 (BEIR paper, Elasticsearch)": (0.315, 0.942),
    "all-MiniLM-L6-v2 (MTEB results)": (0.502, 0.977),
}

# The full-text rankings run for every query besides the api's own pieces. Each is a full pass
# over every chunk sharing a word with a 1,000-character query (about 1 s per query here), so
# the whole set ranks only the api's and the one it replaced; the other variants measured on
# the 1,000-passage subset (ts_rank without normalisation or with 2, the `simple`
# configuration, the title field, plainto/websearch tsqueries) all ranked below ts_rank norm 1.
FULL_TEXT_VARIANTS = (API_FULL_TEXT, BEFORE_FULL_TEXT)
SUBSET_VARIANTS = (
    FullText(rank="ts_rank"),
    FullText(rank="ts_rank", norm=2),
    FullText(config="simple", column="tsv_simple", rank="ts_rank", norm=1),
    FullText(column="tsv_titled", rank="ts_rank", norm=1),
)


@dataclass
class Corpus:
    """What the upload made of the data set: documents, chunks, passages."""

    workspace: str
    document_of: dict[int, str]  # chunk id → document id
    passages_of_document: dict[str, list[str]]
    model: str
    chunks: int
    ingest_seconds: float
    server: str  # "Postgres N, pgvector M"


# -- through the api -----------------------------------------------------------------------


async def upload(client: httpx.AsyncClient, workspace: str, ds: Dataset) -> None:
    for start in range(0, len(ds.passages), UPLOAD_BATCH):
        batch = ds.passages[start : start + UPLOAD_BATCH]
        files = [
            ("files", (f"passage-{start + i}.txt", p.document(), "text/plain")) for i, p in enumerate(batch)
        ]
        response = await client.post(f"/api/workspaces/{workspace}/documents/upload", files=files)
        if response.status_code != 201 or response.json()["errors"]:
            raise RuntimeError(f"upload failed: {response.status_code} {response.text[:300]}")


async def wait_ingested(dsn: str, workspace: str, documents: int) -> float:
    """Returns once every document is ingested: the highest 1-minute load average seen meanwhile."""
    peak = 0.0
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + INGEST_TIMEOUT_S
        last_print = 0.0
        while True:
            cur = await conn.execute(INGEST_PROGRESS, (workspace,))
            ingested, errors, total = await cur.fetchone() or (0, 0, 0)
            if errors:
                raise RuntimeError(f"{errors} documents ended in error")
            peak = max(peak, os.getloadavg()[0])
            if ingested == total == documents:
                return peak
            if time.monotonic() - last_print > 60:
                print(f"bench: retrieval: {ingested:,} of {documents:,} documents ingested", flush=True)
                last_print = time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {ingested} of {documents} documents ingested in time")
            await asyncio.sleep(1)


async def api_search(
    base_url: str, token: str, workspace: str, queries: dict[str, str]
) -> tuple[dict[str, list[int]], list[float]]:
    """Every query through the api (k=50): chunk ids, best first, and each call's latency (ms)."""
    results: dict[str, list[int]] = {}
    latencies: list[float] = []
    todo = list(queries.items())
    headers = {"Authorization": f"Bearer {token}"}

    async def worker(client: httpx.AsyncClient) -> None:
        while todo:
            qid, text = todo.pop()
            t0 = time.perf_counter()
            response = await client.get(f"/api/workspaces/{workspace}/search", params={"q": text, "k": API_K})
            latencies.append(1000 * (time.perf_counter() - t0))
            if response.status_code != 200:
                raise RuntimeError(f"search {qid}: {response.status_code} {response.text[:300]}")
            results[qid] = [item["chunk_id"] for item in response.json()["items"]]

    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return results, latencies


async def ingested_workspace(dsn: str, documents: int) -> tuple[str, uuid.UUID]:
    """The `retrieval` workspace of a kept database and its owner; it must hold the data set."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(INGESTED_WORKSPACE)
        row = await cur.fetchone()
        if row is None:
            raise RuntimeError("BENCH_RETRIEVAL_DATABASE holds no workspace named 'retrieval'")
        workspace, owner = str(row[0]), row[1]
        progress = await (await conn.execute(INGEST_PROGRESS, (workspace,))).fetchone()
    ingested, _, total = progress or (0, 0, 0)
    if not ingested == total == documents:
        raise RuntimeError(
            f"BENCH_RETRIEVAL_DATABASE: {ingested} of {total} documents ingested, the data set has {documents}"
        )
    return workspace, owner


async def drop_side_table(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(DROP_SIDE_TABLE)


# -- the same pieces, directly -------------------------------------------------------------


async def corpus_of(dsn: str, workspace: str, ds: Dataset, ingest_seconds: float) -> Corpus:
    """Map chunks to passages (through each document's content hash) and build the side table."""
    by_hash: dict[str, list[str]] = {}
    title_of = {p.id: p.title.strip() for p in ds.passages}
    for p in ds.passages:
        by_hash.setdefault(p.sha256(), []).append(p.id)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        docs = await (await conn.execute(DOCUMENT_HASHES, (workspace,))).fetchall()
        passages_of_document = {doc: by_hash[sha] for doc, sha, _ in docs}
        rows = await (await conn.execute(CHUNK_DOCUMENTS, (workspace,))).fetchall()
        models = [m for (m,) in await (await conn.execute(EMBEDDING_MODELS, (workspace,))).fetchall()]
        if len(models) != 1:
            raise RuntimeError(f"expected one embedding model in the workspace, found {models}")
        await conn.execute(DROP_SIDE_TABLE)  # a kept database may hold an earlier run's
        for statement in CREATE_SIDE_TABLE.split(";"):
            await conn.execute(statement)
        async with conn.cursor() as cur, cur.copy(COPY_TITLES) as copy:
            for doc, pids in passages_of_document.items():
                await copy.write_row((doc, title_of[pids[0]]))
        await conn.execute(FILL_SIDE_TABLE)
        for statement in INDEX_SIDE_TABLE.split(";"):
            await conn.execute(statement)
        (chunks,) = await (await conn.execute(CHUNK_COUNT, (workspace,))).fetchone() or (0,)
        (server,) = await (await conn.execute(SERVER_VERSIONS)).fetchone() or ("?",)
    return Corpus(
        workspace,
        {int(c): d for c, d in rows},
        passages_of_document,
        models[0],
        int(chunks),
        ingest_seconds,
        str(server),
    )


async def embed_queries(texts: dict[str, str]) -> dict[str, str]:
    """Each query's vector in pgvector's text form, by the api's own embedder code, one query
    per call as the api embeds it (a batch packs its sequences into larger matrix products,
    whose sums may round otherwise in the last bits)."""
    embedder = MiniLMEmbedder()
    return {q: vector_literal((await embedder.embed([text]))[0]) for q, text in texts.items()}


async def sql_rankings(
    dsn: str, corpus: Corpus, ds: Dataset, vectors: dict[str, str]
) -> dict[str, dict[str, list[int]]]:
    """Per ranking name, per query: chunk ids, best first. A subset also ranks the subset's
    variants and the whole (uncut) query."""
    variants_ranked = FULL_TEXT_VARIANTS + (SUBSET_VARIANTS if ds.subset else ())
    names = ["vector hnsw", "vector exact"] + [v.label() for v in variants_ranked]
    out: dict[str, dict[str, list[int]]] = {name: {} for name in names + ["full query"] * ds.subset}
    statements = [(v.label(), v.statement()) for v in variants_ranked]
    todo = list(ds.queries)
    done = 0

    async def worker() -> None:
        nonlocal done
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            while todo:
                qid = todo.pop()
                base = {"workspace": corpus.workspace, "model": corpus.model, "vector": vectors[qid]}
                q = ds.api_query(qid)
                async with conn.transaction():
                    await conn.execute(API_VECTOR_SETTINGS, HNSW_SETTINGS)
                    cur = await conn.execute(VECTOR_SIDE, {**base, "candidates": API_CANDIDATES})
                    out["vector hnsw"][qid] = [r[0] for r in await cur.fetchall()]
                async with conn.transaction():
                    await conn.execute("SET LOCAL enable_indexscan = off")
                    cur = await conn.execute(VECTOR_EXACT, {**base, "candidates": DEEP})
                    out["vector exact"][qid] = [r[0] for r in await cur.fetchall()]
                for label, statement in statements:
                    cur = await conn.execute(statement, {**base, "q": q, "candidates": DEEP})
                    out[label][qid] = [r[0] for r in await cur.fetchall()]
                if ds.subset:
                    full = " ".join(ds.queries[qid].split())
                    cur = await conn.execute(
                        API_FULL_TEXT.statement(), {**base, "q": full, "candidates": DEEP}
                    )
                    out["full query"][qid] = [r[0] for r in await cur.fetchall()]
                done += 1
                if done % 200 == 0:
                    print(f"bench: retrieval: {done:,} of {len(ds.queries):,} queries ranked", flush=True)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return out


# -- the run -------------------------------------------------------------------------------


async def run(bench: Bench, data: Path | None = None) -> Section:
    folder = data or DEFAULT_DATA
    ds = load(folder, max_queries=QUICK_QUERIES, max_passages=QUICK_PASSAGES) if bench.quick else load(folder)
    documents = len({p.sha256() for p in ds.passages})
    print(
        f"bench: retrieval: {folder}: {len(ds.passages):,} passages ({documents:,} distinct texts), "
        f"{len(ds.queries):,} test queries",
        flush=True,
    )
    reused = os.environ.get("BENCH_RETRIEVAL_DATABASE")
    dsn = reused or bench.database("retrieval")
    try:
        with s3(bench.log_dir) as s3_env:
            log_dir = bench.log_dir / "retrieval"
            log_dir.mkdir(parents=True, exist_ok=True)
            system = await asyncio.to_thread(
                start_system, dsn, s3_env, log_dir, EMBEDDING_PROVIDER="minilm", HF_HUB_OFFLINE="1"
            )
            try:
                user = uuid.uuid4()
                token = system.token(user, ttl_seconds=24 * 3600)
                if reused:
                    workspace, user = await ingested_workspace(dsn, documents)
                    token = system.token(user, ttl_seconds=24 * 3600)
                    ingest_seconds, load_peak = float("nan"), os.getloadavg()[0]
                    print("bench: retrieval: reusing an ingested database; searching", flush=True)
                else:
                    async with httpx.AsyncClient(
                        base_url=system.api.url, headers={"Authorization": f"Bearer {token}"}, timeout=300
                    ) as client:
                        response = await client.post("/api/workspaces", json={"name": "retrieval"})
                        workspace = str(response.json()["id"])
                        t0 = time.monotonic()
                        await upload(client, workspace, ds)
                    load_peak = await wait_ingested(dsn, workspace, documents)
                    ingest_seconds = time.monotonic() - t0
                    print(f"bench: retrieval: all ingested in {ingest_seconds:.0f} s; searching", flush=True)
                api_queries = {q: ds.api_query(q) for q in ds.queries}
                t1 = time.monotonic()
                api_results, latencies = await api_search(system.api.url, token, workspace, api_queries)
                search_seconds = time.monotonic() - t1
            finally:
                await asyncio.to_thread(system.stop)
        corpus = await corpus_of(dsn, workspace, ds, ingest_seconds)
        print("bench: retrieval: embedding the queries for the direct rankings", flush=True)
        vectors = await embed_queries(api_queries)
        rankings = await sql_rankings(dsn, corpus, ds, vectors)
    finally:
        if reused:
            await drop_side_table(dsn)
        else:
            bench.drop_database(dsn)
    return section(ds, corpus, api_results, rankings, latencies, search_seconds, load_peak)


@dataclass
class Result:
    name: str
    how: str
    metrics: dict[str, float]
    depth: str  # what the list holds before the passages are counted


def score(ds: Dataset, corpus: Corpus, chunk_run: Mapping[str, Sequence[int]]) -> dict[str, float]:
    run = {
        q: passages_of(chunk_run.get(q, []), corpus.document_of, corpus.passages_of_document, q, MAX_DEPTH)
        for q in ds.queries
    }
    return evaluate(ds.qrels, run)


def variants(
    ds: Dataset, corpus: Corpus, api: dict[str, list[int]], r: dict[str, dict[str, list[int]]]
) -> tuple[list[Result], tuple[float, float]]:
    """Every measured ranking; and the shares of queries where the bench's fusion of the api's
    pieces gives exactly the api's answer, and the same 50 chunks in any order."""
    fts_api, vec = r[API_FULL_TEXT.label()], r["vector hnsw"]
    exact = r["vector exact"]

    def fused(
        vector: dict[str, list[int]],
        fts: dict[str, list[int]],
        k: float = API_RRF_K,
        weights: tuple[float, float] = API_WEIGHTS,
        candidates: int = API_CANDIDATES,
        cut: int | None = None,
    ) -> dict[str, list[int]]:
        return {q: rrf([vector.get(q, []), fts.get(q, [])], weights, k, candidates)[:cut] for q in ds.queries}

    recomputed = fused(vec, fts_api, cut=API_K)
    n = max(1, len(ds.queries))
    agree = sum(recomputed[q] == api.get(q) for q in ds.queries) / n
    # The api's vector CTE (a window function over the distance) may be planned as an exact
    # scan where the bare query takes the HNSW index: compare with that fusion too.
    exact_fused = fused(exact, fts_api, cut=API_K)
    agree_exact = sum(exact_fused[q] == api.get(q) for q in ds.queries) / n
    out = [
        Result("hybrid, the api as shipped", "GET /search, k=50", score(ds, corpus, api), "50 chunks"),
        Result(
            "hybrid, the api before this measure",
            f"{BEFORE_FULL_TEXT.label()}, weights 1 : 1, the api's vector side; 50 + 50",
            score(ds, corpus, fused(vec, r[BEFORE_FULL_TEXT.label()], weights=BEFORE_WEIGHTS, cut=API_K)),
            "50 chunks",
        ),
        Result(
            "full-text alone, the api's side",
            f"{API_FULL_TEXT.label()}, 50 candidates",
            score(ds, corpus, {q: v[:API_CANDIDATES] for q, v in fts_api.items()}),
            "50 chunks",
        ),
        Result(
            "vector alone, the api's side",
            "HNSW as the api scans (iterative, ef_search 50), 50 candidates",
            score(ds, corpus, vec),
            "≤ 50 chunks",
        ),
        Result(
            "full-text alone, deeper",
            "the api's side, 200 candidates",
            score(ds, corpus, fts_api),
            "200 chunks",
        ),
        Result(
            "vector alone, exact",
            "no index (sequential scan), 200 candidates",
            score(ds, corpus, exact),
            "200 chunks",
        ),
    ]
    if "full query" in r:
        out.append(
            Result(
                "full-text on the whole query",
                "the api's side, the query not cut at 1,000 characters (the api refuses it)",
                score(ds, corpus, r["full query"]),
                "200 chunks",
            )
        )
    ranked = [v for v in FULL_TEXT_VARIANTS + SUBSET_VARIANTS if v.label() in r]
    for v in ranked[1:]:
        out.append(
            Result(
                f"full-text variant: {v.label()}",
                "200 candidates",
                score(ds, corpus, r[v.label()]),
                "200 chunks",
            )
        )
    out.append(
        Result(
            "hybrid, exact vector side",
            "api fusion (k 60, 2 : 1, 50 + 50)",
            score(ds, corpus, fused(exact, fts_api, cut=API_K)),
            "50 chunks",
        )
    )
    for cand in (100, 200):
        out.append(
            Result(
                f"hybrid, {cand} candidates",
                "exact vector, k 60, 2 : 1",
                score(ds, corpus, fused(exact, fts_api, candidates=cand)),
                f"{2 * cand} chunks",
            )
        )
    for k in (10, 30, 100):
        out.append(
            Result(
                f"hybrid, RRF k {k}",
                "exact vector, 2 : 1, 200 + 200",
                score(ds, corpus, fused(exact, fts_api, k=k, candidates=DEEP)),
                "400 chunks",
            )
        )
    for w in ((1.0, 1.0), (3.0, 1.0), (1.0, 2.0)):
        out.append(
            Result(
                f"hybrid, weights vector {w[0]:g} : full-text {w[1]:g}",
                "exact vector, k 60, 200 + 200",
                score(ds, corpus, fused(exact, fts_api, weights=w, candidates=DEEP)),
                "400 chunks",
            )
        )
    best_fts = max(ranked, key=lambda v: score(ds, corpus, r[v.label()])["ndcg_cut_10"])
    for w in ((1.0, 1.0), API_WEIGHTS):
        out.append(
            Result(
                f"hybrid with the best full-text ({best_fts.label()}), weights {w[0]:g} : {w[1]:g}",
                "exact vector, k 60, 200 + 200",
                score(ds, corpus, fused(exact, r[best_fts.label()], weights=w, candidates=DEEP)),
                "400 chunks",
            )
        )
    return out, (agree, agree_exact)


def section(
    ds: Dataset,
    corpus: Corpus,
    api: dict[str, list[int]],
    rankings: dict[str, dict[str, list[int]]],
    latencies: list[float],
    search_seconds: float,
    load_peak: float,
) -> Section:
    results, (agree, agree_exact) = variants(ds, corpus, api, rankings)
    by_name = {r.name: r for r in results}
    best = max(results[1:], key=lambda r: r.metrics["ndcg_cut_10"])
    shipped = by_name["hybrid, the api as shipped"]

    def cells(m: dict[str, float], depth: str) -> str:
        r100 = "n/a" if depth.endswith("50 chunks") else f"{m['recall_100']:.3f}"
        return f"{m['ndcg_cut_10']:.3f} | {m['recall_50']:.3f} | {r100}"

    table = [
        "| ranking | how | nDCG@10 | recall@50 | recall@100 | list read |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        bold = "**" if r is best else ""
        table.append(f"| {bold}{r.name}{bold} | {r.how} | {cells(r.metrics, r.depth)} | {r.depth} |")
    for name, (ndcg, r100) in PUBLISHED.items():
        table.append(
            f"| published: {name} | whole passages, its own tokenisation | {ndcg:.3f} | | {r100:.3f} | passages |"
        )
    rows = [
        Row("retrieval", "hybrid (api): nDCG@10", shipped.metrics["ndcg_cut_10"], ""),
        Row("retrieval", "hybrid (api): recall@50", shipped.metrics["recall_50"], ""),
        Row(
            "retrieval",
            "full-text alone: nDCG@10",
            by_name["full-text alone, the api's side"].metrics["ndcg_cut_10"],
            "",
        ),
        Row(
            "retrieval",
            "vector alone: nDCG@10",
            by_name["vector alone, the api's side"].metrics["ndcg_cut_10"],
            "",
        ),
        Row("retrieval", f"best variant ({best.name}): nDCG@10", best.metrics["ndcg_cut_10"], ""),
    ]
    cut = sum(len(" ".join(t.split())) > len(api_query_text(t)) for t in ds.queries.values())
    details: dict[str, Any] = {
        "folder": ds.folder.name,
        "subset": ds.subset,
        "server": corpus.server,
        "load_average": os.getloadavg()[0],
        "load_peak": load_peak,
        "passages": len(ds.passages),
        "documents": len(corpus.passages_of_document),
        "chunks": corpus.chunks,
        "queries": len(ds.queries),
        "queries_cut": cut,
        "missing_relevant": ds.missing_relevant,
        "ingest_seconds": corpus.ingest_seconds,
        "search_seconds": search_seconds,
        "search_ms_p50": percentile(latencies, 50),
        "search_ms_p95": percentile(latencies, 95),
        "api_agreement": agree,
        "api_agreement_exact": agree_exact,
        "best": best.name,
        "results": {r.name: r.metrics for r in results},
    }
    return Section(
        "retrieval",
        "9. Retrieval quality (BEIR)",
        rows,
        method(details),
        limits=limits(details),
        extra="\n".join(table),
        details=details,
    )


def method(d: dict[str, Any]) -> str:
    subset = (
        " **A subset** (the first test queries, their relevant and own passages, then the corpus's first "
        "passages): fewer distractors than the whole set, so higher figures, not comparable with the "
        "published ones. The whole set is `python -m bench retrieval` without --quick: about 17,000 "
        "chunks to embed on the CPU and six direct rankings of each of its 1,406 queries (the whole set "
        "ranks the api's and the previous full-text ranking only; the subset's variants are below)."
        if d["subset"]
        else ""
    )
    return (
        f"Data: `{d['folder']}` ({d['passages']:,} passages, {d['documents']:,} distinct texts, "
        f"{d['chunks']:,} chunks; {d['queries']:,} test queries, {d['queries_cut']:,} of them cut to "
        f"1,000 characters; {d['missing_relevant']} relevant passages absent from the corpus). "
        f"Ingest (upload → all `ingested`, minilm on the CPU): {ingest_text(d)}; "
        f"{d['queries']:,} api searches in {d['search_seconds']:.0f} s (p50 {d['search_ms_p50']:.0f} ms, "
        f"p95 {d['search_ms_p95']:.0f} ms, {CONCURRENCY} at a time). {agreement(d)} "
        f"{d['server']}; 1-minute load average up to {d['load_peak']:.0f} during the ingest (2 cores "
        f"shared with other work), {d['load_average']:.0f} at the end.{subset} "
        "nDCG@10 and recall are trec_eval's (pytrec_eval) over passages: a chunk ranking becomes a "
        "passage ranking by each passage's best chunk, the query's own passage is dropped as BEIR does, "
        "every test query counts (one with nothing found scores 0). recall@100 needs 100 passages: the "
        "api's k is capped at 50 chunks, so the api's own rankings show recall@50 only (n/a below); the "
        "direct rankings read 200 chunks per side. The published figures rank whole passages with their "
        "own tokenisation and models (BM25: the BEIR paper's Elasticsearch run; all-MiniLM-L6-v2: the "
        "MTEB results of sentence-transformers' model, ArguAna test split). "
        + (
            ""
            if d["subset"]
            else "The other full-text variants (ts_rank without normalisation or with 2, the `simple` "
            "configuration, the title field with weight A, plainto/websearch tsqueries) were measured on "
            "the 1,000-passage subset (`--quick`) and ranked below ts_rank with normalisation 1; the whole "
            "set leaves them out, each being one more pass over every chunk that shares a word with the "
            "query, about a second per query here."
        )
    )


def ingest_text(d: dict[str, Any]) -> str:
    if math.isnan(d["ingest_seconds"]):
        return "not in this run (BENCH_RETRIEVAL_DATABASE: a kept copy of an earlier run's ingested database)"
    return f"{d['ingest_seconds']:.0f} s"


def agreement(d: dict[str, Any]) -> str:
    """How often the bench's fusion of the api's pieces gave the api's own 50 chunks, in order."""
    exact = d.get("api_agreement_exact")
    return (
        "The bench's fusion of the api's two pieces gave the api's own 50 chunks, in order, for "
        f"{100 * d['api_agreement']:.0f} % of the queries with the HNSW vector side"
        + (f" and {100 * exact:.0f} % with the exact one" if exact is not None else "")
        + (f" ({d['agreement_note']})" if d.get("agreement_note") else "")
        + "."
    )


def limits(d: dict[str, Any]) -> str:
    """What bounds the figures, with this run's numbers (the docs' "What limits it")."""
    r = {name: m["ndcg_cut_10"] for name, m in d["results"].items()}
    shipped, before = r["hybrid, the api as shipped"], r["hybrid, the api before this measure"]
    fts, vec = r["full-text alone, the api's side"], r["vector alone, the api's side"]
    fts_before = r[f"full-text variant: {BEFORE_FULL_TEXT.label()}"]
    published_bm25, published_minilm = (v[0] for v in PUBLISHED.values())
    ingest = "an earlier run's, reused" if math.isnan(d["ingest_seconds"]) else f"{d['ingest_seconds']:.0f} s"
    return (
        f"The api's hybrid scores nDCG@10 {shipped:.3f} ({before:.3f} with the ranking and fusion it "
        f"had before this measure: `ts_rank_cd`, weights 1 : 1): its full-text side alone {fts:.3f} "
        f"({fts_before:.3f} with `ts_rank_cd`; BM25 {published_bm25:.3f} published), its vector side "
        f"alone {vec:.3f} (all-MiniLM-L6-v2 {published_minilm:.3f} published). What bounds them. The "
        "model: all-MiniLM-L6-v2 reads at most 256 word pieces; the api embeds 800-character chunks and "
        "a passage ranks by its best chunk, where MTEB embeds each passage whole (exact vector search "
        f"here: {r['vector alone, exact']:.3f}). The query: the api refuses a `q` over 1,000 characters "
        f"and {d['queries_cut']:,} of the {d['queries']:,} queries (whole arguments) are longer, so they "
        f"are cut at a word boundary"
        + (
            f" (full-text on the whole query: {r['full-text on the whole query']:.3f}). "
            if "full-text on the whole query" in r
            else ". "
        )
        + "The full-text ranking: Postgres has no inverse document frequency in either `ts_rank` or "
        "`ts_rank_cd`, so an OR of a long argument's lexemes rewards chunks full of its common words; "
        "`ts_rank` with normalisation 1 (÷ 1 + log length) counts how often they occur and favours long "
        "chunks less than cover density does, which is what the change measured here gains; BM25's IDF "
        "is the rest of the gap. The fusion: the vector side alone is far ahead of the full-text side, "
        "so weighing it twice keeps the weaker ranking from pulling good vector hits down. Best "
        f"measured: **{d['best']}**, nDCG@10 {r[d['best']]:.3f}. With {d['queries']:,} queries a "
        "difference of a few hundredths is within sampling noise: only the large gaps are findings. "
        f"Time: the ingest (minilm on the CPU: {ingest} for {d['chunks']:,} chunks, on 2 shared cores) "
        "and the direct full-text rankings, each of which reads every chunk sharing a word with a "
        "1,000-character query, are most of the run; the api's own searches of such queries take "
        f"p50 {d['search_ms_p50']:.0f} ms for the same reason."
    )
