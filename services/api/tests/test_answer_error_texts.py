"""What the asker reads when an answer fails: our sentence, never the exception's text."""

from __future__ import annotations

import psycopg

from rag_api.answering.kind import ANSWER_ERRORS
from rag_api.answering.providers import LLMPermanentError, LLMStreamError, LLMTransientError
from rag_embedding import PermanentEmbeddingError, TransientEmbeddingError
from rag_jobqueue import INTERNAL_ERROR, public_message

LEAK = "http://llm.internal:8000/v1/chat/completions said: token sk-abc123"


def test_each_known_failure_reads_as_a_sentence_without_the_exception_text() -> None:
    expected = {
        LLMStreamError(LEAK): "The answer broke off while it was being generated.",
        LLMTransientError(
            LEAK
        ): "The answer could not be generated: the language model could not be reached.",
        TransientEmbeddingError(LEAK): (
            "The answer could not be generated: the embedding service could not be reached."
        ),
        PermanentEmbeddingError(LEAK): (
            "The answer could not be generated: the embedding service could not be reached."
        ),
        psycopg.OperationalError(
            LEAK
        ): "The answer could not be generated: the database could not be reached.",
        RuntimeError(LEAK): INTERNAL_ERROR,
        LLMPermanentError(LEAK): INTERNAL_ERROR,  # never transient: the kind fails it with LLM_REFUSED
    }
    for exc, sentence in expected.items():
        assert public_message(exc, ANSWER_ERRORS) == sentence
