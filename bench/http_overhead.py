"""HTTP overhead of the framework next to a bare Flask app, both under production gunicorn.

    .venv/bin/python -m bench.http_overhead [--seconds 4] [--rounds 5] [--connections 4]

Servers: gunicorn with ``gunicorn.conf.py`` (one gevent worker, JSON access log) serving
(a) ``bench/bare_app.py``, (p) ``bench/peer_app.py`` and the framework (``app:app``,
``APP_ENV=prod``) against real MongoDB, PostgreSQL and Redis from ``core.devstack``, all
three up at once. Load: ``wrk`` (one thread, a few keep-alive connections; installed with
apt-get when missing). The cases run **interleaved**: round 1 runs every case once, round 2
again, and so on, so a change in the machine's load (it is shared) hits bare, peer and
framework alike and the ratios stay meaningful; the load average is recorded per round.
Cases:

(a) bare Flask ``GET /ping``                         -> {"status": "ok"}
(a0) (a) without the ``Authorization`` header the other cases send (not run by default)
(p) the peer ``GET /ping``: flask-jwt-extended + Redis blocklist, Flask-Limiter on Redis
    (ip and per-token limits), prometheus-flask-exporter: the stack a Flask user would
    assemble instead of the framework for (c)
(b0) ``GET /public/bench/exempt`` public and rate-limit exempt: the pipeline without Redis
(b) ``GET /public/bench/ping``   public: ip limit
(c) ``GET /userauth/bench/ping`` JWT + ip and user limits + revocation marks + metrics
(c-py) (c) on a second framework server whose redis-py cannot import hiredis (pure-Python
    RESP parser and serializer): what the compiled dependency buys, in the same run
(c2) ``GET /userauth/me``        the same plus the view's MongoDB read (a real route)
(d) ``GET /keyauth/bench/ping``  API key (process cache) + ip and api_key limits + revocation
(e) ``POST /actions/system.echo`` with a JSON body: action auth, schema, audit row
(c-otel) (c) on a framework server with tracing on (``OTEL_EXPORTER_OTLP_ENDPOINT``, every
    request sampled, exported over OTLP/HTTP to a sink that drops it: ``bench/otlp_sink.py``):
    what tracing costs when on; off, (c) is the figure (no tracing code runs)

Every case that presents no credential of its own ((a), (b0), (b)) is sent the same
``Authorization: Bearer`` header as (c), so gunicorn parses the same request bytes for bare
Flask as for the framework; they ignore it. (a0), not run by default, is (a) without the
header (the baseline before issue 24): ``--cases a,a0,c`` shows both in one run.

Rate limits are set far above the load (every level still counted) so nothing is refused.
Per case and round, ``--connections`` (4) keep-alive connections for ``--seconds``, which
keeps the worker CPU-bound (requests/s, latency under load, worker CPU; the rounds add up),
after a warm-up in the first round; then one connection for ``--single-seconds`` (latency
without queueing). Reported: requests/s with its ratio to (a) and
to (p), p50/p99; CPU of the gunicorn worker (utime + stime from /proc) per request, and
the same minus bare Flask's = the overhead per request, also as a multiple of a
bare request's CPU; Redis commands per
request counted with MONITOR over a small sample of sequential requests (separately from the
load: MONITOR slows Redis down). (b0) and (c2) are extra rows that split the cost: (b0) ->
(b) is the Redis round trip, (b) -> (c) the JWT. On two or more cores the worker gets the
first core to itself; wrk and the stores share the others (``--no-pin`` to leave placement to
the kernel).

``--before REF`` also serves the framework as of commit REF (a temporary git worktree, with
the same packages: hiredis included) and adds (b0) and (c) on it to the same interleaved
rounds: what moved, measured side by side. ``--before-without-hiredis`` hides hiredis from it,
for a REF from before hiredis was a requirement (949b81d, the first report's).

``--profile c`` (any case keys) also samples the worker with py-spy during an extra run of
that case and writes ``bench/results/http_overhead-profile-<case>.txt``.

``--smoke`` runs every case for a second (CI: ``make bench-smoke``): it checks that the
benchmark runs and that no request fails; its figures are not meant to be read.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import secrets
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import harness
from bench.harness import HOST, Gunicorn, Stack, WrkResult, say
from bench.otlp_sink import OtlpSink
from core.devstack.redis import client_commands

BACKGROUND = ":ws:instance"  # keys of the Socket.IO instance heartbeat
#: Goals for case (c): requests/s as a multiple of bare Flask's (issue 24) and of the peer's
#: (issue 14); the framework's CPU over bare Flask's as a multiple of a bare request's CPU,
#: for (c) (issue 24) and (b0) (issue 14).
RPS_GOAL_BARE = 0.65
RPS_GOAL_PEER = 3.0
CPU_GOAL = {"c": 0.6, "b0": 0.25}


@dataclass
class Case:
    key: str
    title: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    count_redis: bool = True
    server: Gunicorn | None = None


@dataclass
class Measured:
    case: Case
    rounds: list[WrkResult] = field(default_factory=list)  # the saturating runs
    cpu_s: float = 0.0  # worker CPU over all rounds
    single: WrkResult | None = None  # one connection: latency without queueing
    redis_per_request: float | None = None
    redis_breakdown: str = ""

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rounds)

    @property
    def rps(self) -> float:
        seconds = sum(r.seconds for r in self.rounds)
        return self.requests / seconds if seconds else 0.0

    def latency(self, name: str) -> float:
        """The median over the rounds of one latency figure (``p50_ms``, ``p99_ms``)."""
        return float(statistics.median(getattr(r, name) for r in self.rounds))

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")

    @property
    def errors(self) -> int:
        single = self.single.error_count if self.single else 0
        return sum(r.error_count for r in self.rounds) + single


def _server(case: Case) -> Gunicorn:
    if case.server is None:
        raise RuntimeError(f"case {case.key} has no server")
    return case.server


def _load(case: Case, args: argparse.Namespace, seconds: float, connections: int) -> WrkResult:
    return harness.run_wrk(
        _server(case).url + case.path,
        seconds,
        connections,
        args.threads,
        case.method,
        case.body,
        case.headers,
        args.load_cpus,
    )


def check(case: Case) -> None:
    status, answer = harness.request(
        case.method, _server(case).url + case.path, case.body, case.headers
    )
    if status != 200:
        raise RuntimeError(f"{case.key}: {case.method} {case.path} answered {status}: {answer}")


def measure_round(measured: Measured, args: argparse.Namespace, warm_up: bool) -> None:
    """One saturating run of the case (after a warm-up in the first round)."""
    case = measured.case
    say(f"round {len(measured.rounds) + 1}: ({case.key}) {case.title}")
    if warm_up and args.warmup > 0:
        _load(case, args, args.warmup, args.connections)
    worker = _server(case).worker
    before = harness.cpu_seconds(worker)
    measured.rounds.append(_load(case, args, args.seconds, args.connections))
    measured.cpu_s += harness.cpu_seconds(worker) - before


def profile(measured: Measured, args: argparse.Namespace) -> None:
    """An extra run of the case under py-spy; the summary goes to bench/results/."""
    case = measured.case
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    raw = harness.RESULTS / f"http_overhead-profile-{case.key}.raw"
    say(f"({case.key}) profiling with py-spy for {args.profile_seconds:g}s")
    if harness.profile_while(
        _server(case).worker,
        args.profile_seconds,
        raw,
        lambda: _load(case, args, args.profile_seconds, args.connections),
    ):
        summary = harness.profile_summary(raw, 60, measured.cpu_us)
        out = Path(str(raw).removesuffix(".raw") + ".txt")
        out.write_text(f"({case.key}) {case.title}\n{summary}\n")
        say(f"profile in {out}")


def count_redis(redis_url: str, measured: Measured, sample: int) -> None:
    """Redis commands per request over ``sample`` sequential keep-alive requests."""
    case = measured.case
    server = _server(case)
    url = server.url + case.path
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    statuses: Counter[int] = Counter()

    def send() -> None:
        for _ in range(sample):
            status, _ = harness.request(case.method, url, case.body, case.headers, connection=conn)
            statuses[status] += 1

    try:
        harness.request(case.method, url, case.body, case.headers, connection=conn)
        commands = client_commands(redis_url, send)
    finally:
        conn.close()
    if set(statuses) != {200}:
        raise RuntimeError(f"{case.key}: statuses during the MONITOR sample: {dict(statuses)}")
    # The Socket.IO instance heartbeat (every SOCKETIO_PRESENCE_TTL / 6 s) may fall into the
    # sample; it belongs to no request.
    background = [c for c in commands if BACKGROUND in c]
    per_request = [c for c in commands if BACKGROUND not in c]
    names = Counter(command.split(" ", 1)[0].upper() for command in per_request)
    measured.redis_per_request = len(per_request) / sample
    measured.redis_breakdown = ", ".join(f"{n} {c / sample:.2f}" for n, c in names.most_common())
    if background:
        measured.redis_breakdown += f" (+{len(background)} heartbeat commands, not counted)"


def json_costs() -> str:
    """What orjson would save where the framework serialises JSON on every request: the
    access-log line and a small response body (json as used today vs orjson, in-process)."""
    import json
    import timeit

    try:
        import orjson
    except ImportError:
        return "orjson: not installed, not measured"
    line = {
        "ts": "2026-12-02T05:00:00.000Z", "level": "INFO", "logger": "gunicorn.access",
        "message": "GET /userauth/bench/ping 200", "request_id": "0" * 32, "method": "GET",
        "path": "/userauth/bench/ping", "status": 200, "duration_ms": 0.52, "bytes": 100,
        "remote_addr": "127.0.0.1", "user_agent": None, "protocol": "HTTP/1.1",
    }  # fmt: skip
    body = {"status": "ok"}
    runs = {
        "access line json.dumps": lambda: json.dumps(line, default=str, ensure_ascii=False),
        "orjson.dumps": lambda: orjson.dumps(line, default=str),
        "body json.dumps": lambda: json.dumps(body, separators=(",", ":")),
        "body orjson.dumps": lambda: orjson.dumps(body),
    }
    costs = [
        f"{name} {min(timeit.repeat(run, number=20000, repeat=5)) / 20000 * 1e6:.1f} us"
        for name, run in runs.items()
    ]
    return "JSON per request, in-process: " + ", ".join(costs)


def _ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(results: list[Measured], args: argparse.Namespace) -> tuple[str, dict[str, Any], bool]:
    by_key = {m.case.key: m for m in results}
    base = by_key["a"]
    peer = by_key.get("p")

    def over(m: Measured) -> float:
        return m.cpu_us - base.cpu_us if m is not base else float("nan")

    load_rows = []
    single_rows = []
    for m in results:
        name = f"({m.case.key}) {m.case.title}"
        load_rows.append(
            [
                name,
                m.rps,
                _ratio(m.rps, base.rps),
                _ratio(m.rps, peer.rps) if peer else float("nan"),
                m.latency("p50_ms"),
                m.latency("p99_ms"),
                m.cpu_us,
                over(m),
                _ratio(over(m), base.cpu_us),
                f"{m.redis_per_request:.2f}" if m.redis_per_request is not None else "-",
                m.errors,
            ]
        )
        if m.single is not None and base.single is not None:
            one, base_one = m.single, base.single
            single_rows.append(
                [
                    name,
                    one.rps,
                    one.p50_ms,
                    _ratio(one.p50_ms, base_one.p50_ms),
                    one.p99_ms,
                    _ratio(one.p99_ms, base_one.p99_ms),
                ]
            )
    load_headers = [
        "case", "req/s", "x (a)", "x (p)", "p50 ms", "p99 ms", "CPU us/req",
        "over (a) us/req", "over (a) x (a)", "Redis cmds/req", "errors",
    ]  # fmt: skip
    single_headers = ["case", "req/s", "p50 ms", "x (a)", "p99 ms", "x (a)"]
    pinned = (
        f"workers pinned to CPU {sorted(args.server_cpus)}, wrk and the stores to "
        f"{sorted(args.load_cpus)}"
        if args.load_cpus
        else "no CPU pinning"
    )
    loads = ", ".join(f"{x:.2f}" for x in args.loads)
    lines = [
        harness.machine_line(),
        f"gunicorn -c gunicorn.conf.py (1 gevent worker) for every app; {pinned}",
        "(a), (b0), (b) get the same Authorization: Bearer header as (c) (ignored); "
        "(a0) is (a) without it",
        f"load average (1 min) before the run and after each round: {loads}",
        "",
        f"Under load: wrk -t{args.threads} -c{args.connections} --latency, "
        f"{args.rounds} interleaved rounds of {args.seconds:g}s per case after a "
        f"{args.warmup:g}s warm-up (the worker is CPU-bound); req/s over all rounds, "
        f"latency = median of the rounds; CPU = worker utime+stime per request; Redis = "
        f"client commands seen by MONITOR over {args.sample} sequential requests",
        "",
        harness.table(load_headers, load_rows),
        "",
    ]
    if single_rows:
        lines += [
            f"One connection: wrk -t1 -c1 --latency, {args.single_seconds:g}s per case "
            f"(latency without queueing)",
            "",
            harness.table(single_headers, single_rows),
            "",
        ]
    lines += [f"Redis ({m.case.key}): {m.redis_breakdown}" for m in results if m.redis_breakdown]
    lines += ["", args.json_costs]
    summary_parts = []
    met = True
    c = by_key.get("c")
    if c is not None:
        to_bare = _ratio(c.rps, base.rps)
        part = f"(c) = {to_bare:.2f} x bare Flask req/s (goal >= {RPS_GOAL_BARE}: "
        part += _met(to_bare >= RPS_GOAL_BARE) + ")"
        met = to_bare >= RPS_GOAL_BARE
        if peer is not None:
            to_peer = _ratio(c.rps, peer.rps)
            part += f", {to_peer:.2f} x the peer's (goal >= {RPS_GOAL_PEER}: "
            part += _met(to_peer >= RPS_GOAL_PEER) + ")"
            met = met and to_peer >= RPS_GOAL_PEER
        summary_parts.append(part)
    cpu_parts = []
    for key, goal in CPU_GOAL.items():
        if key not in by_key:
            continue
        overhead = over(by_key[key])
        share = _ratio(overhead, base.cpu_us)
        met = met and share <= goal
        cpu_parts.append(
            f"({key}) {overhead:.0f} us = {share:.2f} x (goal <= {goal}: {_met(share <= goal)})"
        )
    if cpu_parts:
        summary_parts.append(
            f"CPU over bare ({base.cpu_us:.0f} us/request): " + ", ".join(cpu_parts)
        )
    trips = [
        f"({m.case.key}) {m.redis_per_request:.2f}"
        for m in results
        if m.redis_per_request is not None
    ]
    if trips:
        summary_parts.append("Redis commands/request " + ", ".join(trips))
    summary_parts.append(f"load average {loads}")
    if args.smoke:
        summary_parts.append("smoke run: the figures are not judged")
    summary = "http_overhead: " + "; ".join(summary_parts)
    lines += ["", summary]
    settings = {k: sorted(v) if isinstance(v, set) else v for k, v in vars(args).items()}
    data = {
        "settings": settings,
        "cases": [
            {
                "key": m.case.key,
                "title": m.case.title,
                "method": m.case.method,
                "path": m.case.path,
                "rounds": [vars(r) for r in m.rounds],
                "rps": m.rps,
                "single_connection": vars(m.single) if m.single else None,
                "worker_cpu_s": m.cpu_s,
                "cpu_us_per_request": m.cpu_us,
                "overhead_us_per_request": over(m),
                "redis_commands_per_request": m.redis_per_request,
                "redis_breakdown": m.redis_breakdown,
            }
            for m in results
        ],
        "summary": summary,
        "goals_met": met,
    }
    return "\n".join(lines), data, met


def peer_token(peer: Gunicorn) -> str:
    status, answer = harness.request("POST", peer.url + "/login")
    if status != 200:
        raise RuntimeError(f"peer login failed: {status} {answer}")
    return str(answer["access_token"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured run per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of all cases")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up run per case")
    parser.add_argument("--connections", type=int, default=4, help="wrk keep-alive connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--single-seconds", type=float, default=5.0, help="one-connection run")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--sample", type=int, default=200, help="requests under MONITOR")
    parser.add_argument(
        "--cases", default="a,p,b0,b,c,c-py,c-otel,c2,d,e", help="cases (a is required)"
    )
    parser.add_argument("--profile", default="", help="cases to profile with py-spy, e.g. c,b0")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--keep-logs", action="store_true", help="keep the gunicorn logs")
    parser.add_argument(
        "--framework-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra setting for the framework (repeatable)",
    )
    parser.add_argument("--before", default="", metavar="REF", help="also serve commit REF")
    parser.add_argument(
        "--before-without-hiredis",
        action="store_true",
        help="serve --before REF with hiredis hidden (a REF from before it was required)",
    )
    smoke = {"seconds": 1.0, "rounds": 1, "warmup": 0.0, "single_seconds": 1.0, "sample": 5}
    args = harness.parse_args(parser, argv, smoke)
    wanted = [key.strip() for key in args.cases.split(",") if key.strip()]
    if "a" not in wanted:
        parser.error("case a (bare Flask) is the baseline and cannot be left out")
    profiled = {key.strip() for key in args.profile.split(",") if key.strip()}
    harness.ensure_wrk()
    args.loads = [harness.load_average()]
    layout = None if args.no_pin else harness.cpu_layout()
    args.server_cpus, args.load_cpus = layout or (None, None)
    if args.loads[0] > 0.5:
        say(f"load average is {args.loads[0]}: other work on the machine skews the figures")

    with (
        harness.log_dir(args.keep_logs) as logs,
        Stack() as stack,
        harness.checkout(args.before) as before_root,
    ):
        if args.load_cpus:
            stack.pin(args.load_cpus)
        env = stack.app_env(**dict(item.split("=", 1) for item in args.framework_env))
        peer_env = {
            "PEER_REDIS_URL": stack.redis.url,
            "PEER_JWT_SECRET": secrets.token_urlsafe(48),
            "PEER_LIMITS": harness.NO_LIMITS,
        }
        without_hiredis = {**env, "PYTHONPATH": str(harness.BENCH / "without_hiredis")}
        with (
            contextlib.closing(OtlpSink()) as sink,
            Gunicorn("bench.bare_app:app", harness.base_env({}), logs, "bare") as bare,
            Gunicorn("bench.peer_app:app", harness.base_env(peer_env), logs, "peer") as peer,
            Gunicorn("app:app", env, logs, "framework") as framework,
            Gunicorn("app:app", without_hiredis, logs, "framework-py") as framework_py,
            Gunicorn(
                "app:app", {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url}, logs, "otel"
            ) as framework_otel,
            Gunicorn(
                "app:app",
                without_hiredis if args.before_without_hiredis else env,
                logs,
                "before",
                before_root,
            ) as before,
        ):
            servers = [(bare, "/ping"), (peer, "/metrics"), (framework, "/health/ready")]
            if "c-py" in wanted:
                servers.append((framework_py, "/health/ready"))
            if "c-otel" in wanted:
                servers.append((framework_otel, "/health/ready"))
            if args.before:
                servers.append((before, "/health/ready"))
            for server, ready in servers:
                server.start(ready)
                if args.server_cpus:
                    harness.pin(server.worker, args.server_cpus)
            tokens = harness.register_and_login(framework.url)
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            api_key = {"X-API-Key": harness.create_api_key(env)}
            peer_bearer = {"Authorization": f"Bearer {peer_token(peer)}"}
            # The same request bytes for every case that needs no credential of its own: bare
            # Flask and the public routes ignore the header, but gunicorn parses it for all.
            same = bearer
            cases = [
                Case("a", "bare Flask GET /ping", "GET", "/ping", same, None, False, bare),
                Case("a0", "(a) without the header", "GET", "/ping", {}, None, False, bare),
                Case("p", "peer GET /ping", "GET", "/ping", peer_bearer, server=peer),
                Case("b0", "exempt GET /public/bench/exempt", "GET", "/public/bench/exempt", same),
                Case("b", "public GET /public/bench/ping", "GET", "/public/bench/ping", same),
                Case("c", "JWT GET /userauth/bench/ping", "GET", "/userauth/bench/ping", bearer),
                Case(
                    "c-py",
                    "(c) without hiredis",
                    "GET",
                    "/userauth/bench/ping",
                    bearer,
                    server=framework_py,
                ),
                Case(
                    "c-otel",
                    "(c) with tracing on",
                    "GET",
                    "/userauth/bench/ping",
                    bearer,
                    server=framework_otel,
                ),
                Case("c2", "JWT GET /userauth/me (+MongoDB)", "GET", "/userauth/me", bearer),
                Case("d", "API key GET /keyauth/bench/ping", "GET", "/keyauth/bench/ping", api_key),
                Case(
                    "e",
                    "JWT POST /actions/system.echo",
                    "POST",
                    "/actions/system.echo",
                    bearer,
                    body={"message": "hello", "n": 42, "tags": ["a", "b"]},
                ),
            ]
            if args.before:
                ref = args.before
                index = next(i for i, case in enumerate(cases) if case.key == "c") + 1
                cases[index:index] = [
                    Case(
                        f"{key}@{ref}",
                        f"({key}) at {ref}",
                        "GET",
                        path,
                        headers,
                        server=before,
                    )
                    for key, path, headers in (
                        ("b0", "/public/bench/exempt", same),
                        ("c", "/userauth/bench/ping", bearer),
                    )
                ]
                wanted += [case.key for case in cases[index : index + 2]]
            results = []
            for case in cases:
                if case.key in wanted:
                    case.server = case.server or framework
                    check(case)
                    results.append(Measured(case))
            for round_index in range(args.rounds):
                for measured in results:
                    measure_round(measured, args, warm_up=round_index == 0)
                args.loads.append(harness.load_average())
            for measured in results:
                say(f"({measured.case.key}) one connection for {args.single_seconds:g}s")
                measured.single = _load(measured.case, args, args.single_seconds, 1)
                if measured.case.count_redis:
                    count_redis(stack.redis.url, measured, args.sample)
            args.json_costs = json_costs()
            for measured in results:
                if measured.case.key in profiled:
                    profile(measured, args)

    text, data, _ = report(results, args)
    print(text, flush=True)
    path = harness.save("http_overhead", text, data, args.smoke)
    say(f"results in {path} (and .json)")
    errors = sum(m.errors for m in results)
    if errors:
        say(f"{errors} requests failed during the runs: the figures are not valid")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
