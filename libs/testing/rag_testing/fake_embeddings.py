"""A small OpenAI-compatible embeddings server for tests (stdlib, in a thread).

It follows a script of answers, one per request (an HTTP error with headers, a pause,
or a raw body in place of the JSON answer), then answers normally with the deterministic `hash` vectors: that is how a
rate-limited or failing endpoint is played without mocking the client.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rag_embedding.hashing import hash_vector

SHUTDOWN_POLL_SECONDS = 0.01


@dataclass
class Scripted:
    """One scripted answer: an HTTP error, a pause before answering normally, or `body`
    (raw bytes, with `status`) instead of the embeddings."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes | None = None


class FakeEmbeddings:
    def __init__(self) -> None:
        self.script: list[Scripted] = []
        self.requests: list[dict[str, Any]] = []
        self.dim = 384
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # serve_forever's default poll (0.5 s) is how long shutdown() waits: half a second per test.
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), daemon=True
        )
        self.thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(
                        {"path": self.path, "auth": self.headers.get("Authorization"), **body}
                    )
                    step = fake.script.pop(0) if fake.script else Scripted()
                time.sleep(step.delay)
                if step.body is not None:
                    self._send_raw(step.status, step.body, step.headers)
                    return
                if step.status != 200:
                    self._send(step.status, {"error": {"message": "scripted failure"}}, step.headers)
                    return
                data = [
                    {"object": "embedding", "index": i, "embedding": hash_vector(text, fake.dim).tolist()}
                    for i, text in enumerate(body["input"])
                ]
                random.shuffle(data)  # answers may come in any order: `index` says which is which
                self._send(200, {"object": "list", "data": data, "model": body["model"]}, {})

            def _send(self, status: int, payload: object, headers: dict[str, str]) -> None:
                self._send_raw(status, json.dumps(payload).encode(), headers)

            def _send_raw(self, status: int, raw: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
