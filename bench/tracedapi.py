"""`rag-api` under tracemalloc: SIGUSR1 writes a snapshot (to BENCH_TRACEMALLOC_OUT.<n>).

Used by the connections benchmark (an extra, unmeasured run) to say where the memory of an
idle WebSocket goes: the snapshots before and after opening the sockets are compared by
file, so each line is what one package's code allocated per connection.
"""

from __future__ import annotations

import os
import signal
import tracemalloc
from types import FrameType


def main() -> None:
    tracemalloc.start(1)
    out = os.environ["BENCH_TRACEMALLOC_OUT"]
    taken = 0

    def dump(_signum: int, _frame: FrameType | None) -> None:
        nonlocal taken
        tracemalloc.take_snapshot().dump(f"{out}.{taken}")
        taken += 1

    signal.signal(signal.SIGUSR1, dump)
    from rag_api.main import main as api_main

    api_main()


if __name__ == "__main__":
    main()
