"""HS256 JWT verification (Supabase-style tokens: `sub` is the user id).

Only HS256 is accepted: pinning the algorithm is what refuses `alg: none` and
key-confusion tricks. `exp` is required; `aud` is checked only when
JWT_AUDIENCE is set, because Supabase tokens carry `aud: authenticated`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from uuid import UUID

import jwt


class AuthError(Exception):
    """The token is missing, malformed, expired or not signed by us."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token says: whose it is and until when (`exp`, Unix seconds).

    A WebSocket outlives the request that opened it, so it keeps `expires_at` and closes
    when the token expires unless the client sends a new one.
    """

    user_id: UUID
    expires_at: int


def verify_token(token: str, secret: str, audience: str | None = None) -> TokenClaims:
    """Return the claims of a valid token, or raise AuthError."""
    if not token:
        raise AuthError("missing bearer token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=audience,
            options={"require": ["exp", "sub"], "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.PyJWTError:
        raise AuthError("invalid token") from None
    try:
        user_id = UUID(str(claims["sub"]))
    except ValueError:
        raise AuthError("token subject is not a user id") from None
    return TokenClaims(user_id=user_id, expires_at=int(claims["exp"]))


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header, or ''."""
    if not authorization:
        return ""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def mint_token(user_id: UUID, secret: str, ttl_seconds: int = 3600, audience: str | None = None) -> str:
    """A token for `user_id` (dev tooling and tests; production tokens come from the IdP)."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
