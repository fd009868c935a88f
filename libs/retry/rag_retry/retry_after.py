"""The ``Retry-After`` HTTP header (RFC 9110 §10.2.3): delta-seconds or an HTTP-date."""

from __future__ import annotations

import email.utils
import re
import time
from datetime import UTC

# RFC 9110 says 1*DIGIT; a decimal fraction ("1.5", sent by some gateways) is accepted too.
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait, or None when the header is absent or unreadable.

    An HTTP-date in any of the three formats RFC 9110 §5.6.7 requires recipients to
    accept (IMF-fixdate, RFC 850, asctime; always GMT) counts from `now` (default: the
    clock); one in the past means 0. No cap here: `RetryPolicy.delay` applies it.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime and "-0000" carry no zone: HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
