"""The guard of ``/socket.io``: what a connection must pass, and how long it may wait.

A Socket.IO connect passes the same checks as an HTTP request, in the same order and with the
same single Redis round trip:

1. the request gates (maintenance: 503 ``MAINTENANCE`` as ``connect_error``), from the local
   state cache;
2. the access token's signature and claims (CPU only);
3. one limiter call: the token's revocation marks, the bans and limits of the ``ip`` level
   and of the ``user`` level. A connect without a valid token still counts against its IP.

Then, when the socket is registered, the user's sockets over every instance are capped
(``SOCKETIO_MAX_SOCKETS_PER_USER``; ``TOO_MANY_SOCKETS``).

Engine.IO accepts a transport before any of that: a client may open one, answer pings and
never send the Socket.IO CONNECT packet (or be refused and stay). :class:`HandshakeReaper`
closes every Engine.IO connection without an accepted connect after
``SOCKETIO_CONNECT_TIMEOUT`` seconds (checked every ``SOCKETIO_SWEEP_INTERVAL``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import request

from core.errors import ApiError, Unauthorized
from core.managers.jwt import JWTManager
from core.managers.rate_limiter import RateLimiter, Revocation

#: ``gate(endpoint)``: raises the ApiError that refuses (maintenance).
Gate = Callable[[str | None], None]


def _revoked() -> ApiError:
    return Unauthorized("The token has been revoked.", code="TOKEN_REVOKED")


def admit(
    gates: Iterable[Gate], limiter: RateLimiter, jwt: JWTManager, auth: Any
) -> Mapping[str, Any]:
    """The claims of the connect's token; raises the ApiError that refuses the connect."""
    for gate in gates:
        gate(None)
    buckets = [limiter.bucket("ip", limiter.ip_identifier(request.remote_addr))]
    token = auth.get("token") if isinstance(auth, dict) else None
    try:
        if not isinstance(token, str) or not token:
            raise Unauthorized("A token is required in the auth payload.", code="AUTH_REQUIRED")
        claims = jwt.decode(token)
    except Unauthorized:
        limiter.check(buckets)  # guessing tokens is limited like anything else
        raise
    buckets.append(limiter.bucket("user", claims["sub"]))
    revocations = [Revocation(key, _revoked) for key in jwt.revocation_keys(claims)]
    limiter.check(buckets, revocations)
    return claims


class HandshakeReaper:
    """Closes Engine.IO connections that have no accepted Socket.IO connect in time."""

    def __init__(self, timeout: float, close: Callable[[str], None]) -> None:
        self.timeout = timeout
        self._close = close
        self._first_seen: dict[str, float] = {}

    def reap(self, open_sids: Iterable[str], admitted: set[str]) -> list[str]:
        """Close the connections of ``open_sids`` (Engine.IO ids) not in ``admitted`` that
        have been open longer than the timeout; returns those closed."""
        now = time.monotonic()
        current = set(open_sids)
        for gone in set(self._first_seen) - current:
            del self._first_seen[gone]
        closed = []
        for eio_sid in current - admitted:
            first = self._first_seen.setdefault(eio_sid, now)
            if now - first >= self.timeout:
                self._close(eio_sid)
                self._first_seen.pop(eio_sid, None)
                closed.append(eio_sid)
        return closed
