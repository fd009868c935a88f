"""Throughput of the numpy all-MiniLM-L6-v2 (not collected by pytest; run by hand):

    .venv/bin/python libs/embedding/tests/bench_minilm.py [--chunks 256] [--batch 32]

Prints chunks/s for full 256-word-piece chunks (the encoder's window) and for the
chunker's default 800-character chunks.
"""

from __future__ import annotations

import argparse
import random
import time

from rag_embedding.minilm import MiniLMEmbedder, load_model

WORDS = (
    "the system stores every document in object storage and records its chunks with their "
    "embeddings so that a question finds the passages that answer it even when the words differ "
    "workers claim jobs from the queue renew their lease and publish events when they finish"
).split()


def text_of(chars: int, rng: random.Random) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:chars]


def run(label: str, texts: list[str], batch: int) -> None:
    embedder = MiniLMEmbedder(batch_size=batch)
    tokens = [len(e.ids) for e in load_model().tokenizer.encode_batch(texts[:batch])]
    embedder.embed_sync(texts[:batch])  # warm-up
    start, cpu_start = time.perf_counter(), time.process_time()
    embedder.embed_sync(texts)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(
        f"{label}: {len(texts)} chunks, ~{sum(tokens) / len(tokens):.0f} word pieces each, batch {batch}, "
        f"{embedder.threads} threads: {len(texts) / elapsed:.1f} chunks/s wall ({elapsed:.2f} s), "
        f"{len(texts) / cpu:.1f} chunks per CPU-second"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    rng = random.Random(0)
    start = time.perf_counter()
    load_model()
    print(f"model load: {time.perf_counter() - start:.2f} s")
    run("256-token chunks", [text_of(2000, rng) for _ in range(args.chunks)], args.batch)
    run("800-char chunks", [text_of(800, rng) for _ in range(args.chunks)], args.batch)


if __name__ == "__main__":
    main()
