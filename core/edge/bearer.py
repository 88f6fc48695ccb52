"""The one bearer-token comparison (``METRICS_TOKEN`` on the app and on the metrics port)."""

from __future__ import annotations

import hmac


def bearer_matches(authorization: str, expected: bytes | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <expected>``, compared in constant
    time; True when no token is expected (the endpoint is open)."""
    if expected is None:
        return True
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), expected)
