"""Helpers shared by the Redis and state tests: bounded waits and simulated outages."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from core.devstack._base import DevServer


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


@contextmanager
def stopped(server: DevServer) -> Iterator[None]:
    """The session server stopped for the block, and always started again afterwards."""
    server.stop()
    try:
        yield
    finally:
        server.start()
