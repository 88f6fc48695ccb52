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
  (one Redis round trip per ``SWEEP_BATCH`` sockets) and disconnects those revoked or
  expired, telling each why first (``session_ended {code, message}``): logging out
  disconnects the user's sockets on every instance within about a second.
- Events are declared on :attr:`WebSocketManager.events` (:class:`~.typed.SocketEvents`,
  what a module's ``register_socket_handlers(events)`` gets): the caller must be connected
  with a valid identity, the event counts against ``RATE_LIMIT_SOCKET`` (and its own limit),
  the payload is validated by its schema, and the answer is the ack: ``{"ok": true, ...}`` or
  ``{"ok": false, "error": {"code", "message"}}`` (:func:`core.edge.problems.api_error`).
  The server emits only the events declared with ``events.emits``.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

import redis
import socketio
from flask import Flask, request
from flask_socketio import SocketIO, join_room
from pydantic import BaseModel, Field

from config.settings import Settings
from core.edge.json import check_json_value
from core.edge.problems import DependencyOf, api_error, unexpected
from core.errors import (
    ApiError,
    DependencyUnavailable,
    ShuttingDown,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from core.managers.admission import Admission, Caller
from core.managers.base import Manager
from core.managers.database.json import to_json_compatible
from core.managers.hooks import HooksManager
from core.managers.jwt import JWTManager
from core.managers.metrics import MetricsManager
from core.managers.rate_limiter import RateLimiter
from core.managers.redis import RedisManager
from core.managers.websocket.delivery import Delivery, after_ack, install_after_ack
from core.managers.websocket.door import OPENING_ROUTE, EngineIODoor
from core.managers.websocket.drain import effective_spread_ms, run_drain, schedule
from core.managers.websocket.frames import DirectFrames
from core.managers.websocket.guard import HandshakeReaper, admit
from core.managers.websocket.lifetimes import Lifetimes, expires_at
from core.managers.websocket.models import ChatMessage, Presence, RoomPresence
from core.managers.websocket.presence import Change, PresenceStore
from core.managers.websocket.queue import RedisQueue
from core.managers.websocket.roomlog import Recovery, RoomLog
from core.managers.websocket.transport import install_handshake
from core.managers.websocket.typed import ClientEvent, SocketEvents, SocketSession

logger = logging.getLogger(__name__)

#: A room's ``room_presence`` goes out this long after its claim on it expired in Redis, so
#: every change that found the claim taken is in the count it reads.
NOTICE_MARGIN = 0.05

#: Sockets the token sweep checks per Redis round trip. While a batch's answer comes the
#: worker's loop serves everything else: one pipeline over 10,000 sockets held it for a
#: few hundred ms every second (key building, encoding, replies), and every request and
#: probe waited.
SWEEP_BATCH = 500

#: Sockets whose presence this instance owes Redis at most (a write Redis did not answer,
#: settled at a later heartbeat): past it the oldest debt is dropped, and that socket's
#: presence stays until this instance dies (every other instance's reap removes it then).
OWED_MAX = 50_000

#: Owed sockets one heartbeat settles at most (about a second of its work, measured: 5,000
#: took 6.5 s on a loaded 2-core machine); while some are left the next beat comes after
#: :data:`SETTLE_PAUSE` seconds instead of ``SOCKETIO_PRESENCE_TTL / 6``.
SETTLE_BATCH = 1000
SETTLE_PAUSE = 1.0

#: Times one settling of a socket writes its presence again when the socket's rooms moved
#: while it wrote; after that the socket is owed to the next heartbeat.
SETTLE_TRIES = 3


class SessionEnded(BaseModel):
    """Why the server is about to drop this socket."""

    #: ``TOKEN_EXPIRED`` (refresh and reconnect), ``TOKEN_REVOKED`` (log in again) or
    #: ``BANNED`` (wait until the ban ends).
    code: str
    message: str


class ServerShutdown(BaseModel):
    """This instance is shutting down: the server closes the socket after
    ``reconnect_after_ms``; connect again then (to another instance)."""

    #: Spread evenly over the instance's sockets (``SOCKETIO_RECONNECT_SPREAD_MS``).
    reconnect_after_ms: int


class SessionExpiring(BaseModel):
    """The socket's token expires soon (``SOCKETIO_EXPIRY_NOTICE``): send
    ``refresh_session`` with a new one."""

    #: ISO 8601, UTC.
    expires_at: str


class RefreshSession(BaseModel):
    #: A new access token of the same user (e.g. from ``POST /public/refresh``).
    token: str = Field(min_length=1)


class SessionRefreshed(BaseModel):
    #: When the new token expires, and with it the socket (ISO 8601, UTC).
    expires_at: str


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
        admission: Admission,
        rate_limiter: RateLimiter,
        metrics: MetricsManager,
        hooks: HooksManager,
        dependency_of: DependencyOf,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.jwt = jwt
        #: The one admission function: connects and every event pass it.
        self.admission = admission
        self.rate_limiter = rate_limiter
        self.metrics = metrics
        self.hooks = hooks
        #: Tells a failure of an unreachable store from a bug.
        self.dependency_of = dependency_of
        self.instance = secrets.token_hex(8)
        channel = redis.key("socketio")
        self.log = RoomLog(
            redis, channel, settings.socketio_history_max, settings.socketio_history_seconds
        )
        #: Membership and presence of the rooms, across instances (:mod:`.presence`).
        self.rooms = PresenceStore(
            redis, settings.socketio_presence_events_max, settings.socketio_room_presence_interval
        )
        self.sessions: dict[str, SocketSession] = {}
        #: Sockets whose connect is being answered (waiting at the gate or inside it): they
        #: sent their CONNECT, so the handshake reaper leaves them alone.
        self.connecting: set[str] = set()
        #: Openings, connects, leaves and event admissions do their Redis work at most this
        #: many at a time, in arrival order (event handlers are not held back). In a
        #: reconnect storm or a mass leave thousands of greenlets are runnable at once; each
        #: one holding a pooled connection waits for the hub to come round again, and the
        #: rest waited past ``REDIS_POOL_TIMEOUT_MS`` (503 ``DEPENDENCY_UNAVAILABLE``,
        #: presence left in Redis). Waiting here holds nothing.
        self.gate = threading.BoundedSemaphore(max(1, settings.redis_max_connections // 2))
        self.lifetimes = Lifetimes(
            redis, jwt, rate_limiter, settings.socketio_expiry_notice, self._send_here
        )
        self.draining = False
        self.queue = RedisQueue(redis.new_client("python-base-04-socketio"), channel)
        self.delivery = Delivery(self._send_here)
        self.queue.delivery = self.delivery
        #: A room message's frame written straight to its members' websockets (gevent).
        self.frames = DirectFrames()
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
        #: In front of engine.io (``core.factory.wrap_wsgi`` puts it there): admits openings
        #: per address and in all, and ends the TCP connection of a closed websocket.
        self.door = EngineIODoor(
            None,
            per_ip=settings.socketio_max_connections_per_ip,
            close_grace=settings.socketio_close_grace,
            admit=self._admit_opening,
            spawn=self.socketio.start_background_task,
            sleep=self.socketio.sleep,
            dependency_of=dependency_of,
            refused=self._opening_refused,
        )
        self._stop = threading.Event()
        #: The ``room_presence`` notices this instance claimed and has not sent, by task:
        #: :meth:`close` sends those still waiting (nobody else would until the next change).
        self._notices: dict[object, str] = {}
        self._threads: list[threading.Thread] = []
        #: This instance's sockets whose presence Redis may hold wrongly (a write it did not
        #: answer), oldest first, with their user when known: :meth:`settle_presence`.
        self._owed: dict[str, dict[str, str] | None] = {}
        self._owed_lock = threading.Lock()
        self.messages_in = self.messages_out = 0
        #: The app's Socket.IO events, client and server (``/asyncapi.json`` lists them).
        self.events = SocketEvents(self._serve)
        self.events.emits(
            "message", ChatMessage, summary="A message sent to a room the socket is in."
        )
        self.events.emits(
            "user_joined",
            Presence,
            summary="A user's first socket joined the room (rooms of up to "
            "SOCKETIO_PRESENCE_EVENTS_MAX users).",
        )
        self.events.emits(
            "user_left",
            Presence,
            summary="A user's last socket left the room (rooms of up to "
            "SOCKETIO_PRESENCE_EVENTS_MAX users).",
        )
        self.events.emits(
            "room_presence",
            RoomPresence,
            summary="How many users are in a room of more than SOCKETIO_PRESENCE_EVENTS_MAX, "
            "after users joined or left it; at most once every "
            "SOCKETIO_ROOM_PRESENCE_INTERVAL seconds.",
        )
        self.events.emits(
            "session_ended",
            SessionEnded,
            summary="The socket's session ended (token expired or revoked, or banned); it is "
            "dropped next.",
        )
        self.events.emits(
            "server_shutdown",
            ServerShutdown,
            summary="This instance is shutting down: the socket is closed after "
            "reconnect_after_ms; connect again then (to another instance).",
        )
        self.events.emits(
            "session_expiring",
            SessionExpiring,
            summary="The socket's token expires soon: send refresh_session with a new one.",
        )
        self.events.on(
            "refresh_session",
            payload=RefreshSession,
            ack=SessionRefreshed,
            errors={
                "FORBIDDEN": 403,
                "TOKEN_INVALID": 401,
                "TOKEN_EXPIRED": 401,
                "TOKEN_REVOKED": 401,
            },
            summary="Replace the socket's access token with a new one of the same user.",
        )(self._refresh_session)
        hooks.register("app.draining", self._drain)

    # -- wiring ---------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        self.socketio.init_app(app)
        install_after_ack(self.socketio.server)
        install_handshake(self.socketio.server.eio)
        if self.frames.install(self.socketio.server.eio):
            self.queue.frames = self.frames
        # The framework's own connect and disconnect go to python-socketio's server straight:
        # flask-socketio would build a Flask request context (a Request, the URL adapter, a
        # session) around each, and neither reads one (decision 103). Events keep it.
        self.socketio.server.on("connect", self._connect)
        self.socketio.server.on("disconnect", self._disconnect)
        eio = self.socketio.server.eio
        self.door.watch(eio.on, eio.handlers)

    def limit_connections(self, worker_connections: int) -> None:
        """Called by the server (gunicorn's ``post_worker_init``) with its connection limit:
        Engine.IO connections stop ``SOCKETIO_CONNECTION_RESERVE`` short of it."""
        self.door.limit(worker_connections, self.settings.socketio_connection_reserve)

    def _admit_opening(self, address: str) -> None:
        """An Engine.IO opening counts at the ``ip`` level (limits and bans). Maintenance is
        left to the Socket.IO CONNECT, where clients read its message (``connect_error``). A
        draining instance refuses it (503 ``SHUTTING_DOWN``: a load balancer tries another)."""
        self._refuse_while_draining(None)
        with self.gate:
            self.admission.admit_ip(address)

    def _opening_refused(self, error: ApiError) -> None:
        """A refused opening counts like a refused connect (``socketio_connects_total``); one
        refused by a bug or an outage also counts like an HTTP request's
        (``http_exceptions_total{route="/socket.io/"}``)."""
        self.metrics.socket_refused(error.code)
        cause = unexpected(error)
        if cause is not None:
            self.metrics.http_exception(OPENING_ROUTE, cause)

    def start(self) -> None:
        """Heartbeat, crashed-instance cleanup and the token sweep, in background threads."""
        for target, name in (
            (self._heartbeat_loop, "ws-heartbeat"),
            (self._sweep_loop, "ws-sweep"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, event: ClientEvent) -> None:
        """Answer the declared client event ``event`` (:meth:`SocketEvents.on`)."""
        name = event.endpoint.name

        def answer(data: Any = None, *_: Any) -> dict[str, Any]:
            started = time.perf_counter()
            ack = self._run(event, data)
            outcome = "ok" if ack.get("ok") else ack["error"]["code"]
            seconds = time.perf_counter() - started
            self.metrics.socket_event(name, outcome, seconds)
            self.hooks.emit("socket.event", name=name, seconds=seconds)
            return ack

        self.socketio.on_event(name, answer)

    def _run(self, event: ClientEvent, data: Any) -> dict[str, Any]:
        session = self.sessions.get(request.sid)  # type: ignore[attr-defined]
        if session is None:
            return error_ack(Unauthorized("Connect with a valid token first."))
        endpoint = event.endpoint
        try:
            with self.gate:
                self.admission.admit(endpoint, Caller(ip=session.ip, session=session.principal))
            if not isinstance(data, dict):
                raise ValidationFailed(
                    [{"field": "", "message": "must be a JSON object"}],
                    detail="The event data must be an object.",
                )
            check_json_value(data)
            payload = endpoint.input.load(data) if endpoint.input is not None else data
            self.messages_in += 1
            value = event.handler(session, payload if event.takes_payload else None)
            return self.events.ack(event, value)
        except Exception as exc:  # noqa: BLE001 - the error mapper logs what is unexpected
            return error_ack(api_error(exc, self.dependency_of, event=endpoint.name))

    # -- connect / disconnect -------------------------------------------------------------

    def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        """Admit the connect of socket ``sid`` over the Engine.IO connection opened with
        ``environ`` (False: its client left while it waited; refused quietly)."""
        self.connecting.add(sid)
        try:
            with self.gate:
                session = self._admit_connect(sid, auth, environ.get("REMOTE_ADDR"))
        except Exception as exc:  # noqa: BLE001 - the error mapper logs what is unexpected
            error = api_error(exc, self.dependency_of, event="connect")
            self.metrics.socket_refused(error.code)
            raise Refused(error.code, error.detail) from None
        finally:
            self.connecting.discard(sid)
        if session is None:
            return False  # gone while it waited: nothing was recorded
        if not self._still_open(sid):  # gone meanwhile: python-socketio calls no disconnect
            self.forget(sid)
            return False
        self.sessions[sid] = session
        self.metrics.socket_connected()
        return True

    def _admit_connect(self, sid: str, auth: Any, address: str | None) -> SocketSession | None:
        """The session of an admitted connect from ``address`` (the client's, after the
        trusted proxies) with its presence recorded, None when the client left while the
        connect waited at the gate; raises the ApiError that refuses it."""
        if not self._still_open(sid):
            return None
        self._refuse_while_draining(None)
        user = admit(self.admission, auth, address)
        ip = self.rate_limiter.ip_identifier(address)
        session = SocketSession(sid, user.id, user.name, user.claims, ip)
        try:
            registered = self.rooms.register_socket(
                sid,
                session.user_id,
                session.username,
                self.instance,
                self.settings.socketio_max_sockets_per_user,
            )
        except RedisManager.unavailable_errors:
            # Refused, and maybe recorded (the script ran, its answer lost).
            self._owe(sid, session.user)
            raise
        if not registered:
            raise TooManyRequests(
                "Too many open sockets for this user; close one first.",
                code="TOO_MANY_SOCKETS",
                retry_after=1,
            )
        return session

    def _still_open(self, sid: str) -> bool:
        """Whether the Engine.IO connection of the Socket.IO socket ``sid`` is still open."""
        server = self.socketio.server
        eio_socket = server.eio.sockets.get(server.manager.eio_sid_from_sid(sid, "/"))
        return eio_socket is not None and not eio_socket.closed

    def _disconnect(self, sid: str, *_: Any) -> None:
        if self.sessions.pop(sid, None) is not None:
            self.metrics.socket_disconnected()
            self.forget(sid)

    def forget(self, sid: str, user: dict[str, str] | None = None) -> None:
        """Drop the presence of a socket of this instance that is gone, and tell the rooms it
        was in that its user left (``user``: whose it was, when known); owed when Redis does
        not answer."""
        self.delivery.forget(sid)
        self.lifetimes.forget(sid)
        self._settle(sid, user)

    def _drop(self, sid: str, user: dict[str, str] | None = None) -> None:
        """Remove a socket's presence (any instance's) and tell its rooms; raises when Redis
        does not answer."""
        with self.gate:
            info, changes = self.rooms.drop_socket(sid, (user or {}).get("user_id", ""))
        if not info.get("username") and user is not None:
            info["username"] = user.get("username", "")
        left = {"user_id": info.get("user_id", ""), "username": info.get("username", "")}
        for change in changes:
            self._announce("user_left", change, left)

    def _settle(self, sid: str, user: dict[str, str] | None = None) -> None:
        """Make Redis hold the truth about this instance's socket ``sid`` (:meth:`_reconcile`);
        when Redis does not answer, owe it (:meth:`settle_presence`)."""
        try:
            self._reconcile(sid, user)
        except RedisManager.unavailable_errors:
            logger.warning(
                "socket presence not cleaned: redis unavailable (owed until it answers)",
                extra={"sid": sid},
            )
            self._owe(sid, user)

    def _reconcile(self, sid: str, user: dict[str, str] | None = None) -> None:
        """Write the presence of this instance's socket ``sid`` as the instance knows it: none
        when it is gone (a sid never comes back), else the socket in the rooms it is in here.
        Checked after the write: a disconnect, join or leave meanwhile changes what the
        instance knows before it writes Redis, so one seen after the write is written again,
        and one not seen writes after this (decision 102)."""
        for _ in range(SETTLE_TRIES):
            session = self.sessions.get(sid)
            if session is None:
                self._drop(sid, user)
                return
            rooms = self._rooms_here(sid)
            with self.gate:
                left, entered = self.rooms.restore_socket(
                    sid, session.user_id, session.username, self.instance, rooms
                )
            for change in left:
                self._announce("user_left", change, session.user)
            for change in entered:
                self._announce("user_joined", change, session.user, skip_sid=sid)
            if sid in self.sessions and self._rooms_here(sid) == rooms:
                return
            user = session.user
        self._owe(sid, user)

    def _rooms_here(self, sid: str) -> list[str]:
        """The rooms this instance's socket ``sid`` is in, sorted (its own room not)."""
        return sorted(r for r in self.socketio.server.rooms(sid, namespace="/") if r != sid)

    def _owe(self, sid: str, user: dict[str, str] | None) -> None:
        """Remember that Redis may hold ``sid``'s presence wrongly (bounded: ``OWED_MAX``)."""
        with self._owed_lock:
            known = self._owed.pop(sid, None)
            self._owed[sid] = user or known
            oldest = next(iter(self._owed)) if len(self._owed) > OWED_MAX else None
            if oldest is not None:
                del self._owed[oldest]
        if oldest is not None:
            logger.error("socket presence debt dropped: too many owed", extra={"sid": oldest})

    def settle_presence(self, most: int = SETTLE_BATCH) -> int:
        """Settle the presence this instance owes, oldest first and ``most`` at a time (stops
        at the first write Redis does not answer; the rest waits for the next beat); returns
        how many settled."""
        settled = 0
        with self._owed_lock:
            owed = list(itertools.islice(self._owed, most))
        for sid in owed:
            with self._owed_lock:
                if sid not in self._owed:
                    continue
                user = self._owed.pop(sid)
            try:
                self._reconcile(sid, user)
            except BaseException:  # unanswered, or an error Redis answers: still owed
                self._owe(sid, user)
                raise
            settled += 1
        if settled:
            logger.info("socket presence settled", extra={"sockets": settled})
        return settled

    def emit(
        self, event: str, data: dict[str, Any], room: str, skip_sid: str | None = None
    ) -> dict[str, Any]:
        """Send the server event ``event`` (declared with ``events.emits``) to every socket in
        ``room``, on every instance; returns what was sent. The one call for modules, from a
        route, an action, a socket event or a hook alike.

        A ``message`` (``data`` = ``{from, body}``) is a room message: it gets its ``id``,
        ``room_id``, ``ts`` and the room's next ``seq``, is kept in the room's history and
        reaches every socket in the room in ``seq`` order (:mod:`.roomlog`). Any other event
        is sent as it is, to the room but ``skip_sid``.
        """
        self._declared(event)
        self.messages_out += 1
        if event != "message":
            self.socketio.emit(event, data, to=room, skip_sid=skip_sid)
            return data
        if skip_sid is not None:
            raise ValueError("a room message goes to every socket in the room (no skip_sid)")
        message = {
            "id": secrets.token_urlsafe(12),
            "room_id": room,
            "from": data["from"],
            "body": data["body"],
            "ts": to_json_compatible(datetime.now(UTC)),
        }
        return self.log.append(room, event, message)

    def _declared(self, event: str) -> str:
        if event not in self.events.server:
            raise ValueError(f"socket event {event!r} is not declared (events.emits)")
        return event

    def connected(self) -> int:
        return len(self.sessions)

    def _send_here(self, sid: str, event: str, data: dict[str, Any]) -> None:
        """To one socket of this instance, bypassing the queue."""
        self.socketio.server.emit(self._declared(event), data, to=sid, ignore_queue=True)

    def is_connected(self, sid: str) -> bool:
        """Whether the socket ``sid`` is connected to this instance (not gone meanwhile)."""
        return sid in self.sessions

    # -- rooms: membership, presence, the log ----------------------------------------------

    def join(self, session: SocketSession, room: str, since: int | None = None) -> Recovery:
        """Put ``session``'s socket in ``room`` on every instance (its presence too: the others
        in the room get ``user_joined`` when it is the user's first socket there, or a
        ``room_presence`` in a large room); returns the room's latest ``seq`` and, with
        ``since``, the messages after it. Called from a socket event, the event's ack reaches
        the socket before any live message of the room with a higher ``seq``
        (:mod:`~core.managers.websocket.delivery`)."""
        self.delivery.hold(session.sid, room)
        was_here = room in self.socketio.server.rooms(session.sid, namespace="/")
        try:
            join_room(room, sid=session.sid, namespace="/")
            recovery = self.log.since(room, since)
        except BaseException:
            self.delivery.release(session.sid, room, None)
            raise
        after_ack(lambda: self.delivery.release(session.sid, room, recovery.seq))
        try:
            change = self.rooms.enter(room, session.sid, session.user_id, session.username)
        except RedisManager.unavailable_errors:
            # Not in the room, as the error ack says; the script may have run all the same.
            if not was_here:
                self.socketio.server.leave_room(session.sid, room, namespace="/")
                # nor its messages: what was held for the ack is dropped, not sent after it
                self.delivery.release(session.sid, room, None)
            self._owe(session.sid, session.user)
            raise
        if not self.is_connected(session.sid):
            # The socket left meanwhile: its disconnect cleaned up already and would not again,
            # and may have read (and then deleted) the socket's rooms before this one was
            # entered, so this room is left by name; then whatever else is left of it goes.
            try:
                self.rooms.leave(room, session.sid, session.user_id)
            except RedisManager.unavailable_errors:
                self._owe(session.sid, session.user)
                raise
            self.forget(session.sid, session.user)
        else:
            self._announce("user_joined", change, session.user, skip_sid=session.sid)
        return recovery

    def leave(self, session: SocketSession, room: str) -> bool:
        """Take ``session``'s socket out of ``room`` (the others get ``user_left`` when it was
        the user's last socket there, or a ``room_presence`` in a large room); False when the
        socket was not in it. Out of the room here first, then in Redis: what this instance
        knows moves before what it writes (:meth:`_reconcile` relies on it)."""
        server = self.socketio.server
        was_here = room in server.rooms(session.sid, namespace="/")
        server.leave_room(session.sid, room, namespace="/")
        try:
            change = self.rooms.leave(room, session.sid, session.user_id)
        except RedisManager.unavailable_errors:
            # Still in the room, as the error ack says; the script may have run all the same.
            if was_here:
                server.enter_room(session.sid, room, namespace="/")
            self._owe(session.sid, session.user)
            raise
        if not change.moved:
            return False
        self._announce("user_left", change, session.user)
        return True

    def _announce(
        self, event: str, change: Change, user: dict[str, str], skip_sid: str | None = None
    ) -> None:
        """Tell a room that a user joined or left it: ``event`` in a room of up to
        ``SOCKETIO_PRESENCE_EVENTS_MAX`` users; in a larger one, a ``room_presence`` once the
        interval is over, sent by whichever instance claimed it (decision 96)."""
        if not change.user:
            return
        if not change.large:
            data = {"room_id": change.room_id, "user": user}
            self.emit(event, data, room=change.room_id, skip_sid=skip_sid)
        elif change.claimed:
            token = object()
            self._notices[token] = change.room_id
            self.socketio.start_background_task(self._room_presence, token)

    def _room_presence(self, token: object) -> None:
        """``room_presence`` after the interval its claim lasts (from a task; when this
        instance closes meanwhile, :meth:`close` sends it)."""
        if self._stop.wait(self.settings.socketio_room_presence_interval + NOTICE_MARGIN):
            return
        room = self._notices.pop(token, None)
        if room is not None:
            self._send_room_presence(room)

    def _send_room_presence(self, room: str) -> None:
        try:
            count = self.rooms.count(room)
            data: dict[str, Any] = {"room_id": room, "member_count": count}
            if count <= self.settings.socketio_presence_events_max:
                # Back at the limit: per-user events again, from the list they start from
                # (who left while the room was large was never said).
                data["members"] = self.members(room)
                data["member_count"] = len(data["members"])
            self.emit("room_presence", data, room=room)
        except RedisManager.unavailable_errors:
            logger.warning("room presence not sent: redis unavailable", extra={"room": room})

    def is_in(self, room: str, sid: str) -> bool:
        """Whether the socket ``sid`` (on any instance) is in ``room``."""
        return self.rooms.is_in(room, sid)

    def members(self, room: str) -> list[dict[str, str]]:
        """``{user_id, username}`` of the users with a socket in ``room``, on any instance,
        sorted by ``user_id``: every one in a room of up to ``SOCKETIO_PRESENCE_EVENTS_MAX``
        users, that many of them in a larger one (:meth:`member_count` says how many)."""
        return self.rooms.members(room, self.settings.socketio_presence_events_max)

    def member_count(self, room: str) -> int:
        """How many users have a socket in ``room``, on any instance."""
        return self.rooms.count(room)

    def history(
        self, room: str, before: int | None = None, limit: int = 50
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` of ``room``'s messages older than ``before`` (a ``seq``; the newest
        without it), oldest first, and whether the history holds older ones."""
        return self.log.page(room, before, limit)

    def close_room(self, room: str) -> None:
        """Take every socket out of ``room`` on every instance and forget its numbers and
        history (a closed room's ``seq`` starts again at 1)."""
        self.rooms.close(room)
        self.log.drop(room)
        self.socketio.close_room(room)

    # -- background work ------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.heartbeat()
            except RedisManager.unavailable_errors:  # down, slow, or out of memory
                logger.warning("socket heartbeat failed: redis unavailable")
            except Exception:  # a bug, or an error Redis answers: the next beat may pass
                logger.exception("socket heartbeat failed")
            interval = self.settings.socketio_presence_ttl / 6
            self._stop.wait(min(interval, SETTLE_PAUSE) if self._owed else interval)

    def heartbeat(self) -> None:
        """One beat: alive for 2/3 of ``SOCKETIO_PRESENCE_TTL`` (four beats missed make this
        instance dead, found within 1/6 more by another's beat: its presence is gone within
        the TTL); presence restored if it was taken for dead; the presence it owes (writes
        Redis did not answer) settled; dead instances cleaned; rooms empty for
        ``SOCKETIO_ROOM_EMPTY_TTL`` handed to the ``socket.room_empty`` hook (the feature
        that made a room deletes it), each on one instance."""
        if self.rooms.heartbeat(self.instance, self.settings.socketio_presence_ttl * 2 / 3):
            self.restore_presence()
        self.settle_presence()
        self.reap_dead_instances()
        for room in self.rooms.expired_empty(self.settings.socketio_room_empty_ttl):
            self.hooks.emit("socket.room_empty", room_id=room)

    def restore_presence(self) -> int:
        """Record this instance's sockets again (another instance took it for dead), each
        checked after its write (:meth:`_reconcile`: one that disconnected meanwhile is
        removed again); those not written when Redis stops answering are owed."""
        sids = list(self.sessions)
        for done, sid in enumerate(sids):
            try:
                self._reconcile(sid)
            except BaseException:  # unanswered, or an error Redis answers: the rest is owed
                for rest in sids[done:]:
                    session = self.sessions.get(rest)
                    self._owe(rest, session.user if session is not None else None)
                raise
        if sids:
            logger.warning("socket presence restored", extra={"sockets": len(sids)})
        return len(sids)

    def reap_dead_instances(self) -> int:
        """Remove the presence of sockets whose instance stopped heartbeating."""
        reaped = 0
        for instance in self.rooms.dead_instances():
            if instance == self.instance or not self.rooms.claim_reap(instance):
                continue
            for sid in self.rooms.instance_sids(instance):
                self._drop(sid)  # raises when Redis does not answer: reaped again later
                reaped += 1
            self.rooms.forget_instance(instance)
            logger.info("dead socket instance cleaned", extra={"instance": instance})
        return reaped

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.settings.socketio_sweep_interval):
            self.reap_handshakes()
            try:
                self.sweep()
            except (*RedisManager.unavailable_errors, DependencyUnavailable):
                logger.warning("socket token sweep incomplete: redis unavailable")
            except Exception:  # a bug, or an error Redis answers: the next sweep may pass
                logger.exception("socket token sweep failed")

    def reap_handshakes(self) -> list[str]:
        """Close Engine.IO connections without an accepted connect (``guard``)."""
        server = self.socketio.server
        admitted = {
            server.manager.eio_sid_from_sid(sid, "/") for sid in [*self.sessions, *self.connecting]
        }
        return self.reaper.reap(list(server.eio.sockets), admitted)

    def sweep(self) -> list[str]:
        """Tell this instance's sockets whose token expires soon; drop those whose token
        expired or was revoked, or whose address or user is banned (:mod:`.lifetimes`)."""
        dropped = []
        sessions = list(self.sessions.values())
        failure: Exception | None = None
        for start in range(0, len(sessions), SWEEP_BATCH):
            # Only those still here: one gone while an earlier batch waited on Redis was
            # forgotten, and sweeping it would remember it again (its keys, its notice).
            batch = [s for s in sessions[start : start + SWEEP_BATCH] if s.sid in self.sessions]
            try:
                endings = self.lifetimes.sweep(batch)
            except Exception as error:  # noqa: BLE001 - raised once the other batches are done
                # The batch's revocations and bans are unknown (Redis down, say), its
                # expired tokens are not: they end all the same, and the next batch goes on.
                failure = failure or error
                endings = self.lifetimes.expired(batch)
            for ending in endings:
                sid = ending.session.sid
                # Straight to the socket, ahead of the disconnect: the client learns whether
                # to refresh and reconnect (expired) or to log in again (revoked).
                data = {"code": ending.code, "message": ending.message}
                self._send_here(sid, "session_ended", data)
                self.socketio.server.disconnect(sid, ignore_queue=True)
                if self.sessions.pop(sid, None) is not None:
                    self.metrics.socket_disconnected()
                    self.forget(sid)
                dropped.append(sid)
        if failure is not None:
            raise failure
        return dropped

    def _refresh_session(self, session: SocketSession, data: RefreshSession) -> dict[str, Any]:
        """``refresh_session {token}``: the socket lives on with a new access token (the old
        one stays when the new one is refused)."""
        refreshed = self.lifetimes.refresh(session, data.token)
        if session.sid in self.sessions:
            self.sessions[session.sid] = refreshed
        return {"expires_at": expires_at(refreshed.claims)}

    # -- shutdown -------------------------------------------------------------------------

    def _refuse_while_draining(self, endpoint: str | None) -> None:
        if self.draining:
            raise ShuttingDown("This instance is shutting down; connect again.")

    def _drain(self, app_manager: Any = None, **_: Any) -> None:
        """``app.draining``: spread this instance's sockets over the others (:mod:`.drain`)."""
        self.draining = True
        spread = effective_spread_ms(
            self.settings.socketio_reconnect_spread_ms, self.settings.shutdown_timeout
        )
        plan = schedule(list(self.sessions), spread)
        lifecycle = getattr(app_manager, "lifecycle", None)
        if lifecycle is not None:
            lifecycle.begin()  # the drain waits for the last socket to close

        def closing() -> None:
            try:
                run_drain(plan, self._tell_shutdown, self._close_socket, self.socketio.sleep)
            finally:
                if lifecycle is not None:
                    lifecycle.end()

        self.socketio.start_background_task(closing)

    def _tell_shutdown(self, sid: str, after_ms: int) -> None:
        self._send_here(sid, "server_shutdown", {"reconnect_after_ms": after_ms})

    def _close_socket(self, sid: str) -> None:
        if sid in self.sessions:
            self.socketio.server.disconnect(sid, ignore_queue=True)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads = []
        for sid in list(self.sessions):
            self._tell_shutdown(sid, 0)
        for sid in list(self.sessions):
            self.socketio.server.disconnect(sid, ignore_queue=True)
            if self.sessions.pop(sid, None) is not None:
                self.forget(sid)
        # The notices claimed here and not sent yet (some by the leaves just above), early:
        # their claims hold off every other instance's until they expire.
        owed = {room for token in list(self._notices) if (room := self._notices.pop(token, None))}
        for room in sorted(owed):
            self._send_room_presence(room)
        try:
            self.queue.close()
        except (redis.ConnectionError, redis.TimeoutError):
            logger.warning("socket queue not closed cleanly: redis unavailable")
