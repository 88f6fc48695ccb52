"""Login lockout: the attempt is reserved in Redis before the password is checked.

Checking a password costs ~30 ms of argon2, so counting failures *after* the check lets a
burst of concurrent guesses through. Instead one Lua script reserves the attempt first:

- **untrusted** attempts (no valid device token for the account) are counted for the account
  and for the client IP together: an account gets at most ``LOGIN_MAX_FAILURES`` password
  checks per ``LOGIN_LOCKOUT_SECONDS`` window from untrusted clients however many requests
  arrive at once, and an IP at most ``LOGIN_IP_MAX_FAILURES`` per ``LOGIN_IP_WINDOW_SECONDS``,
  across accounts;
- **trusted** attempts present a device token (OWASP "device cookies") that a successful
  login of *this* account handed out: they are counted against that token's own budget (the
  same ``LOGIN_MAX_FAILURES`` per window), never against the account's or the IP's. So
  strangers who lock an account by its email do not lock its owner out of the devices they
  already used, and a stolen device token buys no more guesses than an untrusted client.

Settling: a success deletes the count it was judged by (and hands the IP reservation back);
a failure keeps it, and once a budget reaches the maximum it stays locked for
``LOGIN_LOCK_SECONDS`` only (anyone who knows an email can lock untrusted logins to it).

Device tokens (``dvt_<random>``) are stored as ``auth:device:<sha256>`` -> user id, with
``LOGIN_DEVICE_TTL``; never in clear. Expiry is set with ``PTTL``/``PEXPIRE`` inside the
scripts (no ``EXPIRE ... NX``, which needs Redis >= 7). Keys hold digests, never an email.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from core.errors import TooManyRequests
from core.managers.redis import RedisManager

DEVICE_TOKEN_PREFIX = "dvt_"  # noqa: S105 - the marker of a device token, not a secret

# KEYS: account count, IP count, device record, device count.
# ARGV: max, window ms, IP max, IP window ms, user id ('' when the email is unknown).
# Answers {refused, pttl, trusted}: refused 0 (go on), 1 account, 2 IP, 3 device locked.
_RESERVE = """
if ARGV[5] ~= '' and redis.call('GET', KEYS[3]) == ARGV[5] then
  local d = tonumber(redis.call('GET', KEYS[4]) or '0')
  if d >= tonumber(ARGV[1]) then return {3, redis.call('PTTL', KEYS[4]), 1} end
  redis.call('INCR', KEYS[4])
  if redis.call('PTTL', KEYS[4]) < 0 then redis.call('PEXPIRE', KEYS[4], ARGV[2]) end
  return {0, 0, 1}
end
local ip = tonumber(redis.call('GET', KEYS[2]) or '0')
if ip >= tonumber(ARGV[3]) then return {2, redis.call('PTTL', KEYS[2]), 0} end
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {1, redis.call('PTTL', KEYS[1]), 0} end
redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('INCR', KEYS[2])
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return {0, 0, 0}
"""

_FAILED = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) and redis.call('PTTL', KEYS[1]) > tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
"""

# KEYS: the count the attempt was judged by, the IP count ('' for a trusted attempt),
# the presented device record, the new device record. ARGV: user id, device TTL ms.
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2])
return 0
"""

_ACCOUNT, _IP, _DEVICE = 1, 2, 3


@dataclass(frozen=True)
class LoginLimits:
    max_failures: int
    window_seconds: int
    lock_seconds: int
    ip_max_failures: int
    ip_window_seconds: int
    device_ttl: int


@dataclass(frozen=True)
class Attempt:
    """A reserved login attempt: what it is counted against, settled by the guard."""

    email: str
    ip: str
    user_id: str | None
    device_digest: str | None
    trusted: bool


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class LoginGuard:
    """Reserve, then settle, one login attempt: for an account and a client IP, or for the
    trusted device it came from."""

    def __init__(self, redis_manager: RedisManager, limits: LoginLimits) -> None:
        self.redis = redis_manager
        self.limits = limits
        redis_manager.register_script("auth.login_reserve", _RESERVE)
        redis_manager.register_script("auth.login_failed", _FAILED)
        redis_manager.register_script("auth.login_succeeded", _SUCCEEDED)

    @staticmethod
    def account_key(email: str) -> str:
        # A digest, so account emails do not appear in Redis keys.
        return f"auth:login_failures:{_digest(email.strip().lower())[:32]}"

    @staticmethod
    def ip_key(ip: str) -> str:
        return f"auth:login_ip_failures:{ip}"

    @staticmethod
    def device_key(digest: str) -> str:
        return f"auth:device:{digest}"

    @staticmethod
    def device_failures_key(digest: str) -> str:
        return f"auth:login_device_failures:{digest}"

    @staticmethod
    def device_digest(device_token: str | None) -> str | None:
        """The stored form of a presented device token; None for no token or a foreign one."""
        if not device_token or not device_token.startswith(DEVICE_TOKEN_PREFIX):
            return None
        return _digest(device_token)

    def reserve(
        self, email: str, ip: str, user_id: str | None, device_token: str | None
    ) -> Attempt:
        """Count this attempt before the password is checked, or raise 429."""
        limits = self.limits
        digest = self.device_digest(device_token) if user_id else None
        device = digest or "-"  # a key nobody writes: the attempt is untrusted
        refused, pttl, trusted = self.redis.call_script(
            "auth.login_reserve",
            [
                self.account_key(email),
                self.ip_key(ip),
                self.device_key(device),
                self.device_failures_key(device),
            ],
            [
                limits.max_failures,
                limits.window_seconds * 1000,
                limits.ip_max_failures,
                limits.ip_window_seconds * 1000,
                user_id if user_id and digest else "",
            ],
        )
        retry_after = max(1, -(-int(pttl) // 1000))
        if refused in (_ACCOUNT, _DEVICE):
            raise TooManyRequests(
                "Too many failed logins; try again later.",
                code="LOGIN_LOCKED",
                retry_after=retry_after,
            )
        if refused == _IP:
            raise TooManyRequests(
                "Too many failed logins from this address; try again later.",
                code="RATE_LIMITED",
                retry_after=retry_after,
            )
        return Attempt(email, ip, user_id, digest, bool(trusted))

    def _budget_key(self, attempt: Attempt) -> str:
        if attempt.trusted and attempt.device_digest:
            return self.device_failures_key(attempt.device_digest)
        return self.account_key(attempt.email)

    def failed(self, attempt: Attempt) -> None:
        self.redis.call_script(
            "auth.login_failed",
            [self._budget_key(attempt)],
            [self.limits.max_failures, self.limits.lock_seconds * 1000],
        )

    def succeeded(self, attempt: Attempt, user_id: str) -> str:
        """Settle a successful attempt; the new device token of the client (the presented
        one, if any, stops working: each success hands out a fresh one)."""
        device_token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
        presented = attempt.device_digest or "-"
        self.redis.call_script(
            "auth.login_succeeded",
            [
                self._budget_key(attempt),
                "-" if attempt.trusted else self.ip_key(attempt.ip),
                self.device_key(presented),
                self.device_key(_digest(device_token)),
            ],
            [user_id, self.limits.device_ttl * 1000],
        )
        return device_token

    def unlock(self, email: str) -> bool:
        """Forget the account's failures (``flask users unlock``); True when it had some."""
        return bool(self.redis.delete(self.account_key(email)))
