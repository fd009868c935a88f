"""One retry policy for every loop and client that retries: exponential backoff with
"equal jitter", capped, and an upstream's ``Retry-After`` honoured up to a cap.

    policy = RetryPolicy(base_seconds=0.5, max_seconds=20.0)
    await asyncio.sleep(policy.delay(failures, retry_after=parse_retry_after(header)))

Pure (no sleeping, no I/O, the clock and the random source injectable): the callers own
their loops, this package only says how long to wait.
"""

from __future__ import annotations

from rag_retry.policy import RetryPolicy
from rag_retry.retry_after import parse_retry_after

__all__ = ["RetryPolicy", "parse_retry_after"]
