"""How long an open socket lives: its token, refreshed in band, and the bans and revocations
that end it early, on every instance.

Every ``SOCKETIO_SWEEP_INTERVAL`` seconds each instance looks at its own sockets:

- a token within ``SOCKETIO_EXPIRY_NOTICE`` seconds of its expiry: ``session_expiring
  {expires_at}``, once per token (the client answers with ``refresh_session``);
- a token that expired: ``session_ended {code: TOKEN_EXPIRED}``, then the socket is dropped;
- one Redis round trip for the rest: one ``EXISTS`` over every key that would end a socket
  of the batch (each token's revocation marks, the bans of its address, its user and its
  user's socket events). It answers 0 almost always: nothing more to do. Only a batch with
  a hit takes the per-socket look (one ``EXISTS`` per socket, then one over the hits'
  revocation marks to tell which). The manager hands the sockets over in batches
  (``manager.SWEEP_BATCH``): ``session_ended {code: TOKEN_REVOKED}`` or ``{code: BANNED}``,
  then the socket is dropped. A batch whose round trip fails (Redis
  down) still has its expired tokens ended (:meth:`Lifetimes.expired`), and the batches
  after it go on.

A socket's keys are built once per token (at its first sweep, again after a refresh), not at
every sweep: building them and a pipelined command per socket were most of the sweep's cost,
about 17 µs per socket per second (issue 24).

``refresh_session {token}`` swaps a socket's token for a new access token of the same user
(signature, claims and revocation checked like a connect's); a refused one leaves the old
token in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from core.errors import Forbidden
from core.managers.database.json import to_json_compatible
from core.managers.jwt import JWTManager, token_revoked
from core.managers.rate_limiter import RateLimiter
from core.managers.redis import RedisManager


class Session(Protocol):
    """What the sweep reads of a socket's session (``manager.SocketSession``, a dataclass)."""

    @property
    def sid(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def ip(self) -> str: ...
    @property
    def claims(self) -> Mapping[str, Any]: ...


S = TypeVar("S", bound=Session)

#: (code, message) of each way a session ends.
ENDINGS = {
    "TOKEN_EXPIRED": "The token has expired.",
    "TOKEN_REVOKED": token_revoked().detail,
    "BANNED": "This client is temporarily banned.",
}


def expires_at(claims: Mapping[str, Any]) -> str:
    """The token's expiry as the API writes times (ISO 8601, UTC)."""
    return str(to_json_compatible(datetime.fromtimestamp(claims["exp"], UTC)))


@dataclass(frozen=True)
class Ending(Generic[S]):
    session: S
    code: str

    @property
    def message(self) -> str:
        return ENDINGS[self.code]


class Lifetimes:
    """The sweep's decisions and ``refresh_session``; the manager sends and drops."""

    def __init__(
        self,
        redis: RedisManager,
        jwt: JWTManager,
        limiter: RateLimiter,
        notice_seconds: float,
        notify: Callable[[str, str, dict[str, Any]], None],
    ) -> None:
        self.redis = redis
        self.jwt = jwt
        self.limiter = limiter
        self.notice_seconds = notice_seconds
        self._notify = notify  # (sid, event, data), this instance's socket only
        self._noticed: dict[str, float] = {}  # sid -> the exp it was told about
        #: sid -> (the claims they were built for, the keys that would end the socket)
        self._keys: dict[str, tuple[Mapping[str, Any], tuple[str, ...]]] = {}

    def _ban_keys(self, session: Session) -> list[str]:
        return [
            self.limiter.ban_key("ip", session.ip),
            self.limiter.ban_key("user", session.user_id),
            self.limiter.ban_key("socket", session.user_id),
        ]

    def _ending_keys(self, session: Session) -> tuple[str, ...]:
        """The keys whose existence ends ``session``: its token's revocation marks, then its
        bans (built once for each token the socket holds)."""
        known = self._keys.get(session.sid)
        if known is not None and known[0] is session.claims:
            return known[1]
        keys = (*self.jwt.revocation_keys(session.claims), *self._ban_keys(session))
        self._keys[session.sid] = (session.claims, keys)
        return keys

    def sweep(self, sessions: list[S]) -> list[Ending[S]]:
        """Tell the sockets whose token expires soon; the sessions that must end."""
        now = time.time()
        for session in sessions:
            exp = session.claims["exp"]
            if now < exp <= now + self.notice_seconds and self._noticed.get(session.sid) != exp:
                self._noticed[session.sid] = exp
                self._notify(
                    session.sid, "session_expiring", {"expires_at": expires_at(session.claims)}
                )
        endings = self.expired(sessions, now)
        live = [s for s in sessions if s.claims["exp"] > now]
        if not live:
            return endings
        client = self.redis.client
        keys = [self._ending_keys(session) for session in live]
        if not client.exists(*{key for each in keys for key in each}):
            return endings  # nothing revoked or banned: the answer for almost every batch
        with client.pipeline(transaction=False) as pipe:
            for each in keys:
                pipe.exists(*each)
            hits = [s for s, found in zip(live, pipe.execute(), strict=True) if found]
        if not hits:
            return endings
        with client.pipeline(transaction=False) as pipe:
            for session in hits:
                pipe.exists(*self.jwt.revocation_keys(session.claims))
            revoked = pipe.execute()
        endings.extend(
            Ending(s, "TOKEN_REVOKED" if was_revoked else "BANNED")
            for s, was_revoked in zip(hits, revoked, strict=True)
        )
        return endings

    def expired(self, sessions: list[S], now: float | None = None) -> list[Ending[S]]:
        """The sessions whose token expired (no Redis needed: what the sweep still ends
        while Redis is down)."""
        now = time.time() if now is None else now
        return [Ending(s, "TOKEN_EXPIRED") for s in sessions if s.claims["exp"] <= now]

    def forget(self, sid: str) -> None:
        self._noticed.pop(sid, None)
        self._keys.pop(sid, None)

    def refresh(self, session: S, token: str) -> S:
        """The session with ``token``'s claims; raises the token's error code, or FORBIDDEN
        for another user's token."""
        claims = self.jwt.verify(token)
        if claims["sub"] != session.user_id:
            raise Forbidden("The token belongs to another user.", code="FORBIDDEN")
        self._noticed.pop(session.sid, None)
        return replace(session, claims=claims, username=str(claims.get("username", "")))  # type: ignore[type-var]
