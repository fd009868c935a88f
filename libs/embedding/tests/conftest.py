"""Fixtures of the embedding tests: a real OpenAI-compatible HTTP server, scripted per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rag_testing.fake_embeddings import FakeEmbeddings


@pytest.fixture
def fake() -> Iterator[FakeEmbeddings]:
    server = FakeEmbeddings()
    yield server
    server.close()
