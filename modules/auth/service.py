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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import Unauthorized
from core.managers.database.pages import Page
from core.managers.hooks import HooksManager
from core.managers.jwt import JWTManager, TokenPair
from modules.auth.lockout import LoginGuard
from modules.auth.schemas import Credentials, Registration
from modules.auth.sessions import SessionStore
from modules.auth.users import UserStore, public


@dataclass(frozen=True)
class Client:
    """Who is calling: the per-IP limits' key (an IPv6 client by its /64), the address and the
    user agent a session shows."""

    limit_key: str
    address: str | None
    user_agent: str | None


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
        sessions: SessionStore,
    ) -> None:
        self.users = users
        self.jwt = jwt
        self.guard = guard
        self.hooks = hooks
        self.sessions = sessions

    def register(
        self, registration: Registration, roles: tuple[str, ...] = ("user",)
    ) -> dict[str, Any]:
        """Create the account in one write (roles included), then emit ``user.registered``.

        ``registration`` is validated already (the route's body, or ``load_model``)."""
        email, username, password = registration.email, registration.username, registration.password
        self.users.ensure_available(email, username)  # before the hash: a taken email is cheap
        user = self.users.create(email, username, password, roles)
        self.hooks.emit("user.registered", user=public(user))
        return user

    def login(self, credentials: Credentials, client: Client) -> tuple[dict[str, Any], bool]:
        """The login's answer (token pair, user, a new ``device_token``) and whether the
        attempt came from a trusted device (judged by that device's own failure budget)."""
        email, password = credentials.email, credentials.password
        user = self.users.by_email(email)
        user_id = str(user["_id"]) if user else None
        # 429 LOGIN_LOCKED / RATE_LIMITED, before any password is checked.
        attempt = self.guard.reserve(email, client.limit_key, user_id, credentials.device_token)
        # argon2 runs for an unknown email too (a dummy hash): both failures cost the same.
        valid = self.users.hasher.verify(user["password_hash"] if user else None, password)
        if user is None or user_id is None or not valid:
            self.guard.failed(attempt)
            raise Unauthorized("Email or password is wrong.", code="INVALID_CREDENTIALS")
        device_token = self.guard.succeeded(attempt, user_id)
        if self.users.hasher.needs_rehash(user["password_hash"]):
            self.users.set_password_hash(user["_id"], self.users.hasher.hash(password))
        pair = self.jwt.issue_pair(user_id, user["roles"], username=user["username"])
        self.sessions.started(pair.family, user_id, client.address, client.user_agent)
        self.hooks.emit("user.logged_in", user=public(user), family=pair.family)
        answer = {
            **token_pair_body(pair, user),
            "device_token": device_token,
            "device_expires_in": self.guard.limits.device_ttl,
        }
        return answer, attempt.trusted

    def refresh(self, token: str, client: Client) -> dict[str, Any]:
        claims = self.jwt.decode(token, "refresh")
        user = self.users.by_id(claims["sub"])
        if user is None:
            raise Unauthorized("The token is invalid.", code="TOKEN_INVALID")
        try:
            pair, _ = self.jwt.rotate(token, roles=user["roles"], username=user["username"])
        except Unauthorized as exc:
            if exc.code == "REFRESH_TOKEN_REUSED":  # the family was revoked: the session ended
                self.sessions.ended([claims["fam"]])
            raise
        self.sessions.refreshed(pair.family, claims["sub"], client.address, client.user_agent)
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
        self.jwt.revoke_families(sorted(families))
        self.jwt.revoke_token(access_claims)
        self.sessions.ended(sorted(families))
        self.hooks.emit("user.logged_out", user_id=access_claims["sub"], families=sorted(families))

    # -- sessions (docs/auth.md, "Sessions") ----------------------------------------------

    def list_sessions(
        self, access_claims: Mapping[str, Any], limit: int, cursor: str | None
    ) -> Page[dict[str, Any]]:
        return self.sessions.page(access_claims["sub"], access_claims["fam"], limit, cursor)

    def end_session(self, access_claims: Mapping[str, Any], session_id: str) -> str:
        """End one of the caller's sessions (404 unless theirs): its family."""
        family = self.sessions.family_of(access_claims["sub"], session_id)
        self._end(access_claims["sub"], {session_id: family})
        return family

    def end_other_sessions(self, access_claims: Mapping[str, Any]) -> list[str]:
        """End every session of the caller but the current one: their ids."""
        ended: list[str] = []
        for batch in self.sessions.others(access_claims["sub"], access_claims["fam"]):
            self._end(access_claims["sub"], batch)
            ended.extend(batch)
        return ended

    def end_all_sessions(self, user_id: str | None) -> list[str]:
        """End every recorded session of ``user_id``, or of every user (None): their ids."""
        ended: list[str] = []
        for owner, batch in self.sessions.all_of(user_id):
            self._end(owner, batch)
            ended.extend(batch)
        return ended

    def _end(self, user_id: str, sessions: Mapping[str, str]) -> None:
        """Revoke the families first (every token of them stops working on every instance,
        sockets included), then forget the sessions."""
        families = sorted(sessions.values())
        self.jwt.revoke_families(families)
        self.sessions.ended(families)
        self.hooks.emit("user.logged_out", user_id=user_id, families=families)
