"""The guard of ``/socket.io``: what a connection must pass, and how long it may wait.

A Socket.IO connect is admitted by the one admission function
(:meth:`core.managers.admission.Admission.admit`, endpoint
:data:`~core.managers.admission.SOCKET_CONNECT`), like an HTTP request and with the same single
Redis round trip: maintenance (503 ``MAINTENANCE`` as ``connect_error``), the access token of
the ``auth`` payload (signature and claims, CPU only), then one limiter call: the token's
revocation marks, the bans and limits of the ``ip`` level and of the ``user`` level. A connect
without a valid token still counts against its IP.

Then, when the socket is registered, the user's sockets over every instance are capped
(``SOCKETIO_MAX_SOCKETS_PER_USER``; ``TOO_MANY_SOCKETS``).

Engine.IO accepts a transport before any of that: a client may open one, answer pings and
never send the Socket.IO CONNECT packet (or be refused and stay). :class:`HandshakeReaper`
closes every Engine.IO connection without an accepted connect after
``SOCKETIO_CONNECT_TIMEOUT`` seconds (checked every ``SOCKETIO_SWEEP_INTERVAL``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from core.edge.principal import Principal
from core.managers.admission import SOCKET_CONNECT, Admission, Caller


def admit(admission: Admission, auth: Any, address: str | None) -> Principal:
    """The user of a connect (its ``auth`` payload's token), admitted from ``address``;
    raises the ApiError that refuses the connect."""
    token = auth.get("token") if isinstance(auth, dict) else None
    bearer = token if isinstance(token, str) and token else None
    principal = admission.admit(SOCKET_CONNECT, Caller(ip=address, bearer=bearer)).principal
    assert principal is not None  # a JWT endpoint admits a user or raises
    return principal


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
