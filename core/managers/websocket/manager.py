"""WebSocketManager: Flask-SocketIO with the same auth, limits and errors as HTTP.

- Threading mode in development and tests, gevent under gunicorn's gevent worker (chosen by
  whether gevent has patched the socket module); Redis is the message queue, so an emit on
  one instance reaches clients connected to any other. CORS comes from ``CORS_ORIGINS``
  (never ``*`` in prod: the settings refuse it); packets are bounded by
  ``SOCKETIO_MAX_BUFFER``; Engine.IO packet logging is off.
- Connect: the ``auth`` payload's access token is verified by the JWTManager (signature,
  claims, revocation). A refused connection gets ``connect_error`` with ``{code, message}``
  where every official client reads it (:class:`Refused`). The socket's identity is the
  token's subject, never a client-sent id.
- Every instance checks its own sockets' tokens every ``SOCKETIO_SWEEP_INTERVAL`` seconds
  (one Redis round trip for all of them) and disconnects those revoked or expired, telling
  each why first (``session_ended {code, message}``): logging out disconnects the user's
  sockets on every instance within about a second.
- Events are wrapped by :meth:`WebSocketManager.event`: the caller must be connected with a
  valid identity, the event counts against ``RATE_LIMIT_SOCKET``, and errors are answered in
  the ack as ``{"ok": false, "error": {"code", "message"}}``. Modules add events the same way
  from ``register_socket_handlers(websocket)``.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
import socketio
from flask import Flask, request
from flask_socketio import SocketIO

from config.settings import Settings
from core.edge.json import check_json_value
from core.edge.problems import DependencyOf, api_error
from core.errors import (
    ApiError,
    DependencyUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from core.managers.base import Manager
from core.managers.hooks import HooksManager
from core.managers.jwt import JWTManager
from core.managers.metrics import MetricsManager
from core.managers.rate_limiter import RateLimiter
from core.managers.redis import RedisManager
from core.managers.websocket.guard import HandshakeReaper, admit
from core.managers.websocket.queue import RedisQueue
from core.managers.websocket.rooms import RoomStore

logger = logging.getLogger(__name__)

EventHandler = Callable[["SocketSession", dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class SocketSession:
    """Who is on a socket, from the token that opened it."""

    sid: str
    user_id: str
    username: str
    claims: Mapping[str, Any]

    @property
    def user(self) -> dict[str, str]:
        return {"user_id": self.user_id, "username": self.username}


class Refused(socketio.exceptions.ConnectionRefusedError):  # type: ignore[misc]
    """Refuses a connection with ``{code, message}`` where every official client reads it.

    socket.io-client (JS) builds its ``connect_error`` from the packet as
    ``err.message = data.message`` and ``err.data = data.data``; python-socketio hands the
    whole packet data to the ``connect_error`` handler. So the error goes both at the top
    level (Python: ``data["code"]``) and under ``data`` (JS: ``err.data.code``).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        error = {"code": code, "message": message}
        self.error_args = {**error, "data": error}


def error_ack(error: ApiError) -> dict[str, Any]:
    """``{"ok": false, "error": {"code", "message"}}``, plus ``errors`` (each ``{field,
    message}``, at most 20) for a validation failure, as in a problem document."""
    answer: dict[str, Any] = {"code": error.code, "message": error.detail}
    if "errors" in error.extra:
        answer["errors"] = error.extra["errors"]
    return {"ok": False, "error": answer}


def async_mode() -> str:
    try:
        from gevent import monkey  # only where gevent is installed
    except ImportError:
        return "threading"
    return "gevent" if monkey.is_module_patched("socket") else "threading"


class WebSocketManager(Manager):
    name = "websocket"

    def __init__(
        self,
        settings: Settings,
        *,
        redis: RedisManager,
        jwt: JWTManager,
        rate_limiter: RateLimiter,
        metrics: MetricsManager,
        hooks: HooksManager,
        dependency_of: DependencyOf,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.jwt = jwt
        self.rate_limiter = rate_limiter
        self.metrics = metrics
        self.hooks = hooks
        #: Tells a failure of an unreachable store from a bug.
        self.dependency_of = dependency_of
        self.instance = secrets.token_hex(8)
        self.rooms = RoomStore(redis)
        self.sessions: dict[str, SocketSession] = {}
        #: ``gate(endpoint)`` run on every connect before the token (maintenance): the
        #: HTTP request gates, handed over by the app factory.
        self.connect_gates: list[Callable[[str | None], None]] = []
        self.queue = RedisQueue(
            redis.new_client("python-base-04-socketio"), f"{settings.redis_key_prefix}socketio"
        )
        self.socketio = SocketIO(
            async_mode=async_mode(),
            client_manager=self.queue,
            # CORS_ORIGINS empty: same origin only (None); Origin-less clients are not browsers.
            cors_allowed_origins=settings.cors_origins or None,
            max_http_buffer_size=settings.socketio_max_buffer,
            ping_interval=settings.socketio_ping_interval,
            ping_timeout=settings.socketio_ping_timeout,
            manage_session=False,
            logger=False,
            engineio_logger=False,
        )
        self.reaper = HandshakeReaper(
            settings.socketio_connect_timeout,
            # In a task of its own: closing waits for the socket's queue to drain, and one
            # slow client must not hold up the sweep.
            lambda eio_sid: self.socketio.start_background_task(
                self.socketio.server.eio.disconnect, eio_sid
            ),
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.messages_in = self.messages_out = 0
        hooks.register("app.draining", lambda **_: self.tell_shutdown())

    # -- wiring ---------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        self.socketio.init_app(app)
        self.socketio.on_event("connect", self._connect)
        self.socketio.on_event("disconnect", self._disconnect)

    def start(self) -> None:
        """Heartbeat, crashed-instance cleanup and the token sweep, in background threads."""
        for target, name in (
            (self._heartbeat_loop, "ws-heartbeat"),
            (self._sweep_loop, "ws-sweep"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def event(self, name: str) -> Callable[[EventHandler], EventHandler]:
        """Register ``handler(session, data) -> dict`` for event ``name`` with auth, limits
        and error handling; the returned dict (plus ``ok: true``) is the ack."""

        def decorator(handler: EventHandler) -> EventHandler:
            @functools.wraps(handler)
            def wrapper(data: Any = None, *_: Any) -> dict[str, Any]:
                started = time.perf_counter()
                answer = self._run(name, handler, data)
                outcome = "ok" if answer.get("ok") else answer["error"]["code"]
                seconds = time.perf_counter() - started
                self.metrics.socket_event(name, outcome, seconds)
                self.hooks.emit("socket.event", name=name, seconds=seconds)
                return answer

            self.socketio.on_event(name, wrapper)
            return handler

        return decorator

    def _run(self, name: str, handler: EventHandler, data: Any) -> dict[str, Any]:
        session = self.sessions.get(request.sid)  # type: ignore[attr-defined]
        if session is None:
            return error_ack(Unauthorized("Connect with a valid token first."))
        try:
            self.rate_limiter.check_socket(session.user_id)
            if not isinstance(data, dict):
                raise ValidationFailed(
                    [{"field": "", "message": "must be a JSON object"}],
                    detail="The event data must be an object.",
                )
            check_json_value(data)
            self.messages_in += 1
            return {"ok": True, **handler(session, data)}
        except Exception as exc:  # noqa: BLE001 - the error mapper logs what is unexpected
            error = api_error(exc, self.dependency_of, event=name)
            return error_ack(error)

    # -- connect / disconnect -------------------------------------------------------------

    def _connect(self, auth: Any = None) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]
        try:
            claims = admit(self.connect_gates, self.rate_limiter, self.jwt, auth)
            session = SocketSession(sid, claims["sub"], str(claims.get("username", "")), claims)
            if not self.rooms.register_socket(
                sid,
                session.user_id,
                session.username,
                self.instance,
                self.settings.socketio_max_sockets_per_user,
            ):
                raise TooManyRequests(
                    "Too many open sockets for this user; close one first.",
                    code="TOO_MANY_SOCKETS",
                    retry_after=1,
                )
        except Exception as exc:  # noqa: BLE001 - the error mapper logs what is unexpected
            error = api_error(exc, self.dependency_of, event="connect")
            self.metrics.socket_refused(error.code)
            raise Refused(error.code, error.detail) from None
        self.sessions[sid] = session
        self.metrics.socket_connected()

    def _disconnect(self, *_: Any) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]
        if self.sessions.pop(sid, None) is not None:
            self.metrics.socket_disconnected()
            self.forget(sid)

    def forget(self, sid: str) -> None:
        """Drop a socket's presence and tell the rooms it was in that its user left."""
        try:
            info, rooms = self.rooms.drop_socket(sid)
            user = {"user_id": info.get("user_id", ""), "username": info.get("username", "")}
            for room_id in rooms:
                if not self.rooms.user_present(room_id, user["user_id"], except_sid=sid):
                    self.emit("user_left", {"room_id": room_id, "user": user}, room=room_id)
        except (redis.ConnectionError, redis.TimeoutError):
            logger.warning("socket presence not cleaned: redis unavailable", extra={"sid": sid})

    def emit(
        self, event: str, data: dict[str, Any], room: str, skip_sid: str | None = None
    ) -> None:
        self.messages_out += 1
        self.socketio.emit(event, data, to=room, skip_sid=skip_sid)

    def connected(self) -> int:
        return len(self.sessions)

    # -- background work ------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        interval = self.settings.socketio_instance_ttl / 3
        while not self._stop.is_set():
            try:
                self.rooms.heartbeat(self.instance, self.settings.socketio_instance_ttl)
                self.reap_dead_instances()
                self.rooms.expire_empty(self.settings.socketio_room_empty_ttl)
            except (redis.ConnectionError, redis.TimeoutError):
                logger.warning("socket heartbeat failed: redis unavailable")
            self._stop.wait(interval)

    def reap_dead_instances(self) -> int:
        """Remove the presence of sockets whose instance stopped heartbeating."""
        reaped = 0
        for instance in self.rooms.dead_instances():
            if instance == self.instance or not self.rooms.claim_reap(instance):
                continue
            for sid in self.rooms.instance_sids(instance):
                self.forget(sid)
                reaped += 1
            self.rooms.forget_instance(instance)
            logger.info("dead socket instance cleaned", extra={"instance": instance})
        return reaped

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.settings.socketio_sweep_interval):
            self.reap_handshakes()
            try:
                self.sweep()
            except (redis.ConnectionError, redis.TimeoutError, DependencyUnavailable):
                logger.warning("socket token sweep skipped: redis unavailable")

    def reap_handshakes(self) -> list[str]:
        """Close Engine.IO connections without an accepted connect (``guard``)."""
        server = self.socketio.server
        admitted = {server.manager.eio_sid_from_sid(sid, "/") for sid in list(self.sessions)}
        return self.reaper.reap(list(server.eio.sockets), admitted)

    def sweep(self) -> list[str]:
        """Disconnect this instance's sockets whose token expired or was revoked."""
        sessions = list(self.sessions.values())
        now = time.time()
        expired = [s for s in sessions if s.claims["exp"] <= now]
        live = [s for s in sessions if s.claims["exp"] > now]
        revoked: list[SocketSession] = []
        if live:
            with self.redis.client.pipeline(transaction=False) as pipe:
                for session in live:
                    pipe.exists(*self.jwt.revocation_keys(session.claims))
                answers = pipe.execute()
            revoked = [s for s, hit in zip(live, answers, strict=True) if hit]
        ended = [
            *((s, "TOKEN_EXPIRED", "The token has expired.") for s in expired),
            *((s, "TOKEN_REVOKED", "The token has been revoked.") for s in revoked),
        ]
        dropped = []
        for session, code, message in ended:
            # Straight to the socket, ahead of the disconnect: the client learns whether to
            # refresh and reconnect (expired) or to log in again (revoked).
            self.socketio.server.emit(
                "session_ended",
                {"code": code, "message": message},
                to=session.sid,
                ignore_queue=True,
            )
            self.socketio.server.disconnect(session.sid, ignore_queue=True)
            if self.sessions.pop(session.sid, None) is not None:
                self.metrics.socket_disconnected()
                self.forget(session.sid)
            dropped.append(session.sid)
        return dropped

    def tell_shutdown(self) -> None:
        """Tell this instance's sockets the server is going away (they reconnect elsewhere)."""
        for sid in list(self.sessions):
            self.socketio.emit("server_shutdown", {}, to=sid)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads = []
        self.tell_shutdown()
        for sid in list(self.sessions):
            self.socketio.server.disconnect(sid, ignore_queue=True)
            if self.sessions.pop(sid, None) is not None:
                self.forget(sid)
        try:
            self.queue.close()
        except (redis.ConnectionError, redis.TimeoutError):
            logger.warning("socket queue not closed cleanly: redis unavailable")
