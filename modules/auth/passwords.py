"""Password hashing with argon2id; parameters from settings, hashes upgraded on login."""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from config.settings import Settings


class PasswordHasher:
    def __init__(self, settings: Settings) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        )
        # Verified against when the email is unknown, so both failures cost the same time.
        self._dummy = self._hasher.hash("dummy-password-for-unknown-accounts")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash or self._dummy, password) and bool(stored_hash)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
