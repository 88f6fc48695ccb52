"""Register, login (with lockout), refresh and logout: the rules of docs/auth.md, in one place.

Redis or MongoDB errors are not caught here: the HTTP layer answers them with 503
``DEPENDENCY_UNAVAILABLE``, so a login never half-succeeds.
"""

from __future__ import annotations

import hashlib
from typing import Any

from core.errors import TooManyRequests, Unauthorized, ValidationFailed
from core.managers.hooks import HooksManager
from core.managers.jwt import JWTManager, TokenPair
from core.managers.redis import RedisManager
from modules.auth.users import PASSWORD_MAX, UserStore, public, validate_registration


def token_pair_body(pair: TokenPair, user: dict[str, Any]) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_expires_in": pair.refresh_expires_in,
        "user": public(user),
    }


def _string(body: dict[str, Any], field: str, max_length: int = 4096) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise ValidationFailed([{"field": f"/{field}", "message": "must be a non-empty string"}])
    return value


class AuthService:
    def __init__(
        self,
        users: UserStore,
        jwt: JWTManager,
        redis_manager: RedisManager,
        hooks: HooksManager,
        max_failures: int,
        lockout_seconds: int,
    ) -> None:
        self.users = users
        self.jwt = jwt
        self.redis = redis_manager
        self.hooks = hooks
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds

    def register(self, body: dict[str, Any], roles: tuple[str, ...] = ("user",)) -> dict[str, Any]:
        """Create the account in one write (roles included), then emit ``user.registered``."""
        email, username, password = validate_registration(body)
        user = self.users.create(email, username, password, roles)
        self.hooks.emit("user.registered", user=public(user))
        return user

    def _failures_key(self, email: str) -> str:
        # A digest, so account emails do not appear in Redis keys.
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        return self.redis.key("auth", "login_failures", digest)

    def login(self, body: dict[str, Any]) -> dict[str, Any]:
        email = _string(body, "email", 254)
        password = _string(body, "password", PASSWORD_MAX)
        key = self._failures_key(email)
        client = self.redis.client
        failures = int(client.get(key) or 0)
        if failures >= self.max_failures:
            raise TooManyRequests(
                "Too many failed logins; try again later.",
                code="LOGIN_LOCKED",
                retry_after=max(1, int(client.ttl(key))),
            )
        user = self.users.by_email(email)
        stored = user["password_hash"] if user else None
        if user is None or not self.users.hasher.verify(stored, password):
            with client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, self.lockout_seconds, nx=True)
                pipe.execute()
            raise Unauthorized("Email or password is wrong.", code="INVALID_CREDENTIALS")
        client.delete(key)
        if self.users.hasher.needs_rehash(user["password_hash"]):
            self.users.set_password_hash(user["_id"], self.users.hasher.hash(password))
        pair = self.jwt.issue_pair(str(user["_id"]), user["roles"], username=user["username"])
        self.hooks.emit("user.logged_in", user=public(user), family=pair.family)
        return token_pair_body(pair, user)

    def refresh(self, body: dict[str, Any]) -> dict[str, Any]:
        token = _string(body, "refresh_token", 8192)
        claims = self.jwt.decode(token, "refresh")
        user = self.users.by_id(claims["sub"])
        if user is None:
            raise Unauthorized("The token is invalid.", code="TOKEN_INVALID")
        pair, _ = self.jwt.rotate(token, roles=user["roles"], username=user["username"])
        return token_pair_body(pair, user)

    def logout(self, access_claims: dict[str, Any], body: dict[str, Any]) -> None:
        """Revoke the whole login of the access token, and of the refresh token if given."""
        families = {access_claims["fam"]}
        refresh = body.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            try:
                refresh_claims = self.jwt.decode(refresh, "refresh")
            except Unauthorized:
                refresh_claims = None
            if refresh_claims and refresh_claims["sub"] == access_claims["sub"]:
                families.add(refresh_claims["fam"])
        for family in families:
            self.jwt.revoke_family(family)
        self.jwt.revoke_token(access_claims)
        self.hooks.emit("user.logged_out", user_id=access_claims["sub"], families=sorted(families))
