"""Login lockout: the attempt is reserved in Redis before the password is checked.

Checking a password costs ~30 ms of argon2, so counting failures *after* the check lets a
burst of concurrent guesses through. Instead one Lua script reserves the attempt first, for
the account and for the client IP together: an account gets at most ``LOGIN_MAX_FAILURES``
password checks per ``LOGIN_LOCKOUT_SECONDS`` window however many requests arrive at once,
and an IP at most ``LOGIN_IP_MAX_FAILURES`` per ``LOGIN_IP_WINDOW_SECONDS``, across accounts.

- success: the account's count is deleted, the IP's reservation handed back;
- failure: both stay counted; once the account reaches the maximum it stays locked for
  ``LOGIN_LOCK_SECONDS`` only, because anyone who knows an email can lock its account.

Expiry is set with ``PTTL``/``PEXPIRE`` inside the script (no ``EXPIRE ... NX``, which needs
Redis >= 7). Keys hold a digest of the email, never the email.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from core.errors import TooManyRequests
from core.managers.redis import RedisManager

_RESERVE = """
local ip = tonumber(redis.call('GET', KEYS[2]) or '0')
if ip >= tonumber(ARGV[3]) then return {2, redis.call('PTTL', KEYS[2])} end
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {1, redis.call('PTTL', KEYS[1])} end
redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('INCR', KEYS[2])
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return {0, 0}
"""

_FAILED = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) and redis.call('PTTL', KEYS[1]) > tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
"""

_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 0
"""

_ACCOUNT, _IP = 1, 2


@dataclass(frozen=True)
class LoginLimits:
    max_failures: int
    window_seconds: int
    lock_seconds: int
    ip_max_failures: int
    ip_window_seconds: int


class LoginGuard:
    """Reserve, then settle, one login attempt for an account and a client IP."""

    def __init__(self, redis_manager: RedisManager, limits: LoginLimits) -> None:
        self.redis = redis_manager
        self.limits = limits
        redis_manager.register_script("auth.login_reserve", _RESERVE)
        redis_manager.register_script("auth.login_failed", _FAILED)
        redis_manager.register_script("auth.login_succeeded", _SUCCEEDED)

    @staticmethod
    def account_key(email: str) -> str:
        # A digest, so account emails do not appear in Redis keys.
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        return f"auth:login_failures:{digest}"

    @staticmethod
    def ip_key(ip: str) -> str:
        return f"auth:login_ip_failures:{ip}"

    def reserve(self, email: str, ip: str) -> None:
        """Count this attempt before the password is checked, or raise 429."""
        limits = self.limits
        refused, pttl = self.redis.call_script(
            "auth.login_reserve",
            [self.account_key(email), self.ip_key(ip)],
            [
                limits.max_failures,
                limits.window_seconds * 1000,
                limits.ip_max_failures,
                limits.ip_window_seconds * 1000,
            ],
        )
        retry_after = max(1, -(-int(pttl) // 1000))
        if refused == _ACCOUNT:
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

    def failed(self, email: str) -> None:
        self.redis.call_script(
            "auth.login_failed",
            [self.account_key(email)],
            [self.limits.max_failures, self.limits.lock_seconds * 1000],
        )

    def succeeded(self, email: str, ip: str) -> None:
        self.redis.call_script("auth.login_succeeded", [self.account_key(email), self.ip_key(ip)])

    def unlock(self, email: str) -> bool:
        """Forget the account's failures (``flask users unlock``); True when it had some."""
        return bool(self.redis.delete(self.account_key(email)))
