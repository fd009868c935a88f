"""Fixtures of the client tests: a real OpenAI-compatible embeddings server, scripted per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rag_testing.fake_embeddings import FakeEmbeddings


@pytest.fixture
def fake() -> Iterator[FakeEmbeddings]:
    server = FakeEmbeddings()
    yield server
    server.close()
