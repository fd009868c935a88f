"""`rag-token --user-id UUID [--ttl-seconds N]`: print a dev JWT signed with JWT_SECRET."""

from __future__ import annotations

import argparse
import os
import sys
from uuid import UUID

from rag_core.tokens import mint_token


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rag-token", description=__doc__)
    parser.add_argument("--user-id", type=UUID, required=True)
    parser.add_argument("--ttl-seconds", type=int, default=3600)
    args = parser.parse_args(argv)
    secret = os.environ.get("JWT_SECRET")
    if not secret:
        print("configuration error: JWT_SECRET is required", file=sys.stderr)
        raise SystemExit(2)
    if args.ttl_seconds <= 0:
        print("error: --ttl-seconds must be positive", file=sys.stderr)
        raise SystemExit(2)
    print(mint_token(args.user_id, secret, args.ttl_seconds, os.environ.get("JWT_AUDIENCE") or None))


if __name__ == "__main__":
    main()
