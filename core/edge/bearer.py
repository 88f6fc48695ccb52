"""The one ``Authorization`` header parser, and the constant-time token check (admission's
``operator`` policy: ``METRICS_TOKEN``, on the app's port and on the metrics port)."""

from __future__ import annotations

import hmac


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case);
    None for another scheme, a missing header or an empty token."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def token_matches(presented: str | None, expected: bytes | None) -> bool:
    """Whether ``presented`` is ``expected``, compared in constant time; True when no token is
    expected (the endpoint is open)."""
    if expected is None:
        return True
    return presented is not None and hmac.compare_digest(presented.encode(), expected)
