"""Register, login (with lockout), refresh and logout: the rules of docs/auth.md, in one place.

Login reserves the attempt (modules/auth/lockout.py) before checking the password, judged by
the account's budget or, with a valid device token of the account, by that device's; it always
runs argon2 (a dummy hash for an unknown email), so neither a burst of concurrent guesses nor
the response time tells more than the answer. Register checks that email and username are
free before it spends a hash on them.

Redis or MongoDB errors are not caught here: the HTTP layer answers them with 503
``DEPENDENCY_UNAVAILABLE``, so a login never half-succeeds.
"""

from __future__ import annotations

from typing import Any

from core.errors import Unauthorized
from core.managers.hooks import HooksManager
from core.managers.jwt import JWTManager, TokenPair
from modules.auth.lockout import LoginGuard
from modules.auth.schemas import Credentials, Registration
from modules.auth.users import UserStore, public


def token_pair_body(pair: TokenPair, user: dict[str, Any]) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_expires_in": pair.refresh_expires_in,
        "user": public(user),
    }


class AuthService:
    def __init__(
        self,
        users: UserStore,
        jwt: JWTManager,
        guard: LoginGuard,
        hooks: HooksManager,
    ) -> None:
        self.users = users
        self.jwt = jwt
        self.guard = guard
        self.hooks = hooks

    def register(
        self, registration: Registration, roles: tuple[str, ...] = ("user",)
    ) -> dict[str, Any]:
        """Create the account in one write (roles included), then emit ``user.registered``.

        ``registration`` is validated already (the route's body, or ``validate_model``)."""
        email, username, password = registration.email, registration.username, registration.password
        self.users.ensure_available(email, username)  # before the hash: a taken email is cheap
        user = self.users.create(email, username, password, roles)
        self.hooks.emit("user.registered", user=public(user))
        return user

    def login(self, credentials: Credentials, client_ip: str) -> tuple[dict[str, Any], bool]:
        """The login's answer (token pair, user, a new ``device_token``) and whether the
        attempt came from a trusted device (judged by that device's own failure budget)."""
        email, password = credentials.email, credentials.password
        user = self.users.by_email(email)
        user_id = str(user["_id"]) if user else None
        # 429 LOGIN_LOCKED / RATE_LIMITED, before any password is checked.
        attempt = self.guard.reserve(email, client_ip, user_id, credentials.device_token)
        # argon2 runs for an unknown email too (a dummy hash): both failures cost the same.
        valid = self.users.hasher.verify(user["password_hash"] if user else None, password)
        if user is None or user_id is None or not valid:
            self.guard.failed(attempt)
            raise Unauthorized("Email or password is wrong.", code="INVALID_CREDENTIALS")
        device_token = self.guard.succeeded(attempt, user_id)
        if self.users.hasher.needs_rehash(user["password_hash"]):
            self.users.set_password_hash(user["_id"], self.users.hasher.hash(password))
        pair = self.jwt.issue_pair(user_id, user["roles"], username=user["username"])
        self.hooks.emit("user.logged_in", user=public(user), family=pair.family)
        answer = {
            **token_pair_body(pair, user),
            "device_token": device_token,
            "device_expires_in": self.guard.limits.device_ttl,
        }
        return answer, attempt.trusted

    def refresh(self, token: str) -> dict[str, Any]:
        claims = self.jwt.decode(token, "refresh")
        user = self.users.by_id(claims["sub"])
        if user is None:
            raise Unauthorized("The token is invalid.", code="TOKEN_INVALID")
        pair, _ = self.jwt.rotate(token, roles=user["roles"], username=user["username"])
        return token_pair_body(pair, user)

    def logout(self, access_claims: dict[str, Any], refresh: str | None) -> None:
        """Revoke the whole login of the access token, and of the refresh token if given."""
        families = {access_claims["fam"]}
        if refresh:
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
