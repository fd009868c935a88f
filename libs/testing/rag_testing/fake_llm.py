"""A small OpenAI-compatible chat server for tests: streams SSE chunks over real HTTP.

Behaviour per request is taken from a script: an HTTP status ("429", "500", "401"), optionally with a
Retry-After header ("429 retry-after=1"), "stream" (answers the text in small chunks), "die" (streams a few
chunks then drops the connection). The last entry of the script repeats. The text answered is
`text`, or what `respond(request_body)` returns when it is set (a test that tells requests apart,
e.g. a follow-up's condensing call from its answer).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

SHUTDOWN_POLL_SECONDS = 0.01


class FakeLLM:
    def __init__(self, script: list[str], text: str, chunk_chars: int = 3, delay: float = 0.0) -> None:
        self.script = list(script)
        self.text = text
        self.chunk_chars = chunk_chars
        self.delay = delay
        self.requests: list[dict[str, object]] = []
        self.url = ""
        self.respond: Callable[[dict[str, object]], str] | None = None

    def text_for(self, body: dict[str, object]) -> str:
        return self.text if self.respond is None else self.respond(body)

    def next_behaviour(self) -> str:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


@contextmanager
def fake_llm(script: list[str], text: str, chunk_chars: int = 3, delay: float = 0.0) -> Iterator[FakeLLM]:
    llm = FakeLLM(script, text, chunk_chars, delay)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            llm.requests.append(body)
            behaviour = llm.next_behaviour()
            status, _, retry_after = behaviour.partition(" retry-after=")
            if status.isdigit():
                payload = b'{"error":{"message":"busy"}}'
                self.send_response(int(status))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if retry_after:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(payload)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            text = llm.text_for(body)
            pieces = [text[i : i + llm.chunk_chars] for i in range(0, len(text), llm.chunk_chars)]
            for n, piece in enumerate(pieces):
                if behaviour == "die" and n == len(pieces) // 2:
                    self.wfile.flush()
                    # No terminating chunk: the stream breaks off mid-answer.
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                self._chunk(b"data: " + orjson.dumps(chunk) + b"\n\n")
                if llm.delay:
                    time.sleep(llm.delay)
            self._chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    llm.url = f"http://127.0.0.1:{server.server_address[1]}"
    # serve_forever's default poll (0.5 s) is how long shutdown() waits: half a second per test.
    thread = threading.Thread(target=server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), daemon=True)
    thread.start()
    try:
        yield llm
    finally:
        server.shutdown()
        server.server_close()
