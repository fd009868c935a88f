"""What can go wrong talking to an OpenAI-compatible endpoint, by what the caller should do.

Every message (``reason``) names the failure only: an HTTP status ("HTTP 503"), an
exception class ("ConnectError"). Never the endpoint's URL or host, the API key, or the
body the endpoint answered, since callers hand these errors on to people (a document's or
a message's `error`). Those details go to the log, under the event name the client was
given. Raised ``from None``: an httpx exception's text names the URL.
"""

from __future__ import annotations


class OpenAIError(Exception):
    """Base class; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(OpenAIError):
    """Worth trying again later (429, 5xx, connection errors, timeouts): the client's own
    retries, ``attempts`` requests, are spent."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.attempts = attempts


class StreamBroken(TransientError):
    """A streamed answer broke off after text was produced: it cannot be resumed, only
    restarted from scratch (so it is never retried inside the client)."""


class MalformedAnswer(TransientError):
    """A 2xx whose body cannot be read (most often a proxy or gateway hiccup)."""


class PermanentError(OpenAIError):
    """The same request will fail the same way (4xx other than 429: bad key, unknown
    model, input too long), or the answer contradicts the request."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
