"""The text/event-stream parser on the server's frames and on the standard's corner cases."""

from __future__ import annotations

from rag_engine_client.sse import SseComment, SseMessage, SseParser


def parse(text: str) -> list[SseMessage | SseComment]:
    parser = SseParser()
    items = [parser.feed(line) for line in text.splitlines()]
    return [item for item in items if item is not None]


def test_the_servers_frames() -> None:
    stream = (
        'event: hello\ndata: {"type":"hello"}\n\n'
        ": keepalive\n\n"
        'event: document.created\nid: 12\ndata: {"id":12}\n\n'
        'event: close\ndata: {"type":"close","payload":{"code":4401}}\n\n'
    )
    assert parse(stream) == [
        SseMessage("hello", '{"type":"hello"}'),
        SseComment("keepalive"),
        SseMessage("document.created", '{"id":12}', "12"),
        SseMessage("close", '{"type":"close","payload":{"code":4401}}'),
    ]


def test_multiline_data_joins_with_newlines_and_one_leading_space_is_stripped() -> None:
    assert parse("data:a\ndata:  b\ndata\n\n") == [SseMessage("message", "a\n b\n")]


def test_a_message_without_data_is_not_dispatched_and_fields_do_not_leak_to_the_next() -> None:
    assert parse("event: x\nid: 1\n\ndata: y\n\n") == [SseMessage("message", "y")]


def test_a_value_may_contain_colons_and_unknown_fields_are_ignored() -> None:
    assert parse('foo: bar\ndata: {"a":"b:c"}\n\n') == [SseMessage("message", '{"a":"b:c"}')]


def test_retry_takes_digits_only_and_an_id_with_nul_is_ignored() -> None:
    parser = SseParser()
    for line in ("retry: 1.5", "retry: 3000", "retry: x", "id: a\0b", "data: d", ""):
        item = parser.feed(line)
    assert parser.retry_ms == 3000
    assert item == SseMessage("message", "d", None)


def test_a_byte_order_mark_on_the_first_line_is_dropped() -> None:
    assert parse("\ufeffdata: x\n\n") == [SseMessage("message", "x")]


def test_a_stream_cut_mid_message_dispatches_nothing() -> None:
    assert parse('event: hello\ndata: {"type":"hel') == []
