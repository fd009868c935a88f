"""docs/asyncapi.yaml describes exactly what the WebSocket code sends, accepts and closes with.

`make lint` checks that the document is valid AsyncAPI; this checks that it is true. Every
side is read from the code, not from a list kept here: the event types and payload fields
of `rag_core.events.PAYLOAD_TYPES` (and the redacted frame, built by the redaction), the
control frames the builders of `rag_api.realtime.frames` produce (called, then parsed), the
error codes passed to `frames.error` anywhere in the realtime package, the close-code
constants and the reasons closes are sent with, and the client frame types
`parse_client_frame` accepts. A frame, field, code or close code on one side only fails, in both directions.
"""

from __future__ import annotations

import ast
import inspect
import typing
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
import yaml

from rag_api import limits
from rag_api.realtime import frames, redaction
from rag_core.events import PAYLOAD_TYPES
from rag_eventbus import DeliveredEvent

from .spec_refs import resolve_ref

ROOT = Path(__file__).resolve().parents[3]
REALTIME = Path(frames.__file__).parent
SPEC: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8"))
CHANNEL = SPEC["channels"]["userStream"]

# A value of each argument type a frame builder takes, to call it.
SAMPLES: dict[Any, Any] = {
    uuid.UUID: uuid.uuid4(),
    int: 1,
    float: 1.0,
    str: "x",
    datetime: datetime(2024, 1, 1, tzinfo=UTC),
}


def resolve(node: Any) -> Any:
    return resolve_ref(SPEC, node)


def described(direction: str) -> dict[str, dict[str, Any]]:
    """Frame type -> payload schema of the frames sent by `direction` ("server"/"client").

    From the api's side: a `send` operation's messages and a `receive` operation's reply
    are the server's; a `receive` operation's messages and a `send` one's reply the client's.
    """
    mine, replies = ("send", "receive") if direction == "server" else ("receive", "send")
    found: dict[str, dict[str, Any]] = {}
    for operation in SPEC["operations"].values():
        refs = []
        if operation["action"] == mine:
            refs += operation["messages"]
        if operation["action"] == replies and "reply" in operation:
            refs += operation["reply"]["messages"]
        for ref in refs:
            schema = resolve(resolve(ref)["payload"])
            found[schema["properties"]["type"]["const"]] = schema
    return found


def payload_fields(schema: dict[str, Any]) -> set[str]:
    return set(resolve(schema["properties"]["payload"])["properties"])


def builders() -> Iterator[tuple[str, Callable[..., bytes]]]:
    """The public functions of rag_api.realtime.frames that return a frame (bytes)."""
    for name, function in inspect.getmembers(frames, inspect.isfunction):
        if function.__module__ == frames.__name__ and not name.startswith("_"):
            hints = typing.get_type_hints(function)
            if hints.pop("return", None) is bytes:
                yield name, function


def control_frames() -> dict[str, dict[str, Any]]:
    """Type -> frame, for every control frame the code builds: builders called, constants read."""
    sent: dict[str, dict[str, Any]] = {}
    for _, build in builders():
        hints = typing.get_type_hints(build)
        hints.pop("return")
        frame = orjson.loads(build(**{arg: SAMPLES[kind] for arg, kind in hints.items()}))
        sent[frame["type"]] = frame
    for value in vars(frames).values():
        if isinstance(value, bytes):
            frame = orjson.loads(value)
            sent[frame["type"]] = frame
    return sent


def redacted_frame() -> dict[str, Any]:
    """What the redaction makes of an event of a workspace the user does not belong to."""
    event = DeliveredEvent(
        id=1,
        type="document.deleted",
        payload={"workspace_id": str(uuid.uuid4()), "document_id": str(uuid.uuid4())},
        created_at=SAMPLES[datetime],
    )
    frame: dict[str, Any] = orjson.loads(redaction.Redaction(uuid.uuid4()).apply(event).to_frame())
    return frame


def error_codes() -> set[str]:
    """Every literal code passed to `frames.error(...)` (or `error(...)` inside frames.py)."""
    codes = set()
    for path in REALTIME.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = (isinstance(func, ast.Name) and func.id == "error" and path.name == "frames.py") or (
                isinstance(func, ast.Attribute)
                and func.attr == "error"
                and isinstance(func.value, ast.Name)
                and func.value.id == "frames"
            )
            if called:
                code = node.args[0]
                assert isinstance(code, ast.Constant) and isinstance(code.value, str), (
                    f"{path.name}:{node.lineno}: an error code must be a literal to be described"
                )
                codes.add(code.value)
    return codes


def close_codes(*modules: ModuleType) -> set[int]:
    return {
        value
        for module in modules
        for name, value in vars(module).items()
        if (name.startswith("CLOSE_") or name.startswith("WS_CLOSE_")) and isinstance(value, int)
    }


def test_every_event_type_is_described_and_nothing_else() -> None:
    code = set(PAYLOAD_TYPES) | {redacted_frame()["type"]}
    events = {t for t, schema in described("server").items() if "id" in schema["properties"]}
    assert events == code


@pytest.mark.parametrize("event_type", sorted(PAYLOAD_TYPES))
def test_each_event_payload_has_the_fields_of_its_model(event_type: str) -> None:
    schema = described("server")[event_type]
    frame = orjson.loads(
        DeliveredEvent(id=1, type=event_type, payload={}, created_at=SAMPLES[datetime]).to_frame()
    )
    assert set(schema["properties"]) == set(frame)
    assert payload_fields(schema) == set(PAYLOAD_TYPES[event_type].model_fields)  # type: ignore[index]


def test_the_redacted_frame_is_described_as_the_code_builds_it() -> None:
    frame = redacted_frame()
    schema = described("server")[frame["type"]]
    assert set(schema["properties"]) == set(frame)
    assert payload_fields(schema) == set(frame["payload"])


def test_every_control_frame_the_server_builds_is_described_and_nothing_else() -> None:
    sent = control_frames()
    events = set(PAYLOAD_TYPES) | {redacted_frame()["type"]}
    server = {t: s for t, s in described("server").items() if t not in events}
    assert set(server) == set(sent)
    for frame_type, frame in sent.items():
        assert set(server[frame_type]["properties"]) == set(frame), frame_type
        if "payload" in frame:
            assert payload_fields(server[frame_type]) == set(frame["payload"]), frame_type


def test_every_error_code_is_described_and_nothing_else() -> None:
    schema = described("server")["error"]
    code_schema = resolve(schema["properties"]["payload"])["properties"]["code"]
    assert {option["const"] for option in code_schema["oneOf"]} == error_codes()


def close_code_of(node: ast.expr) -> int | None:
    """The value of `frames.CLOSE_X`, `CLOSE_X` or `WS_CLOSE_X` in the realtime code."""
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    for module in (frames, limits):
        value = getattr(module, name, None) if "CLOSE_" in name else None
        if isinstance(value, int):
            return value
    return None


def close_reasons() -> set[tuple[int, str]]:
    """(code, reason) of every close in the realtime package: `close(code, "reason")`,
    `request_close(code, "reason")`, or a `(code, "reason")` pair stored for the close."""
    found = set()
    for path in REALTIME.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            pair: list[ast.expr] = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in ("close", "request_close") and len(node.args) == 2:
                    pair = node.args
            elif isinstance(node, ast.Tuple) and len(node.elts) == 2:
                pair = node.elts
            if pair and (code := close_code_of(pair[0])) is not None:
                reason = pair[1]
                if isinstance(reason, ast.Constant) and isinstance(reason.value, str):
                    found.add((code, reason.value))
    return found


def test_every_close_code_is_described_and_nothing_else() -> None:
    assert {int(code) for code in CHANNEL["x-close-codes"]} == close_codes(frames, limits)


def test_every_close_reason_is_described_and_nothing_else() -> None:
    described_reasons = {
        (int(code), reason) for code, close in CHANNEL["x-close-codes"].items() for reason in close["reasons"]
    }
    assert described_reasons == close_reasons()


def accepted_client_types() -> set[str]:
    """The frame types `parse_client_frame` tests for (`frame_type == "<type>"`)."""
    tree = ast.parse(inspect.getsource(frames.parse_client_frame))
    return {
        comparator.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "frame_type"
        for comparator in node.comparators
        if isinstance(comparator, ast.Constant) and isinstance(comparator.value, str)
    }


def test_every_client_frame_type_the_server_accepts_is_described_and_nothing_else() -> None:
    assert set(described("client")) == accepted_client_types()


@pytest.mark.parametrize("frame_type", sorted(described("client")))
def test_each_client_frame_as_described_is_accepted(frame_type: str) -> None:
    """A frame with the described fields gets no error frame (a valid auth: an `Auth` to verify)."""
    schema = described("client")[frame_type]
    frame: dict[str, Any] = {"type": frame_type}
    if "payload" in schema["properties"]:
        frame["payload"] = {field: "x" for field in payload_fields(schema)}
    answer = frames.parse_client_frame(orjson.dumps(frame))
    assert not isinstance(answer, bytes) or orjson.loads(answer)["type"] != "error", answer


# -- the SSE channel: the WebSocket's server frames minus what only answers a client frame ----

SSE_CHANNEL = SPEC["channels"]["userEventStream"]
# Frames that exist only because the WebSocket client can speak (answers to its frames), and
# the ping, which SSE writes as a `: keepalive` comment (rag_api.realtime.sse).
WEBSOCKET_ONLY = {"ping", "pong", "auth", "auth_ok", "error"}


def sse_messages() -> set[str]:
    return {resolve(ref)["name"] for ref in SSE_CHANNEL["messages"].values()}


def test_the_sse_channel_carries_every_server_frame_but_the_websocket_only_ones_and_close() -> None:
    assert sse_messages() == (set(described("server")) - WEBSOCKET_ONLY) | {"close"}
    assert set(CHANNEL["messages"]) - WEBSOCKET_ONLY == set(SSE_CHANNEL["messages"]) - {"close"}


def test_the_sse_close_codes_are_the_websocket_codes_a_stream_can_end_with() -> None:
    close_schema = resolve(resolve(SSE_CHANNEL["messages"]["close"])["payload"])
    codes = set(close_schema["properties"]["payload"]["properties"]["code"]["enum"])
    assert {int(code) for code in SSE_CHANNEL["x-close-codes"]} == codes
    # A 4429 or 1009 never reaches an SSE stream: one is a 429 before it, the other needs client frames.
    assert codes == close_codes(frames, limits) - {1009, limits.WS_CLOSE_TOO_MANY_CONNECTIONS}
    websocket_reasons = {int(c): set(close["reasons"]) for c, close in CHANNEL["x-close-codes"].items()}
    for code, close in SSE_CHANNEL["x-close-codes"].items():
        assert set(close["reasons"]) <= websocket_reasons[int(code)], code
