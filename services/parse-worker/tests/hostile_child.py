"""An extraction child taken over by a hostile file: `python hostile_child.py BEHAVIOUR MARKER ...`.

It starts like the real child (limits in, `ready` out), then answers the first document
with BEHAVIOUR: frames the protocol does not allow. If the worker ever unpickled or
executed what it sends, MARKER (a file path) would be created.
"""

from __future__ import annotations

import os
import pickle
import sys
import time

import orjson

from rag_parse_worker import wire


class Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def frame(header: object, body: bytes = b"") -> bytes:
    raw = orjson.dumps(header)
    return wire.PREFIX.pack(len(raw), len(body)) + raw + body


def reply(behaviour: str, marker: str) -> bytes:
    payload = pickle.dumps(("ok", Exploit(marker), 0.1))
    ok = {"status": "ok", "format": "txt", "page_count": None, "seconds": 0.1}
    return {
        # multiprocessing.connection's own framing: what the worker used to unpickle
        "pickle": len(payload).to_bytes(4, "big") + payload,
        # the pickle inside a well-formed frame, as if it were the header
        "pickle-header": wire.PREFIX.pack(len(payload), 0) + payload,
        "oversize-body": wire.PREFIX.pack(2, 2**32 - 1) + b"{}",
        "oversize-header": wire.PREFIX.pack(2**31, 0),
        "text-over-limit": frame(ok, b"x" * 2000),
        "unknown-status": frame({"status": "pwned"}),
        "not-an-object": frame(["ok", "text"]),
        "wrong-types": frame({**ok, "page_count": "4"}),
        "bool-count": frame({**ok, "format": "pdf", "page_count": True}),
        "extra-key": frame({**ok, "exec": "import os"}, b"text"),
        "unknown-format": frame({**ok, "format": "exe"}, b"text"),
        "not-utf8": frame(ok, b"\xff\xfe\xfd"),
        "unknown-error-class": frame(
            {"status": "error", "name": "SystemExit", "message": "bye", "code": "corrupt_file"}
        ),
        "unknown-code": frame(
            {"status": "error", "name": "CorruptFile", "message": "bad", "code": "x" * 300}
        ),
        "long-message": frame(
            {"status": "error", "name": "CorruptFile", "message": "y" * 10_000, "code": "corrupt_file"}
        ),
        "control-chars": frame(
            {"status": "error", "name": "CorruptFile", "message": "a\x1b[31mred", "code": "corrupt_file"}
        ),
        "half-frame": wire.PREFIX.pack(100, 0) + b'{"status":',
        # "about to read page 1 by OCR", a thousand times: a deadline extended for ever
        "progress-flood": frame({"status": "progress", "ocr_page": 1}) * 1000,
    }[behaviour]


def main(behaviour: str, marker: str) -> None:
    incoming, outgoing = 0, 1
    raw, _ = wire.receive(incoming, max_body=0)
    wire.send(outgoing, wire.READY)
    raw, _ = wire.receive(incoming, max_body=2**32 - 1)  # the document
    if wire.parse_header(raw).get("type") == "stop":
        return
    if behaviour == "stderr-flood":
        for n in range(5000):
            os.write(2, f"line {n} of a flood\n".encode())
        behaviour = "unknown-status"
    wire.write_all(outgoing, reply(behaviour, marker))
    time.sleep(3600)  # the worker must not wait for anything more


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
