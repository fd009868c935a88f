"""The server-sent events of a streamed ``/v1/chat/completions``: one text delta per line."""

from __future__ import annotations

import orjson


def sse_text(line: str) -> str | None:
    """The text of one SSE line: '' for lines without content (comments, keep-alives,
    role or finish chunks, unreadable JSON), None at ``data: [DONE]``."""
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        chunk = orjson.loads(data)
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        return (choices[0].get("delta") or {}).get("content") or ""
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return ""
