"""The graceful drain of an instance's sockets (SIGTERM).

When the app starts draining (``app.draining``: readiness already answers 503, so the load
balancer stops sending new connections), each socket gets ``server_shutdown
{reconnect_after_ms}``, the moments spread evenly over ``0..spread`` in the order the sockets
are listed, and is closed at its moment: clients reconnect to the other instances a few at a
time instead of all at once. ``spread`` is ``SOCKETIO_RECONNECT_SPREAD_MS``, bounded by the
drain itself (``SHUTDOWN_TIMEOUT`` minus a second), so every socket is closed before the drain
ends. New connections to a draining instance are refused with 503 ``SHUTTING_DOWN`` (at the
Engine.IO opening, and at the Socket.IO connect of a session opened just before): the client
retries, the balancer sends it elsewhere.

The drain counts as work in flight (``Lifecycle.begin``/``end``): the server keeps its
listener open until the last socket is closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)


def schedule(sids: Sequence[str], spread_ms: int) -> list[tuple[str, int]]:
    """Each sid with its ``reconnect_after_ms``: evenly over ``0..spread_ms``, first at 0."""
    count = len(sids)
    if count <= 1:
        return [(sid, 0) for sid in sids]
    return [(sid, round(i * spread_ms / (count - 1))) for i, sid in enumerate(sids)]


def effective_spread_ms(spread_ms: int, shutdown_timeout: float) -> int:
    """The spread, bounded so that the last socket closes a second before the drain ends."""
    return max(0, min(spread_ms, int((shutdown_timeout - 1) * 1000)))


def run_drain(
    plan: list[tuple[str, int]],
    tell: Callable[[str, int], None],
    close: Callable[[str], None],
    sleep: Callable[[float], object] = time.sleep,
) -> None:
    """Tell every socket its moment at once, then close each at its moment."""
    for sid, after_ms in plan:
        tell(sid, after_ms)
    started = time.monotonic()
    for sid, after_ms in plan:
        wait = after_ms / 1000 - (time.monotonic() - started)
        if wait > 0:
            sleep(wait)
        try:
            close(sid)
        except Exception:  # one socket must not keep the others open
            logger.exception("socket not closed in the drain", extra={"sid": sid})
