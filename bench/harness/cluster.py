"""The proving ground of issue 21: production instances behind Debian's HAProxy, chatting
clients of both official libraries, a rolling restart and a crash.

One harness for ``make cluster-smoke`` (``python -m bench.cluster``: 100+ sockets, every
instance restarted, one killed, figures saved) and ``tests/resilience/test_cluster.py`` (the
same run, smaller). :func:`prove` runs it against the stores of ``env`` and answers a
:class:`Proof`: the invariants it broke (:meth:`Proof.broken`, empty when every one held) and
the figures.

- **Instances**: ``gunicorn -c gunicorn.conf.py app:app`` (:class:`bench.harness.Gunicorn`),
  each on its own port, restarted on the same one.
- **HAProxy** (:class:`HAProxy`, config :data:`HAPROXY_CONFIG`): round robin, a cookie for
  stickiness (long-polling must reach the instance that holds its session; websockets go
  through as tunnels), ``/health/ready`` checked so a draining instance is taken out,
  ``retry-on`` connection failures, empty answers and 503 (``SHUTTING_DOWN``) with
  ``option redispatch``, so a request meant for a stopping instance goes to another.
- **Clients**: socket.io-client members in one node process (``tests/clients/js/crowd.mjs``)
  and python-socketio members (:class:`PyMember`), half of each on long-polling (sticky),
  half on websocket; each follows the reconnect recipe of docs/websockets.md (rejoin with
  ``since`` = the last ``seq`` held, take the ack in its callback, drop repeats) and sends
  room messages in turn; HTTP traffic (``tests.support.load.Traffic``) goes on throughout.
- **Phases**: each instance in turn gets SIGTERM (its drain spreads its sockets' reconnects
  over ``SOCKETIO_RECONNECT_SPREAD_MS``), exits, starts again; then one instance is SIGKILLed
  while some sockets that will not come back are on it ("mortal" members, users of their own),
  and the rooms' presence must lose exactly them within ``SOCKETIO_PRESENCE_TTL``.
- **Invariants**: 0 failed HTTP requests through HAProxy; every socket back after each phase;
  every member holds every message of its rooms from its first join on, each once, in
  ``seq`` order, the same message at each ``seq`` everywhere; every acked send is there;
  presence right after the crash. Timings are figures, never judged here.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import requests
import socketio

from bench.harness.client import request
from bench.harness.common import HOST, NO_LIMITS, say
from bench.harness.host import free_port
from bench.harness.report import percentile
from bench.harness.servers import Gunicorn
from core.devstack.process import ChildProcess, NotReady
from tests.support import js_client
from tests.support.js_client import JsCrowd
from tests.support.load import LoadUser, Traffic, register_user

#: HAProxy in front of the instances. What matters for Socket.IO (docs/deploy.md):
#: - ``cookie ... insert`` on ``/socket.io/`` only (backend ``sockets``): a long-polling
#:   session's requests all reach the instance that holds it; the websocket upgrade carries
#:   the cookie too. ``balance source`` would do as well in production; here every client is
#:   127.0.0.1. Other requests (backend ``http``, the same servers, their checks tracked) are
#:   not sticky, so none is sent to an instance that is out of the rotation.
#: - ``timeout tunnel``: an upgraded websocket is a tunnel, not bound by client/server timeouts.
#: - ``option httpchk GET /health/ready``: a draining instance answers 503 and is taken out of
#:   the rotation for new sessions; its sessions are left alone (no ``on-marked-down
#:   shutdown-sessions``, and ``option persist`` keeps sending a long-polling session's
#:   requests there while it answers): the drain closes them one by one over
#:   ``SOCKETIO_RECONNECT_SPREAD_MS``.
#: - ``retry-on conn-failure empty-response 503`` with ``option redispatch 1``: a request to an
#:   instance that stopped listening, died, or refused with 503 ``SHUTTING_DOWN`` is sent to
#:   another one, so clients see no failure during a rolling restart.
HAPROXY_CONFIG = """\
global
    maxconn 4000
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    option forwardfor
    timeout connect 3s
    timeout client 90s
    timeout server 90s
    timeout tunnel 1h
    timeout http-request 15s
    timeout queue 15s
    timeout check 5s
    retries 3
    retry-on conn-failure empty-response 503
    option redispatch 1

listen stats
    bind {host}:{stats_port}
    stats enable
    stats uri /stats

frontend app
    bind {host}:{port}
    use_backend sockets if {{ path_beg /socket.io/ }}
    default_backend http

backend sockets
    balance roundrobin
    cookie {cookie} insert indirect nocache httponly
    option persist
    option httpchk
    http-check send meth GET uri /health/ready
    http-check expect status 200
    default-server inter 1s fastinter 500ms downinter 1s rise 2 fall 3
{socket_servers}

backend http
    balance roundrobin
{http_servers}
"""

#: HAProxy's stickiness cookie: its value is the instance's name.
COOKIE = "PB04_INSTANCE"
#: Every member's user holds at most this many sockets (presence of a killed instance lasts
#: until the TTL, so a user's count briefly includes its dead sockets too).
SOCKETS_PER_USER = 2


@dataclass
class Config:
    """The size of a run. The defaults are ``make cluster-smoke``'s."""

    instances: int = 3
    js_members: int = 60
    py_members: int = 44
    #: Members that do not reconnect, connected just before the crash (users of their own).
    mortals: int = 6
    rooms: int = 6
    #: Room messages a second, per client library.
    rate: float = 4.0
    #: Which instances get SIGTERM, in turn (indexes; all by default).
    restarts: tuple[int, ...] = (0, 1, 2)
    #: Whether an instance gets SIGKILL after the restarts (the one with most mortals).
    crash: bool = True
    #: Seconds of chat before the first restart and after each phase.
    settle: float = 3.0
    #: Bound on each wait (every socket back, presence right, the last message everywhere).
    wait: float = 120.0
    http_threads: int = 2
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def sockets(self) -> int:
        return self.js_members + self.py_members


def cluster_settings(config: Config) -> dict[str, str]:
    """App settings of the instances: limits out of the way (every client is 127.0.0.1), a
    drain long enough for the spread, a presence TTL short enough to wait for."""
    return {
        "TRUSTED_PROXIES": "1",
        "RATE_LIMIT_IP": NO_LIMITS,
        "RATE_LIMIT_USER": NO_LIMITS,
        "RATE_LIMIT_SOCKET": NO_LIMITS,
        "RATE_LIMIT_REGISTER": NO_LIMITS,
        "RATE_LIMIT_LOGIN": NO_LIMITS,
        "RATE_LIMIT_REFRESH": NO_LIMITS,
        "SOCKETIO_MAX_CONNECTIONS_PER_IP": "100000",
        "SOCKETIO_MAX_SOCKETS_PER_USER": str(SOCKETS_PER_USER * 4),
        "SHUTDOWN_TIMEOUT": "8",
        "SOCKETIO_RECONNECT_SPREAD_MS": "5000",
        "SOCKETIO_PRESENCE_TTL": "12",
        # The instances share two cores with their clients: the limiter's production budget
        # of 100 ms turned a few admissions into 503s on a loaded machine.
        "RATE_LIMIT_REDIS_TIMEOUT_MS": "1000",
        "HEALTH_CHECK_TIMEOUT": "4",
        **config.settings,
    }


# -- HAProxy ------------------------------------------------------------------------------------


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if found is None:
        raise RuntimeError("haproxy is missing: `make test-deps` installs Debian's haproxy")
    return found


class HAProxy:
    """Debian's HAProxy on a free port in front of ``servers`` ((name, port) pairs)."""

    def __init__(self, servers: list[tuple[str, int]], log_dir: Path) -> None:
        self.port = free_port()
        self.stats_port = free_port()
        self.config_path = log_dir / "haproxy.cfg"
        socket_servers = [f"    server {n} {HOST}:{port} check cookie {n}" for n, port in servers]
        http_servers = [f"    server {n} {HOST}:{port} track sockets/{n}" for n, port in servers]
        self.config_path.write_text(
            HAPROXY_CONFIG.format(
                host=HOST,
                port=self.port,
                stats_port=self.stats_port,
                cookie=COOKIE,
                socket_servers="\n".join(socket_servers),
                http_servers="\n".join(http_servers),
            )
        )
        self.child = ChildProcess(
            [haproxy_binary(), "-db", "-f", str(self.config_path)], log_dir / "haproxy.log"
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> HAProxy:
        self.child.start()
        try:
            self.child.wait_ready(lambda: bool(self.stats()), 30, "haproxy")
        except NotReady as exc:
            raise RuntimeError(f"{exc}: {' '.join(self.child.log_lines()[-5:])}") from None
        return self

    def stats(self, backend: str = "sockets") -> dict[str, dict[str, str]]:
        """A backend's rows of HAProxy's CSV statistics, by server name."""
        status, text = request("GET", f"http://{HOST}:{self.stats_port}/stats;csv", timeout=5)
        if status != 200 or not isinstance(text, str):
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {row["svname"]: row for row in rows if row["pxname"] == backend}

    def up(self, name: str) -> bool:
        return self.stats().get(name, {}).get("status", "").startswith("UP")

    def counters(self) -> dict[str, int]:
        """Retries, redispatches and errors so far, both backends."""
        names = {"wretr": "retries", "wredis": "redispatches", "econ": "connect errors",
                 "eresp": "response errors"}  # fmt: skip
        totals = dict.fromkeys(names.values(), 0)
        for backend in ("sockets", "http"):
            row = self.stats(backend).get("BACKEND", {})
            for key, label in names.items():
                totals[label] += int(row.get(key) or 0)
        return totals

    def stop(self) -> None:
        self.child.stop(grace=5)


class Cluster:
    """``instances`` gunicorns and HAProxy in front: started on enter, stopped on exit."""

    def __init__(self, env: dict[str, str], instances: int, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.gunicorns = [Gunicorn("app:app", env, log_dir, f"app{n}") for n in range(instances)]
        self.haproxy = HAProxy([(g.name, g.port) for g in self.gunicorns], log_dir)

    @property
    def url(self) -> str:
        return self.haproxy.url

    def __enter__(self) -> Cluster:
        try:
            with ThreadPoolExecutor(len(self.gunicorns)) as pool:
                list(pool.map(lambda g: g.start("/health/ready", timeout=120), self.gunicorns))
            self.haproxy.start()
            for gunicorn in self.gunicorns:
                self.wait_up(gunicorn)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.haproxy.stop()
        for gunicorn in self.gunicorns:
            gunicorn.stop()

    def wait_up(self, gunicorn: Gunicorn, timeout: float = 60.0) -> None:
        wait_for(lambda: self.haproxy.up(gunicorn.name), timeout, f"HAProxy: {gunicorn.name} UP")

    def restart(self, index: int) -> int | None:
        """SIGTERM, wait for the exit (the drain), start again on the same port; the exit
        code."""
        gunicorn = self.gunicorns[index]
        code = gunicorn.stop()
        gunicorn.start("/health/ready", timeout=120)
        self.wait_up(gunicorn)
        return code

    def kill(self, index: int) -> None:
        self.gunicorns[index].kill()


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Poll ``predicate`` until truthy; the seconds it took. RuntimeError after ``timeout``."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.25)
    return time.monotonic() - began


# -- python-socketio members --------------------------------------------------------------------


class _Counter(logging.Handler):
    """Counts log records by their first 100 characters."""

    def __init__(self, counts: dict[str, int], lock: threading.RLock) -> None:
        super().__init__(logging.WARNING)
        self.counts, self.member_lock = counts, lock

    def emit(self, record: logging.LogRecord) -> None:
        key = record.getMessage()[:100]
        with self.member_lock:
            self.counts[key] = self.counts.get(key, 0) + 1


@dataclass
class Held:
    """What a member holds of one room: ``base`` the room's seq at its first join."""

    base: int | None = None
    last: int | None = None
    seqs: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    joined: bool = False
    #: Messages above ``last + 1`` (or before the first join's ack), by seq: python-socketio's
    #: threaded client runs each packet's handler in a thread of its own, so two packets
    #: may be handled out of the order they arrived in.
    pending: dict[int, str] = field(default_factory=dict)


class PyMember:
    """A python-socketio client that follows the reconnect recipe of docs/websockets.md:
    transport drops are retried by the client, a drain's server disconnect by :meth:`_again`;
    ``rooms`` are joined on every connect (again with ``since``), the ack taken in its
    callback, repeats dropped. A ``mortal`` member never reconnects."""

    def __init__(
        self,
        url: str,
        token: str,
        transports: list[str],
        index: int,
        rooms: list[str],
        mortal: bool = False,
    ) -> None:
        self.url, self.token, self.transports = url, token, transports
        self.index, self.mortal = index, mortal
        self.lock = threading.RLock()
        self.rooms: dict[str, Held] = {room_id: Held() for room_id in rooms}
        self.shutting_down = False
        self.closing = False
        self.down_at: float | None = None
        self.back: list[dict[str, float]] = []
        self.recovered = self.unrecovered = self.repeats = 0
        self.drops: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        # Its own cookie jar: HAProxy's stickiness cookie names the instance (long-polling).
        self.http = requests.Session()
        # What the Engine.IO client says when it gives a connection up (an unexpected status, a
        # failed request), counted: python-socketio logs nothing by default.
        self.warnings: dict[str, int] = {}
        log = logging.getLogger(f"bench.cluster.member{index}")
        log.propagate = False
        log.setLevel(logging.WARNING)
        log.handlers = [_Counter(self.warnings, self.lock)]
        self.sio = socketio.Client(
            reconnection=not mortal, http_session=self.http, engineio_logger=log
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("message", self._take)
        self.sio.on("server_shutdown", self._on_shutdown)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_refused)

    def connect(self) -> None:
        self.sio.connect(
            self.url, auth={"token": self.token}, transports=self.transports, wait_timeout=30
        )

    def close(self) -> None:
        self.closing = True
        if self.sio.connected:
            closer = threading.Thread(target=self.sio.disconnect, daemon=True)
            closer.start()
            closer.join(2)

    @property
    def instance(self) -> str | None:
        """The instance its long-polling session is on (HAProxy's cookie)."""
        return self.http.cookies.get(COOKIE)

    @property
    def ready(self) -> bool:
        with self.lock:
            return self.sio.connected and all(r.joined for r in self.rooms.values())

    def join(self, room_id: str) -> None:
        with self.lock:
            room = self.rooms.setdefault(room_id, Held())
            again = room.last is not None
            data = {"room_id": room_id, "since": room.last} if again else {"room_id": room_id}
        self.sio.emit("join_room", data, callback=lambda ack: self._joined(room_id, again, ack))

    def _joined(self, room_id: str, again: bool, ack: dict[str, Any]) -> None:
        if not ack.get("ok"):
            threading.Timer(1.0, self._rejoin, (room_id,)).start()
            return
        with self.lock:
            room = self.rooms[room_id]
            if not again:
                room.base = room.last = ack["seq"]
            elif not ack["recovered"]:
                self.unrecovered += 1
                room.last = ack["missed"][0]["seq"] - 1 if ack["missed"] else ack["seq"]
            for message in ack["missed"]:
                if self._keep(room, message["seq"], message["id"]) and again:
                    self.recovered += 1
            self._flush(room)
            room.last = max(room.last or 0, ack["seq"])
            room.joined = True
            if self.down_at is not None and all(r.joined for r in self.rooms.values()):
                self.back.append({"down": self.down_at, "back": time.time() * 1000})
                self.down_at = None

    def _rejoin(self, room_id: str) -> None:
        if self.sio.connected:
            self.join(room_id)

    def _take(self, message: dict[str, Any]) -> None:
        with self.lock:
            room = self.rooms.get(message["room_id"])
            if room is not None and self._keep(room, message["seq"], message["id"]):
                self._flush(room)

    def _keep(self, room: Held, seq: int, ident: str) -> bool:
        """Keep a message unless it is held already (a repeat, dropped)."""
        if (room.last is not None and seq <= room.last) or seq in room.pending:
            self.repeats += 1
            return False
        room.pending[seq] = ident
        return True

    def _flush(self, room: Held) -> None:
        """Hold the pending messages that follow ``last``, in seq order."""
        if room.last is None:
            return  # the first join's ack has not been handled yet
        for seq in [seq for seq in room.pending if seq <= room.last]:
            del room.pending[seq]
            self.repeats += 1
        while room.last + 1 in room.pending:
            room.last += 1
            room.seqs.append(room.last)
            room.ids.append(room.pending.pop(room.last))

    def _on_connect(self) -> None:
        with self.lock:
            self.shutting_down = False
            rooms = list(self.rooms)
        for room_id in rooms:
            self.join(room_id)

    def _on_shutdown(self, data: Any = None) -> None:
        self.shutting_down = True

    def _on_disconnect(self, reason: Any = None) -> None:
        with self.lock:
            for room in self.rooms.values():
                room.joined = False
            if self.closing:
                return
            key = str(reason)
            self.drops[key] = self.drops.get(key, 0) + 1
            if self.down_at is None:
                self.down_at = time.time() * 1000
        # A transport drop is retried by the client itself; a server disconnect is followed
        # by a connect of ours when it came after server_shutdown (the drain).
        if key == self.sio.reason.SERVER_DISCONNECT and not self.mortal:
            threading.Thread(target=self._again, daemon=True).start()

    def _on_refused(self, data: Any = None) -> None:
        code = data.get("code", "none") if isinstance(data, dict) else "transport"
        with self.lock:
            self.refused[code] = self.refused.get(code, 0) + 1

    def _again(self) -> None:
        """After a short random pause (the recipe's; by then the ``server_shutdown`` that came
        before the disconnect has been handled in its own thread, and the client no longer
        counts itself connected: it runs the disconnect handler first), connect until it
        works."""
        while True:
            time.sleep(0.25 + random.random())
            if self.closing or self.sio.connected:
                return
            if not self.shutting_down:
                return  # not a drain: the session ended, nothing to come back to
            try:
                self.connect()
            except Exception as exc:  # noqa: BLE001 - refused or failed: try again
                with self.lock:
                    key = f"connect: {exc}"[:80]
                    self.refused[key] = self.refused.get(key, 0) + 1

    def status(self) -> dict[str, Any]:
        """Connected, in all its rooms, the last seq of each (``crowd.mjs``'s ``status``)."""
        with self.lock:
            return {
                "index": self.index,
                "connected": self.sio.connected,
                "joined": all(r.joined for r in self.rooms.values()),
                "last": {room_id: r.last for room_id, r in self.rooms.items()},
            }

    def report(self) -> dict[str, Any]:
        with self.lock:
            return {
                **self.status(),
                "rooms": {
                    room_id: {"base": r.base, "last": r.last, "seqs": r.seqs, "ids": r.ids}
                    for room_id, r in self.rooms.items()
                },
                "back": list(self.back),
                "down": self.down_at,
                "recovered": self.recovered,
                "unrecovered": self.unrecovered,
                "repeats": self.repeats,
                "drops": dict(self.drops),
                "refused": dict(self.refused),
                "warnings": dict(self.warnings),
            }


class PyChat:
    """``rate`` room messages a second from the python members in turn (connected and in all
    their rooms), until stopped; acks kept as (room_id, seq, id)."""

    def __init__(self, members: list[PyMember], rate: float) -> None:
        self.members, self.rate = members, rate
        self.sent = 0
        self.acked: list[tuple[str, int, str]] = []
        self.failed: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="py-chat", daemon=True)

    def __enter__(self) -> PyChat:
        if self.rate > 0 and self.members:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(10)

    def _run(self) -> None:
        turn = 0
        while not self.stopped.wait(1 / self.rate):
            for _ in range(len(self.members)):
                member = self.members[turn % len(self.members)]
                turn += 1
                with member.lock:
                    rooms = list(member.rooms)
                if not member.ready or not rooms:
                    continue
                room_id = rooms[self.sent % len(rooms)]
                self.sent += 1
                body = f"py:{member.index}:{self.sent}"
                try:
                    member.sio.emit(
                        "send_message",
                        {"room_id": room_id, "body": body},
                        callback=lambda ack, room_id=room_id: self._acked(room_id, ack),
                    )
                except Exception as exc:  # noqa: BLE001 - dropped in between: counted
                    self._acked(room_id, {"ok": False, "error": {"code": type(exc).__name__}})
                break

    def _acked(self, room_id: str, ack: dict[str, Any]) -> None:
        with self.lock:
            if ack.get("ok"):
                message = ack["message"]
                self.acked.append((room_id, message["seq"], message["id"]))
            else:
                code = ack.get("error", {}).get("code", "?")
                self.failed[code] = self.failed.get(code, 0) + 1


# -- the run ------------------------------------------------------------------------------------


def user_id(token: str) -> str:
    """The subject of an access token (the user id that ``room_members`` lists)."""
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


@dataclass
class Proof:
    """What a run found: :attr:`broken` lists each invariant that did not hold."""

    config: Config
    broken: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    phases: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{k}: {v}" for k, v in self.figures.items()]
        lines += [f"phase {p['phase']}: {p}" for p in self.phases]
        lines += [f"BROKEN: {b}" for b in self.broken] or ["every invariant held"]
        return "\n".join(lines)


class Run:
    """One run of the proving ground (:func:`prove`)."""

    def __init__(self, config: Config, cluster: Cluster, crowd: JsCrowd) -> None:
        self.config, self.cluster, self.crowd = config, cluster, crowd
        self.url = cluster.url
        self.py: list[PyMember] = []
        self.mortals: list[PyMember] = []
        self.room_ids: list[str] = []
        self.proof = Proof(config)

    # -- set-up ---------------------------------------------------------------------------

    def users(self, count: int) -> list[LoadUser]:
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda _: register_user(self.url), range(count)))

    def set_up(self) -> None:
        config = self.config
        users = self.users(-(-config.sockets // SOCKETS_PER_USER) + config.mortals + 1)
        tokens = [u.access_token for u in users]
        self.member_tokens = [tokens[n // SOCKETS_PER_USER] for n in range(config.sockets)]
        member_tokens = self.member_tokens
        self.mortal_tokens = tokens[len(tokens) - config.mortals - 1 : -1]
        owner = socketio.Client(reconnection=False)
        owner.connect(self.url, auth={"token": tokens[-1]}, transports=["websocket"])
        for n in range(config.rooms):
            ack = owner.call("create_room", {"name": f"cluster-{n}"}, timeout=30)
            if not (ack and ack.get("ok")):
                raise RuntimeError(f"create_room: {ack}")
            self.room_ids.append(ack["room"]["id"])
        owner.disconnect()
        # Every member in two rooms, the rooms' members spread over both libraries.
        self.assignment = [
            sorted({self.room_ids[n % config.rooms], self.room_ids[(n + 1) % config.rooms]})
            for n in range(config.sockets)
        ]
        transports = [["polling", "websocket"], ["websocket"]]
        opened = self.crowd.request(
            "members",
            wait=config.wait + 10,
            urls=[self.url],
            tokens=member_tokens[: config.js_members],
            transports=transports,
            timeout=config.wait * 1000,
        )
        if opened["connected"] != config.js_members:
            raise RuntimeError(f"socket.io-client members connected: {opened}")
        joined = self.crowd.request("join", wait=config.wait, rooms=self.assignment)
        if joined["joined"] != joined["asked"]:
            raise RuntimeError(f"socket.io-client joins: {joined}")
        py_transports = [["websocket"], ["polling"]]
        for n in range(config.py_members):
            index = config.js_members + n
            member = PyMember(
                self.url, member_tokens[index], py_transports[n % 2], index, self.assignment[index]
            )
            self.py.append(member)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda m: m.connect(), self.py))
        wait_for(self.everyone_back, config.wait, "every member in its rooms")
        say(f"{config.sockets} members in {config.rooms} rooms through {self.url}")

    # -- state ----------------------------------------------------------------------------

    def js_report(self) -> dict[str, Any]:
        return self.crowd.request("report", wait=60)

    def reports(self) -> list[dict[str, Any]]:
        return [*self.js_report()["members"], *(m.report() for m in self.py)]

    def statuses(self) -> list[dict[str, Any]]:
        js = self.crowd.request("status", wait=60)["members"]
        return [*js, *(m.status() for m in self.py)]

    def everyone_back(self) -> bool:
        return all(r["connected"] and r["joined"] for r in self.statuses())

    # -- phases ---------------------------------------------------------------------------

    def phase(self, name: str, act: Callable[[], dict[str, Any]]) -> None:
        """Run ``act`` (a restart or a crash) at a wall-clock moment; then wait for every
        member to be back and record the reconnects that followed."""
        began = time.time() * 1000
        say(f"phase {name}")
        record: dict[str, Any] = {"phase": name, **act()}
        try:
            wait_for(self.everyone_back, self.config.wait, f"every member back after {name}")
        except RuntimeError as exc:
            missing = [
                {
                    key: r[key]
                    for key in ("index", "connected", "joined", "drops", "refused", "down")
                    if key in r
                }
                for r in self.reports()
                if not (r["connected"] and r["joined"])
            ]
            self.proof.broken.append(f"{exc}: {len(missing)} not back: {missing[:10]}")
        backs = [b for r in self.reports() for b in r["back"] if b["down"] >= began]
        record["reconnected"] = len(backs)
        record["reconnect_ms"] = [b["back"] - b["down"] for b in backs]
        record["all_back_s"] = (max((b["back"] for b in backs), default=began) - began) / 1000
        self.proof.phases.append(record)
        time.sleep(self.config.settle)

    def restart(self, index: int) -> dict[str, Any]:
        began = time.monotonic()
        code = self.cluster.restart(index)
        if code != 0:
            self.proof.broken.append(f"instance {index} exited {code} after SIGTERM")
        return {"exit_code": code, "restart_s": time.monotonic() - began}

    def crash(self) -> dict[str, Any]:
        """Mortal members connect (long-polling: the stickiness cookie names their instance),
        then the instance holding most of them dies; the rooms' presence must then lose
        exactly the mortals that were on it."""
        config = self.config
        for n, token in enumerate(self.mortal_tokens):
            mortal = PyMember(self.url, token, ["polling"], -1 - n, self.room_ids, mortal=True)
            self.mortals.append(mortal)
            mortal.connect()
        # A mortal dropped before the crash (a long-polling hiccup: it does not reconnect) is
        # left out, and counted; its presence must go the ordinary way.
        try:
            wait_for(
                lambda: all(m.ready or (m.drops and not m.sio.connected) for m in self.mortals),
                config.wait,
                "the mortals in",
            )
        except RuntimeError as exc:
            states = [m.report() | {"rooms": None} for m in self.mortals]
            raise RuntimeError(f"{exc}: {states}") from None
        live = [m for m in self.mortals if m.ready]
        names = [g.name for g in self.cluster.gunicorns]
        on = {name: sum(m.instance == name for m in live) for name in names}
        target = max(names, key=lambda name: on[name])
        doomed = [m for m in live if m.instance == target]
        killed = time.monotonic()
        self.cluster.kill(names.index(target))
        # Its sockets' clients notice (their connections through HAProxy close) before the
        # load balancer takes it out; only then do the checks below mean anything.
        wait_for(
            lambda: (
                not any(m.sio.connected for m in doomed) and not self.cluster.haproxy.up(target)
            ),
            config.wait,
            f"{target}'s mortals to drop and HAProxy to take it out",
        )
        try:
            wait_for(self.presence_right, config.wait, "presence right after the crash")
            presence_s: float | None = time.monotonic() - killed
        except RuntimeError as exc:
            self.proof.broken.append(str(exc))
            presence_s = None
        gone = sum(not m.sio.connected for m in live)
        if gone != len(doomed):
            self.proof.broken.append(f"mortals gone {gone}, {len(doomed)} were on {target}")
        return {
            "killed": target,
            "presence_s": presence_s,
            "mortals_gone": gone,
            "mortals": len(live),
            "mortals_dropped_before": len(self.mortals) - len(live),
        }

    def presence_right(self) -> bool:
        """Every room's members (asked of a connected member) are exactly the users with a
        live socket in it."""
        expected: dict[str, set[str]] = {room_id: set() for room_id in self.room_ids}
        for n, room_ids in enumerate(self.assignment):
            owner = user_id(self.member_tokens[n])
            for room_id in room_ids:
                expected[room_id].add(owner)
        for mortal in self.mortals:
            if mortal.sio.connected:
                for room_id in self.room_ids:
                    expected[room_id].add(user_id(mortal.token))
        asker = next((m for m in self.py if m.ready), None)
        if asker is None:
            return False
        for room_id, users in expected.items():
            try:
                ack = asker.sio.call("room_members", {"room_id": room_id}, timeout=10)
            except Exception:  # noqa: BLE001 - dropped meanwhile: ask again
                return False
            if not ack or not ack.get("ok"):
                return False
            if {m["user_id"] for m in ack["members"]} != users:
                return False
        return True

    # -- the end --------------------------------------------------------------------------

    def finals(self) -> dict[str, int]:
        """Each room's latest seq, from its history."""
        asker = next(m for m in self.py if m.ready)
        finals = {}
        for room_id in self.room_ids:
            ack = asker.sio.call("room_history", {"room_id": room_id, "limit": 1}, timeout=10)
            finals[room_id] = ack["messages"][-1]["seq"] if ack["messages"] else 0
        return finals

    def finish(self, js_chat: dict[str, Any], py_chat: PyChat, traffic: Traffic) -> None:
        config = self.config
        finals = self.finals()

        def caught_up() -> bool:
            return all(
                last == finals[room_id]
                for status in self.statuses()
                for room_id, last in status["last"].items()
            )

        try:
            wait_for(caught_up, config.wait, "every member to hold its rooms' last message")
        except RuntimeError as exc:
            self.proof.broken.append(str(exc))
        js = self.js_report()
        reports = [*js["members"], *(m.report() for m in self.py)]
        acked = [*js["acked"], *py_chat.acked]
        faults, counts = message_faults(reports, finals, acked)
        self.proof.broken += faults
        outcomes = traffic.snapshot()
        failed = [o for o in outcomes if o.status is None or not 200 <= o.status < 300]
        for outcome in failed[:10]:
            self.proof.broken.append(
                f"HTTP {outcome.kind}: {outcome.status} {outcome.code or ''} {outcome.error or ''}"
            )
        refused = [r["refused"] for r in reports if r["refused"]]
        reconnects = [ms for p in self.proof.phases for ms in p["reconnect_ms"]]
        figures = self.proof.figures
        figures.update(
            {
                "sockets": config.sockets,
                "messages": sum(finals.values()),
                "messages lost": counts["lost"],
                "members with messages out of order": counts["disordered"],
                "http requests": len(outcomes),
                "http failed": len(failed),
                "sent": js_chat["sent"] + py_chat.sent,
                "acked": len(acked),
                "send failures": {**js_chat["failed"], **py_chat.failed},
                "reconnects": len(reconnects),
                "reconnect p50 ms": round(percentile(reconnects, 50)),
                "reconnect p99 ms": round(percentile(reconnects, 99)),
                "recovered from join acks": sum(r["recovered"] for r in reports),
                "rejoins not recovered": sum(r["unrecovered"] for r in reports),
                "repeats dropped": sum(r["repeats"] for r in reports),
                "refused connects": merge(refused),
                "disconnects by reason": merge([r["drops"] for r in reports]),
                "python client warnings": merge([r.get("warnings", {}) for r in reports]),
                "haproxy": self.cluster.haproxy.counters(),
            }
        )


def message_faults(
    reports: list[dict[str, Any]], finals: dict[str, int], acked: list[Any]
) -> tuple[list[str], dict[str, int]]:
    """What the members hold, against the rooms' last ``seq`` (``finals``) and the acked sends
    ((room_id, seq, id)): each member must hold every seq of each of its rooms from its first
    join (``base``) on, once and in order, and every member the same message at each seq.
    The faults (one line each, at most 20 about holdings) and the counts of messages lost and
    of holdings out of order."""
    broken: list[str] = []
    canonical: dict[str, dict[int, str]] = {}
    lost = disordered = 0
    for report in reports:
        for room_id, held in report["rooms"].items():
            expected = list(range(held["base"] + 1, finals[room_id] + 1))
            if held["seqs"] != expected:
                have = set(held["seqs"])
                missing = [seq for seq in expected if seq not in have]
                lost += len(missing)
                disordered += held["seqs"] != sorted(held["seqs"])
                if len(broken) < 20:
                    broken.append(
                        f"member {report['index']} room {room_id}: holds"
                        f" {len(held['seqs'])} of {len(expected)}"
                        + (f" (missing {missing[:10]})" if missing else " (out of order)")
                    )
            seen = canonical.setdefault(room_id, {})
            for seq, ident in zip(held["seqs"], held["ids"], strict=True):
                if seen.setdefault(seq, ident) != ident:
                    broken.append(f"room {room_id} seq {seq}: two messages ({seen[seq]}, {ident})")
    for room_id, seq, ident in acked:
        if canonical.get(room_id, {}).get(seq, ident) != ident:
            broken.append(f"acked message {ident} is not seq {seq} everywhere")
    return broken, {"lost": lost, "disordered": disordered}


def merge(counts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for each in counts:
        for key, value in each.items():
            total[key] = total.get(key, 0) + value
    return total


@contextmanager
def crowd() -> Iterator[JsCrowd]:
    client = JsCrowd(js_client.install())
    try:
        yield client
    finally:
        client.close()


def prove(env: dict[str, str], config: Config, log_dir: Path) -> Proof:
    """The whole run against the stores of ``env`` (MongoDB, PostgreSQL, Redis and the app's
    secrets): cluster up, members in, chat and HTTP traffic, each restart, the crash, checks."""
    settings = {**env, **cluster_settings(config)}
    with Cluster(settings, config.instances, log_dir) as cluster, crowd() as js:
        run = Run(config, cluster, js)
        try:
            return _prove(run)
        finally:
            for member in [*run.py, *run.mortals]:
                member.close()


def _prove(run: Run) -> Proof:
    config = run.config
    run.set_up()
    traffic_users = run.users(config.http_threads)
    with Traffic(run.url, traffic_users, pause=0.1) as traffic, PyChat(run.py, config.rate) as py:
        run.crowd.request("chat", rate=config.rate)
        time.sleep(config.settle)
        for index in config.restarts:
            run.phase(f"SIGTERM app{index}", partial(run.restart, index))
        if config.crash:
            run.phase("SIGKILL", run.crash)
        js_chat = run.crowd.request("chat", rate=0)
        py.stop()
        run.finish(js_chat, py, traffic)
    return run.proof
