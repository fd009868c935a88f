"""The token provider: where the client gets a JWT each time it needs one.

A callable rather than a string because tokens expire: the app's own refresh logic (an
OAuth refresh, a call to its backend) stays the app's, and the client asks it before every
request, every (re)connect and when the server warns that the token is expiring.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

TokenProvider = Callable[[], str | Awaitable[str]]


def as_provider(token: str | TokenProvider) -> TokenProvider:
    """A fixed token is a provider that always answers it (and so never refreshes)."""
    if isinstance(token, str):
        fixed = token
        return lambda: fixed
    return token


async def current_token(provider: TokenProvider) -> str:
    """The provider's answer, whether it is a plain function or a coroutine function."""
    answer = provider()
    if inspect.isawaitable(answer):
        answer = await answer
    if not isinstance(answer, str):
        raise TypeError(f"the token provider returned {type(answer).__name__}, not a str")
    return answer
