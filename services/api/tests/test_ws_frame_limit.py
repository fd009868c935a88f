"""ws_frame_limit replaces one method of hypercorn: an upgrade must make someone re-check it.

The replacement mirrors hypercorn 0.18.0's `WSStream._handle_events` line for line except
for the frame limit. If hypercorn changes that method (a fix, a new event), this test fails
until the replacement is compared with the new code and the hash below updated, or the
replacement is dropped because hypercorn stopped buffering past its limit.
"""

from __future__ import annotations

import hashlib
import inspect

from hypercorn.protocol import ws_stream

from rag_api import ws_frame_limit

HYPERCORN_0_18_0_HANDLE_EVENTS_SHA256 = "b90f3f595ff9fd4722f15769e9c40d113838a1deb6f3ecc0f63dc8ffc1d7f8e8"


def test_the_replaced_hypercorn_method_is_the_one_the_replacement_mirrors() -> None:
    source = inspect.getsource(ws_frame_limit._ORIGINAL)
    assert hashlib.sha256(source.encode()).hexdigest() == HYPERCORN_0_18_0_HANDLE_EVENTS_SHA256, (
        "hypercorn's WSStream._handle_events changed: compare it with rag_api/ws_frame_limit.py"
    )


def test_install_is_idempotent_and_replaces_the_method() -> None:
    ws_frame_limit.install()
    ws_frame_limit.install()
    assert ws_stream.WSStream._handle_events is ws_frame_limit._handle_events
