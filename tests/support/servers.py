"""Outages of the real test servers, and bounded waits."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from core.devstack._base import DevServer


def wait_until(predicate: Callable[[], object], timeout: float = 15.0, what: str = "") -> bool:
    """Poll ``predicate`` until it is truthy (then True); fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)
    return True


@contextmanager
def stopped(server: DevServer) -> Iterator[None]:
    """The session server stopped for the block, and always started again afterwards."""
    server.stop()
    try:
        yield
    finally:
        server.start()


@contextmanager
def frozen(server: DevServer) -> Iterator[None]:
    """The server process paused: connections are accepted but never answered."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)
