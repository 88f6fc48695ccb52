"""Socket capacity of one worker: idle sockets held, a reconnect storm, fan-out to big rooms.

    .venv/bin/python -m bench.socket_capacity [--sockets 10000] [--pace 100] [--idle 30]
        [--storm 10000] [--fanout 1000,10000] [--messages 20] [--memory FRAMES] [--profile]
        [--before REF] [--rounds 1] [--smoke]

Server: what ``make serve`` runs, ``gunicorn -c gunicorn.conf.py app:app`` (one gevent
worker, the shipped ``worker_connections``), ``APP_ENV=prod``, against MongoDB, PostgreSQL
and Redis from ``core.devstack``; the rate limits out of the way (every client is 127.0.0.1).
Clients: the official socket.io-client under node (``tests/clients/js/crowd.mjs``: many
sockets in one process, websocket transport), each socket with the access token of a user
of its own (issued with the server's JWT settings; nothing refuses them but the limits).
On two or more cores the gunicorn processes get the first core, node and the stores the
others (``taskset``-style affinity); the CPU of the load generator is reported next to the
server's.

Phases, each judged against the goals of issue 24 (a smoke run judges nothing):

1. **idle capacity**: ``--sockets`` connect, ``--pace`` connects in flight at most; then
   ``--idle`` seconds idle (at least one ping round). Reported: connects/s, the worker's RSS
   per socket (RSS with the sockets minus RSS after a warm-up, over the sockets held; goal
   <= 64 KB), the worker's CPU while idle (cores per 1,000 sockets), ``/health/live``
   latency polled every 50 ms on a new connection each, as a probe does, on the app's port
   and on ``HEALTH_PORT`` (the liveness probe's, answered beside the loop; goal: < 100 ms
   throughout, ramp included), then every socket leaves at once and the presence left in
   Redis is counted (goal 0).
2. **reconnect storm**: ``--storm`` sockets connect at the same moment (an instance died and
   its clients came here): seconds until all are admitted (goal <= 30 s), refusals by code
   (goal: no ``DEPENDENCY_UNAVAILABLE``), ``/health/live`` on both ports meanwhile, presence
   left after they all leave at once (goal 0), the worker's CPU per admitted socket and the
   connections the kernel dropped from full accept queues. ``--before REF`` storms the code
   of commit REF too (a second gunicorn from a temporary git worktree), ``--rounds`` times
   each in turns; ``--profile`` samples the worker with py-spy during the first storm
   (``bench/results/socket_capacity-profile-storm.txt``).
3. **fan-out**: for each size in ``--fanout``, that many sockets (each a user of its own)
   over two instances (a second gunicorn, Redis as the message queue, both workers on the
   server's core), all in one room; ``--messages`` messages from one member, one at a time:
   per message the time from the send until the last member has it (p50, p99: the goal is
   p99 < 1 s for 10,000 members), per delivery the time until that member has it, and
   deliveries per second of worker CPU (both workers). Filling the room is timed too: past
   ``SOCKETIO_PRESENCE_EVENTS_MAX`` users a join tells nobody but a coalesced
   ``room_presence`` (decision 96), so it costs the same in a room of 10,000 as of 100.
   ``--before REF`` fans out from a second pair of instances serving commit REF too,
   ``--rounds`` times each in turns; the µs of worker CPU per delivery net of idle is the
   figure to compare on a shared machine.

``worker_connections`` (0, the default): what ``gunicorn.conf.py`` ships, or more when the
largest phase needs it (each fan-out instance holds half the room), with
``SOCKETIO_CONNECTION_RESERVE`` and a margin on top; the per-address cap and the rate limits
are out of the way (``bench.harness.Stack.app_env``).

Results in ``bench/results/socket_capacity.txt`` and ``.json``. Needs node 20 and the pinned
client (``cd tests/clients/js && npm ci``; ``tests/support/js_client.install`` runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import harness
from bench.harness import ROOT, Gunicorn, Stack, say
from config.loader import SettingsLoader
from core.devstack import free_port
from tests.support import js_client
from tests.support.js_client import JsCrowd
from tests.support.presence import presence_left

#: Goals of issue 24.
GOAL_SOCKETS = 10_000
GOAL_KB_PER_SOCKET = 64
GOAL_HEALTH_MS = 100
GOAL_STORM_SECONDS = 30
GOAL_FANOUT_P99_MS = 1000
PREFIX = "bench:"  # REDIS_KEY_PREFIX of bench.harness.Stack.app_env


# -- measuring ----------------------------------------------------------------------------------


class HealthProbe:
    """``GET /health/live`` every ``interval`` s on a new connection (as a kubelet probes),
    from a thread; latencies in ms, failures (timeouts, errors, non-200) counted."""

    def __init__(
        self,
        url: str,
        interval: float = 0.05,
        timeout: float = 5.0,
        path: str = "/health/live",
        headers: dict[str, str] | None = None,
        expect: int = 200,
    ) -> None:
        self.host, _, port = url.removeprefix("http://").partition(":")
        self.port = int(port)
        self.path = path
        self.headers = headers or {}
        self.expect = expect
        self.interval = interval
        self.timeout = timeout
        self.samples: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                conn.request("GET", self.path, headers=self.headers)
                answer = conn.getresponse()
                answer.read()
                status = answer.status
                conn.close()
                if status == self.expect:
                    self.samples.append((time.monotonic() - began) * 1000)
                else:
                    self.failures += 1
            except OSError:
                self.failures += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    @contextlib.contextmanager
    def running(self) -> Iterator[HealthProbe]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(self.timeout + 1)

    def summary(self) -> dict[str, Any]:
        return {
            "probes": len(self.samples) + self.failures,
            "failures": self.failures,
            "p50_ms": harness.percentile(self.samples, 50),
            "p99_ms": harness.percentile(self.samples, 99),
            "max_ms": max(self.samples) if self.samples else float("nan"),
        }


def side_probe(server: Gunicorn) -> HealthProbe | None:
    """A probe of ``METRICS_PORT`` when the server has one (``--env METRICS_PORT=... --env
    METRICS_TOKEN=...``): how long an answer takes from the same worker's loop through a
    listener of its own (its own accept queue). It asks for a path the port does not serve:
    admitted (with the token; one limiter round trip), then 404, without the cost of a
    scrape (a scrape every 50 ms would be load of its own)."""
    port = server.env.get("METRICS_PORT")
    token = server.env.get("METRICS_TOKEN", "")
    if not port:
        return None
    headers = {"Authorization": f"Bearer {token}"}
    return HealthProbe(f"http://127.0.0.1:{port}", path="/health/live", headers=headers, expect=404)


def liveness_probe(server: Gunicorn) -> HealthProbe | None:
    """A probe of ``HEALTH_PORT`` (what the Kubernetes liveness probe asks, answered by a
    thread beside the worker's loop from the loop's beat: core/http/liveness.py), when the
    served code has one (``--before`` commits older than it do not answer: all failed)."""
    port = server.env.get("HEALTH_PORT")
    return HealthProbe(f"http://127.0.0.1:{port}") if port else None


def latency(summary: dict[str, Any]) -> str:
    """A probe's summary in one cell: p50, p99, max, failures."""
    if not summary:
        return "-"
    return (
        f"p50 {summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms, "
        f"max {summary['max_ms']:.1f} ms, {summary['failures']} failed of {summary['probes']}"
    )


def wait_presence_gone(redis_url: str, timeout: float) -> tuple[int, float]:
    """(entries left, seconds waited): polls until nothing of the sockets is left in Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    began = time.monotonic()
    try:
        while True:
            left = presence_left(client, PREFIX)
            if not left or time.monotonic() - began > timeout:
                return sum(left.values()), time.monotonic() - began
            time.sleep(0.5)
    finally:
        client.close()


def access_tokens(settings: Any, count: int, label: str) -> list[str]:
    """``count`` access tokens of ``count`` users, issued with the servers' JWT settings."""
    from core.managers.jwt import JWTManager
    from core.managers.redis import RedisManager

    redis_manager = RedisManager(settings)  # JWTManager wants one; issuing never calls it
    try:
        jwt = JWTManager(settings, redis_manager)
        return [
            jwt.issue_pair(f"{label}-{n}", ["user"], username=f"{label}{n}").access_token
            for n in range(count)
        ]
    finally:
        redis_manager.close()


@dataclass
class Capacity:
    sockets: int
    connected: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    connect_seconds: float = 0.0
    rss_base: int = 0
    rss_held: int = 0
    idle_seconds: float = 0.0
    idle_cpu: float = 0.0  # worker CPU seconds while idle
    client_cpu: float = 0.0  # node CPU seconds over the connects
    client_rss: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    #: HEALTH_PORT probed meanwhile (the liveness probe's port).
    liveness: dict[str, Any] = field(default_factory=dict)
    presence_left: int = 0
    leave_seconds: float = 0.0

    @property
    def kb_per_socket(self) -> float:
        return (self.rss_held - self.rss_base) / 1024 / self.connected if self.connected else 0

    @property
    def connects_per_s(self) -> float:
        return self.connected / self.connect_seconds if self.connect_seconds else 0.0

    @property
    def idle_cores_per_1000(self) -> float:
        if not (self.connected and self.idle_seconds):
            return float("nan")
        return self.idle_cpu / self.idle_seconds / self.connected * 1000


@dataclass
class Storm:
    sockets: int
    #: Which code was served: "" this checkout, else the ``--before`` commit.
    code: str = ""
    connected: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    connect_ms: dict[str, Any] = field(default_factory=dict)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    health: dict[str, Any] = field(default_factory=dict)
    #: HEALTH_PORT probed meanwhile (the liveness probe's port).
    liveness: dict[str, Any] = field(default_factory=dict)
    #: METRICS_PORT probed meanwhile (a listener of its own in the same worker).
    side: dict[str, Any] = field(default_factory=dict)
    presence_left: int = 0
    leave_seconds: float = 0.0
    #: Connections the kernel dropped meanwhile, its accept queue full (machine-wide).
    listen_overflows: int = 0


@dataclass
class Fanout:
    size: int
    join_seconds: float = 0.0
    joined: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, Any] = field(default_factory=dict)
    complete: dict[str, Any] = field(default_factory=dict)
    lost: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    seconds: float = 0.0
    join_server_cpu: float = 0.0
    #: Both workers' CPU with the sockets idle (pings, token sweeps), in cores.
    idle_cores: float = 0.0
    #: Which code was served: "" this checkout, else the ``--before`` commit.
    code: str = ""

    @property
    def per_core(self) -> float:
        count = self.deliveries.get("count") or 0
        return count / self.server_cpu if self.server_cpu else float("nan")

    @property
    def join_cpu_net(self) -> float:
        """Worker CPU of the joins over what the (already connected) idle sockets take."""
        return self.join_server_cpu - self.idle_cores * self.join_seconds

    @property
    def per_core_net(self) -> float:
        """Deliveries per second of the worker CPU over what the idle sockets take."""
        count = self.deliveries.get("count") or 0
        busy = self.server_cpu - self.idle_cores * self.seconds
        return count / busy if busy > 0 else float("nan")

    @property
    def us_per_delivery_net(self) -> float:
        """Worker CPU per delivery over what the idle sockets take, in µs."""
        return 1e6 / self.per_core_net if self.per_core_net == self.per_core_net else 0.0


# -- phases ------------------------------------------------------------------------------------


def warm_up(crowd: JsCrowd, server: Gunicorn, tokens: list[str]) -> None:
    """A few sockets in and out, so lazy imports and first-use caches are not counted."""
    crowd.open([server.url], tokens, pace=10)
    crowd.close_all()
    time.sleep(1.0)


def capacity(
    args: argparse.Namespace, server: Gunicorn, crowd: JsCrowd, tokens: list[str], redis_url: str
) -> Capacity:
    result = Capacity(len(tokens))
    if args.memory:
        mark = f"/public/bench/memory?mark=1&trace={args.memory}"
        harness.request("GET", server.url + mark, timeout=300)
    result.rss_base = harness.rss_bytes(server.worker)
    node_cpu = harness.cpu_seconds(crowd.proc.pid)
    live = liveness_probe(server)
    live_running = live.running() if live is not None else contextlib.nullcontext()
    with HealthProbe(server.url).running() as probe, live_running:
        say(f"capacity: {len(tokens)} sockets, {args.pace} connects in flight")
        opened = crowd.open([server.url], tokens, pace=args.pace, wait=args.connect_wait)
        result.client_cpu = harness.cpu_seconds(crowd.proc.pid) - node_cpu
        result.connected = opened["connected"]
        result.refused = opened["refused"]
        result.connect_seconds = opened["seconds"]
        say(f"  {result.connected} connected in {result.connect_seconds:.1f}s; idle {args.idle}s")
        cpu = harness.cpu_seconds(server.worker)
        began = time.monotonic()
        while (left := args.idle - (time.monotonic() - began)) > 0:
            time.sleep(min(10.0, left))
            stats = crowd.stats()
            say(f"  {stats['open']} open, dropped {stats['dropped'] or 'none'}")
        result.idle_seconds = time.monotonic() - began
        result.idle_cpu = harness.cpu_seconds(server.worker) - cpu
        result.rss_held = harness.rss_bytes(server.worker)
        stats = crowd.stats()
        if args.memory:
            memory_report(server, result)
    result.health = probe.summary()
    result.liveness = live.summary() if live is not None else {}
    result.client_rss = stats["rss"]
    result.dropped = stats["dropped"]
    say(f"  {result.kb_per_socket:.1f} KB/socket; every socket leaves at once")
    crowd.close_all(pace=0)
    result.presence_left, result.leave_seconds = wait_presence_gone(redis_url, args.settle)
    return result


def memory_report(server: Gunicorn, result: Capacity) -> None:
    """Where the worker's memory went while holding the sockets (``--memory``): objects by
    type and the allocations made since the warm-up and still alive, per socket; in
    ``bench/results/socket_capacity-memory.txt``."""
    import tempfile
    import tracemalloc

    dump = Path(tempfile.mkdtemp(prefix="pb04-bench-memory-")) / "snapshot"
    status, found = harness.request(
        "GET", f"{server.url}/public/bench/memory?dump={dump}", timeout=600
    )
    if status != 200 or not found.get("dumped"):
        say(f"memory report failed: {status} {found}")
        return
    count = result.connected or 1
    snapshot = tracemalloc.Snapshot.load(str(dump))
    shutil.rmtree(dump.parent, ignore_errors=True)
    traced = sum(stat.size for stat in snapshot.statistics("filename"))
    lines = [
        f"{count} sockets held; worker RSS {result.rss_base / 2**20:.0f} -> "
        f"{result.rss_held / 2**20:.0f} MiB = {result.kb_per_socket:.1f} KB per socket, of "
        f"which Python allocations (tracemalloc) {traced / 1024 / count:.1f} KB",
        "",
        "objects per socket, by type:",
        *(f"  {n / count:8.2f}  {name}" for name, n in found["objects"] if n / count >= 0.5),
    ]
    for key, depth in (("filename", 1), ("lineno", 1), ("traceback", 10)):
        lines += ["", f"allocations alive per socket by {key} (bytes, blocks):"]
        for stat in snapshot.statistics(key)[:40]:
            lines.append(f"  {stat.size / count:8.0f} B  {stat.count / count:6.2f}")
            lines += [f"      {frame}" for frame in list(stat.traceback)[-depth:]]
    text = "\n".join(lines)
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    (harness.RESULTS / "socket_capacity-memory.txt").write_text(text + "\n")
    say(f"memory report in {harness.RESULTS / 'socket_capacity-memory.txt'}")


def storm(
    args: argparse.Namespace,
    server: Gunicorn,
    crowd: JsCrowd,
    tokens: list[str],
    redis_url: str,
    code: str = "",
    profile: bool = False,
) -> Storm:
    result = Storm(len(tokens), code)
    node_cpu = harness.cpu_seconds(crowd.proc.pid)
    server_cpu = harness.cpu_seconds(server.worker)
    raw = harness.RESULTS / "socket_capacity-profile-storm.raw"
    profiling = harness.sampling(server.worker, raw) if profile else contextlib.nullcontext()
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    overflows = harness.tcp_counters().get("ListenOverflows", 0)
    side, live = side_probe(server), liveness_probe(server)
    beside = side.running() if side is not None else contextlib.nullcontext()
    live_running = live.running() if live is not None else contextlib.nullcontext()
    with HealthProbe(server.url).running() as probe, beside, live_running, profiling:
        say(f"storm: {len(tokens)} sockets at the same moment ({code or 'this checkout'})")
        opened = crowd.open(
            [server.url], tokens, pace=0, timeout=args.storm_timeout, wait=args.connect_wait
        )
    result.health = probe.summary()
    result.side = side.summary() if side is not None else {}
    result.liveness = live.summary() if live is not None else {}
    result.listen_overflows = harness.tcp_counters().get("ListenOverflows", 0) - overflows
    result.server_cpu = harness.cpu_seconds(server.worker) - server_cpu
    if profile and raw.is_file():
        per_connect = result.server_cpu / max(opened["connected"], 1) * 1e6
        out = raw.with_suffix(".txt")
        summary = harness.profile_summary(raw, 80, per_connect, "connect")
        out.write_text(f"storm of {len(tokens)}: worker CPU per connect\n{summary}\n")
        say(f"profile in {out}")
    result.client_cpu = harness.cpu_seconds(crowd.proc.pid) - node_cpu
    result.connected = opened["connected"]
    result.refused = opened["refused"]
    result.seconds = opened["seconds"]
    result.connect_ms = opened["connect_ms"]
    say(f"  {result.connected} admitted in {result.seconds:.1f}s, refused {result.refused}")
    crowd.close_all(pace=0)
    result.presence_left, result.leave_seconds = wait_presence_gone(redis_url, args.settle)
    return result


def fanout(
    args: argparse.Namespace,
    servers: list[Gunicorn],
    crowd: JsCrowd,
    tokens: list[str],
    redis_url: str,
    settle: float,
    code: str = "",
) -> Fanout:
    size = len(tokens)
    result = Fanout(size, code=code)
    say(f"fan-out: a room of {size} over {len(servers)} instances {code or 'this checkout'}")
    opened = crowd.open([s.url for s in servers], tokens, pace=args.pace, wait=args.connect_wait)
    if opened["connected"] != size:
        raise RuntimeError(f"fan-out: {opened['connected']} of {size} connected: {opened}")
    created = crowd.emit(0, "create_room", {"name": f"fanout-{size}"})
    if not created.get("ok"):
        raise RuntimeError(f"create_room failed: {created}")
    room_id = created["room"]["id"]
    began = time.monotonic()
    cpu = [harness.cpu_seconds(s.worker) for s in servers]
    result.joined = crowd.emit_all(
        "join_room", {"room_id": room_id}, pace=args.pace, wait=args.connect_wait
    )
    result.join_seconds = time.monotonic() - began
    result.join_server_cpu = sum(
        harness.cpu_seconds(s.worker) - before for s, before in zip(servers, cpu, strict=True)
    )
    say(f"  joined in {result.join_seconds:.1f}s: {result.joined}")
    time.sleep(settle)  # the joins' user_joined or last room_presence go out first
    cpu = [harness.cpu_seconds(s.worker) for s in servers]
    time.sleep(args.fanout_idle)
    idle = [harness.cpu_seconds(s.worker) for s in servers]
    result.idle_cores = sum(b - a for a, b in zip(cpu, idle, strict=True)) / args.fanout_idle
    cpu = idle
    node_cpu = harness.cpu_seconds(crowd.proc.pid)
    began = time.monotonic()
    timing = crowd.request(
        "fanout",
        args.messages * (args.message_timeout + 5) + 30,
        sender=0,
        room_id=room_id,
        messages=args.messages,
        expected=size,
        timeout=args.message_timeout * 1000,
    )
    result.seconds = time.monotonic() - began
    result.server_cpu = sum(
        harness.cpu_seconds(s.worker) - before for s, before in zip(servers, cpu, strict=True)
    )
    result.client_cpu = harness.cpu_seconds(crowd.proc.pid) - node_cpu
    result.deliveries = timing["deliveries"]
    result.complete = timing["complete"]
    result.lost = timing["lost"]
    p50, p99 = result.deliveries["p50"] or 0, result.deliveries["p99"] or 0
    say(f"  p50 {p50:.1f} ms, p99 {p99:.1f} ms, lost {result.lost}")
    crowd.close_all(pace=0)
    wait_presence_gone(redis_url, args.settle)
    return result


# -- report ------------------------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(
    args: argparse.Namespace,
    cap: Capacity | None,
    storms: list[Storm],
    fans: list[Fanout],
) -> tuple[str, dict[str, Any], bool]:
    lines = [
        harness.machine_line(),
        f"server: gunicorn -c gunicorn.conf.py app:app (1 gevent worker, worker_connections "
        f"{args.worker_connections}); clients: socket.io-client {args.client} "
        f"under node (websocket transport), one process; {args.layout}",
        f"load average (1 min): {', '.join(f'{x:.2f}' for x in args.loads)}",
        "",
    ]
    goals: list[str] = []
    ok = True

    def judge(text: str, met: bool) -> None:
        nonlocal ok
        ok = ok and met
        goals.append(f"{text}: {_met(met)}")

    if cap is not None:
        rows = [
            ["sockets held", f"{cap.connected:,} of {cap.sockets:,}"],
            ["refused", cap.refused or "none"],
            ["connect time", f"{cap.connect_seconds:.1f} s ({cap.connects_per_s:,.0f}/s)"],
            [
                "worker RSS",
                f"{cap.rss_base / 2**20:.0f} MiB after warm-up, "
                f"{cap.rss_held / 2**20:.0f} MiB holding the sockets",
            ],
            ["RSS per socket", f"{cap.kb_per_socket:.1f} KB"],
            ["worker CPU idle", f"{cap.idle_cores_per_1000:.3f} cores per 1,000 sockets"],
            ["/health/live, app's port (ramp and idle)", latency(cap.health)],
            ["/health/live, HEALTH_PORT (the liveness probe's)", latency(cap.liveness)],
            [
                "client (node)",
                f"{cap.client_cpu:.1f} CPU s for the connects, "
                f"RSS {cap.client_rss / 2**20:.0f} MiB, "
                f"dropped: {cap.dropped or 'none'}",
            ],
            ["presence left", f"{cap.presence_left} ({cap.leave_seconds:.1f} s after leaving)"],
        ]
        lines += ["1. Idle capacity", "", harness.table(["", "measured"], rows), ""]
        judge(
            f"sockets held {cap.connected:,} (goal >= {GOAL_SOCKETS:,})",
            cap.connected >= GOAL_SOCKETS,
        )
        judge(
            f"RSS per socket {cap.kb_per_socket:.1f} KB (goal <= {GOAL_KB_PER_SOCKET})",
            cap.kb_per_socket <= GOAL_KB_PER_SOCKET,
        )
        for where, probed in (("app's port", cap.health), ("HEALTH_PORT", cap.liveness)):
            judge(
                f"/health/live on the {where} max {probed['max_ms']:.0f} ms with "
                f"{probed['failures']} failures (goal < {GOAL_HEALTH_MS} ms)",
                probed["max_ms"] < GOAL_HEALTH_MS and not probed["failures"],
            )
        judge(f"presence left after leaving {cap.presence_left} (goal 0)", not cap.presence_left)
    if storms:

        def column(st: Storm) -> list[str]:
            span = st.seconds or 1.0
            cores = (st.server_cpu / span, st.client_cpu / span)
            return [
                f"{st.sockets:,}",
                f"{st.connected:,} in {st.seconds:.1f} s",
                str(st.refused or "none"),
                f"p50 {st.connect_ms.get('p50') or 0:,.0f} ms, "
                f"p99 {st.connect_ms.get('p99') or 0:,.0f} ms",
                f"{st.server_cpu / max(st.connected, 1) * 1000:.2f} ms",
                f"server {cores[0]:.2f}, client {cores[1]:.2f}",
                latency(st.health),
                latency(st.liveness),
                f"{st.listen_overflows:,}",
                latency(st.side),
                f"{st.presence_left} ({st.leave_seconds:.1f} s after leaving)",
            ]

        measures = [
            "sockets at once", "admitted", "refused", "connect time per socket",
            "worker CPU per admitted socket", "CPU (cores)", "/health/live, app's port",
            "/health/live, HEALTH_PORT (liveness)", "accept queue overflows (machine)",
            "METRICS_PORT (a listener of its own)", "presence left",
        ]  # fmt: skip
        columns = [column(st) for st in storms]
        rows = [[m, *(c[i] for c in columns)] for i, m in enumerate(measures)]
        headers = ["", *(st.code or "this checkout" for st in storms)]
        lines += ["2. Reconnect storm", "", harness.table(headers, rows), ""]
        for st in storms:
            if st.code:  # the --before commit: measured, not judged
                continue
            unavailable = st.refused.get("DEPENDENCY_UNAVAILABLE", 0)
            judge(
                f"storm of {st.sockets:,}: {st.connected:,} admitted in {st.seconds:.1f} s "
                f"(goal all in <= {GOAL_STORM_SECONDS} s)",
                st.connected == st.sockets and st.seconds <= GOAL_STORM_SECONDS,
            )
            judge(f"DEPENDENCY_UNAVAILABLE {unavailable} (goal 0)", not unavailable)
            if st.liveness:
                judge(
                    f"/health/live on HEALTH_PORT in the storm max {st.liveness['max_ms']:.0f} "
                    f"ms with {st.liveness['failures']} failures (goal < {GOAL_HEALTH_MS} ms)",
                    st.liveness["max_ms"] < GOAL_HEALTH_MS and not st.liveness["failures"],
                )
            judge(
                f"presence left after the storm {st.presence_left} (goal 0)", not st.presence_left
            )
    if fans:
        headers = [
            "code", "members", "join s", "join server CPU s", "same, net of idle",
            "last member p50 ms", "last member p99 ms", "delivery p50 ms", "delivery p99 ms",
            "delivery max ms", "deliveries/s per worker core", "same, net of idle",
            "µs per delivery, net of idle", "idle server CPU (cores)", "server CPU (cores)",
            "client CPU (cores)", "lost",
        ]  # fmt: skip
        rows = [
            [
                f.code or "this checkout",
                f"{f.size:,}",
                f.join_seconds,
                f.join_server_cpu,
                f.join_cpu_net,
                f.complete["p50"],
                f.complete["p99"],
                f.deliveries["p50"],
                f.deliveries["p99"],
                f.deliveries["max"],
                f.per_core,
                f.per_core_net,
                f.us_per_delivery_net,
                f.idle_cores,
                f.server_cpu / f.seconds if f.seconds else 0.0,
                f.client_cpu / f.seconds if f.seconds else 0.0,
                f.lost,
            ]
            for f in fans
        ]
        lines += [
            f"3. Fan-out: two instances, {args.messages} messages one at a time from one member",
            "",
            harness.table(headers, rows),
            "",
        ]
        for f in fans:
            if f.code:  # the --before commit: measured, not judged
                continue
            p99 = f.complete["p99"] or float("inf")
            judge(
                f"fan-out to {f.size:,}: p99 until the last member {p99:.0f} ms, lost {f.lost}"
                + (f" (goal < {GOAL_FANOUT_P99_MS} ms)" if f.size >= GOAL_SOCKETS else ""),
                not f.lost and (f.size < GOAL_SOCKETS or p99 < GOAL_FANOUT_P99_MS),
            )
    if args.smoke:
        goals.append("smoke run: the figures are not judged")
    summary = "socket_capacity: " + "; ".join(goals)
    lines.append(summary)
    data = {
        "settings": {k: v for k, v in vars(args).items() if k != "layout"},
        "capacity": vars(cap) if cap else None,
        "storms": [vars(st) for st in storms],
        "fanout": [vars(f) for f in fans],
        "summary": summary,
        "goals_met": ok,
    }
    return "\n".join(lines), data, ok


# -- main --------------------------------------------------------------------------------------


def client_version() -> str:
    import json

    package = js_client.NODE_MODULES / "socket.io-client" / "package.json"
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "?"


def worker_connections(
    args: argparse.Namespace, phases: set[str], sizes: list[int], reserve: int
) -> int:
    """What ``gunicorn.conf.py`` ships, or what the largest phase needs on one worker (the
    fan-out's instances hold half the room each) plus the reserve and a margin."""
    config = (ROOT / "gunicorn.conf.py").read_text()
    found = re.search(r"^worker_connections\s*=\s*(\d+)", config, re.M)
    shipped = int(found.group(1)) if found else 1000
    one_worker = [
        args.sockets if "capacity" in phases else 0,
        args.storm if "storm" in phases else 0,
        *((size + 1) // 2 for size in sizes),
    ]
    return max(shipped, max(one_worker) + reserve + 100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=10_000, help="idle sockets to hold")
    parser.add_argument("--pace", type=int, default=100, help="connects in flight at most")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds idle with the sockets")
    parser.add_argument("--storm", type=int, default=10_000, help="sockets connecting at once")
    parser.add_argument("--storm-timeout", type=float, default=60.0, help="client connect timeout")
    parser.add_argument("--fanout", default="1000,10000", help="room sizes (two instances)")
    parser.add_argument("--messages", type=int, default=20, help="fan-out messages per room")
    parser.add_argument("--message-timeout", type=float, default=30.0)
    parser.add_argument(
        "--fanout-idle",
        type=float,
        default=5.0,
        help="seconds the room is left idle before the messages, to measure the idle CPU",
    )
    parser.add_argument("--settle", type=float, default=60.0, help="wait for presence cleanup")
    parser.add_argument("--connect-wait", type=float, default=600.0, help="per phase, seconds")
    parser.add_argument(
        "--worker-connections",
        type=int,
        default=0,
        help="override gunicorn's worker_connections (0: as shipped in gunicorn.conf.py, or "
        "what the largest phase needs)",
    )
    parser.add_argument("--phases", default="capacity,storm,fanout")
    parser.add_argument(
        "--memory",
        type=int,
        default=0,
        metavar="FRAMES",
        help="trace the worker's allocations (tracemalloc, FRAMES deep; slow) and report "
        "where each idle socket's memory goes",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the worker with py-spy during the storm "
        "(bench/results/socket_capacity-profile-storm.txt)",
    )
    parser.add_argument(
        "--before",
        default="",
        metavar="REF",
        help="also storm the code of commit REF (a temporary git worktree), in turns",
    )
    parser.add_argument("--rounds", type=int, default=1, help="storms of each code, in turns")
    parser.add_argument("--no-pin", action="store_true", help="leave CPU placement to the kernel")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="an extra app setting"
    )
    smoke = {
        "sockets": 50,
        "pace": 20,
        "idle": 2.0,
        "storm": 50,
        "fanout": "20",
        "messages": 3,
        "fanout_idle": 0.5,
        # The room of 20 is a large room here: its joins go the room_presence way.
        "env": ["SOCKETIO_PRESENCE_EVENTS_MAX=5", "SOCKETIO_ROOM_PRESENCE_INTERVAL=0.5"],
    }
    args = harness.parse_args(parser, argv, smoke)
    if args.before and any(item.startswith("METRICS_PORT=") for item in args.env):
        parser.error("--before with METRICS_PORT: both servers would listen on it")
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    sizes = [int(s) for s in args.fanout.split(",") if s.strip()] if "fanout" in phases else []
    args.loads = [harness.load_average()]
    node = js_client.install()
    args.client = client_version()
    layout = None if args.no_pin else harness.cpu_layout()
    server_cpus, load_cpus = layout or (None, None)
    args.layout = (
        f"gunicorn pinned to CPU {sorted(server_cpus)}, node and the stores to {sorted(load_cpus)}"
        if server_cpus and load_cpus
        else "no CPU pinning"
    )

    cap = None
    storms: list[Storm] = []
    fans: list[Fanout] = []
    with (
        harness.log_dir(args.keep_logs) as logs,
        Stack() as stack,
        harness.checkout(args.before if "storm" in phases or sizes else "") as before_root,
    ):
        if load_cpus:
            stack.pin(load_cpus)
        env = stack.app_env(**dict(item.split("=", 1) for item in args.env))
        settings = SettingsLoader(env).load(None).settings
        args.worker_connections = args.worker_connections or worker_connections(
            args, phases, sizes, settings.socketio_connection_reserve
        )
        gunicorn_args = [f"--worker-connections {args.worker_connections}"]
        if args.memory:  # the snapshot holds up the worker longer than the arbiter's timeout
            gunicorn_args.append("--timeout 900")
        if gunicorn_args:
            env["GUNICORN_CMD_ARGS"] = " ".join(gunicorn_args)
        most = max(
            [
                args.sockets if "capacity" in phases else 0,
                args.storm if "storm" in phases else 0,
                *sizes,
            ]
        )
        say(f"issuing {most:,} access tokens")
        tokens = access_tokens(settings, most, "cap")
        servers = [Gunicorn("app:app", env, logs, f"instance-{i}") for i in range(2)]
        before = Gunicorn("app:app", env, logs, "before", before_root)
        before_pair = [Gunicorn("app:app", env, logs, f"before-{i}", before_root) for i in (0, 1)]
        for server in (*servers, before, *before_pair):  # as the manifests ship: liveness's port
            server.env["HEALTH_PORT"] = str(free_port())
        crowd = JsCrowd(node)
        try:
            if load_cpus:
                harness.pin(crowd.proc.pid, load_cpus)
            first = servers[0].start("/health/ready")
            if server_cpus:
                harness.pin(first.worker, server_cpus)
                if first.child is not None and first.child.proc is not None:
                    harness.pin(first.child.proc.pid, server_cpus)  # the master
            warm_up(crowd, first, tokens[:20])
            if "capacity" in phases:
                cap = capacity(args, first, crowd, tokens[: args.sockets], stack.redis.url)
                args.loads.append(harness.load_average())
            if "storm" in phases:
                served = [(first, "")]
                if args.before:
                    before.start("/health/ready")
                    if server_cpus:
                        harness.pin(before.worker, server_cpus)
                        if before.child is not None and before.child.proc is not None:
                            harness.pin(before.child.proc.pid, server_cpus)
                    warm_up(crowd, before, tokens[:20])
                    served.append((before, args.before))
                for turn in range(args.rounds):  # interleaved, each code first in turn
                    for server, code in served[turn % 2 :] + served[: turn % 2]:
                        profile = args.profile and not code and turn == 0
                        storm_tokens = tokens[: args.storm]
                        url = stack.redis.url
                        storms.append(storm(args, server, crowd, storm_tokens, url, code, profile))
                        args.loads.append(harness.load_average())
            if sizes:
                second = servers[1].start("/health/ready")
                if server_cpus:
                    harness.pin(second.worker, server_cpus)
                pairs = [(servers, "")]
                if args.before:
                    for server in before_pair:
                        started = server.start("/health/ready")
                        if server_cpus:
                            harness.pin(started.worker, server_cpus)
                    warm_up(crowd, before_pair[0], tokens[:20])
                    pairs.append((before_pair, args.before))
                for turn in range(args.rounds if args.before else 1):
                    for pair, code in pairs[turn % 2 :] + pairs[: turn % 2]:  # in turns
                        for size in sizes:
                            # Past the limit the joins' last room_presence comes an interval
                            # later.
                            large = size > settings.socketio_presence_events_max
                            settle = 1.0 + (
                                settings.socketio_room_presence_interval if large else 0.0
                            )
                            room = tokens[:size]
                            url = stack.redis.url
                            fans.append(fanout(args, pair, crowd, room, url, settle, code))
                            args.loads.append(harness.load_average())
        finally:
            crowd.close()
            for server in [*servers, before, *before_pair]:
                server.stop()

    text, data, ok = report(args, cap, storms, fans)
    print(text, flush=True)
    path = harness.save("socket_capacity", text, data, args.smoke)
    say(f"results in {path} (and .json)")
    if args.smoke:
        failed = (cap and (cap.refused or cap.presence_left)) or any(
            st.refused or st.presence_left for st in storms
        )
        return 1 if failed or any(f.lost for f in fans) else 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
