"""Password hashing with argon2id; parameters from settings, hashes upgraded on login.

argon2 costs ~30 ms of CPU per hash by design. Under gunicorn's gevent worker that would stall
every other request of the process, so hashing and verifying run in gevent's native
threadpool there (argon2-cffi releases the GIL while it hashes); in threading mode (the dev
server, tests) they run in the request's own thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from modules.auth.settings import AuthSettings

T = TypeVar("T")


def off_the_event_loop(work: Callable[[], T]) -> T:
    """Run CPU-bound ``work`` without blocking gevent's loop (a plain call without gevent)."""
    try:
        from gevent import get_hub, monkey
    except ImportError:
        return work()
    if not monkey.is_module_patched("threading"):
        return work()
    result: T = get_hub().threadpool.apply(work)
    return result


class PasswordHasher:
    """argon2id with the settings' parameters; ``ran(operation)`` is told of every hash and
    verification (``"hash"``, ``"verify"``), for the ``auth_argon2_runs_total`` metric."""

    def __init__(
        self, settings: AuthSettings, ran: Callable[[str], None] = lambda op: None
    ) -> None:
        self._ran = ran
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        )
        # Verified against when the email is unknown, so both failures cost the same time.
        self._dummy = self._hasher.hash("dummy-password-for-unknown-accounts")

    def hash(self, password: str) -> str:
        self._ran("hash")
        return off_the_event_loop(lambda: self._hasher.hash(password))

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Always runs argon2: with the dummy hash when there is no account (``None``)."""
        self._ran("verify")
        return off_the_event_loop(lambda: self._verify(stored_hash, password))

    def _verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash or self._dummy, password) and bool(stored_hash)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
