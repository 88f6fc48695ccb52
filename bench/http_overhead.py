"""HTTP overhead of the framework next to a bare Flask app, both under production gunicorn.

    .venv/bin/python -m bench.http_overhead [--seconds 10] [--warmup 3] [--connections 4]

Servers: gunicorn with ``gunicorn.conf.py`` (one gevent worker, JSON access log) serving
(a) ``bench/bare_app.py`` and then the framework (``app:app``, ``APP_ENV=prod``) against real
MongoDB, PostgreSQL and Redis from ``core.devstack``. Load: ``wrk`` (one thread, a few
keep-alive connections; installed with apt-get when missing). Cases:

(a) bare Flask ``GET /ping``                         -> {"status": "ok"}
(b0) ``GET /public/bench/exempt`` public and rate-limit exempt: the pipeline without Redis
(b) ``GET /public/bench/ping``   public: ip limit
(c) ``GET /userauth/bench/ping`` JWT + ip and user limits + revocation marks + metrics
(c2) ``GET /userauth/me``        the same plus the view's MongoDB read (a real route)
(d) ``GET /keyauth/bench/ping``  API key (process cache) + ip and api_key limits + revocation
(e) ``POST /actions/system.echo`` with a JSON body: action auth, schema, audit row

Rate limits are set far above the load (every level still counted) so nothing is refused.
Per case, two loads: ``--connections`` (4) keep-alive connections for ``--seconds``, which
keeps the worker CPU-bound (requests/s, latency under load, worker CPU), and one connection
for ``--single-seconds`` (latency without queueing). Reported: requests/s and p50/p99 with
their ratio to (a); CPU of the gunicorn worker (utime + stime from /proc) per request, and
the same minus bare Flask's = the framework's overhead per request; Redis commands per
request counted with MONITOR over a small sample of sequential requests (separately from the
load: MONITOR slows Redis down). (b0) and (c2) are extra rows that split the cost: (b0) ->
(b) is the Redis round trip, (b) -> (c) the JWT. On two or more cores the worker gets the
first core to itself; wrk and the stores share the others (``--no-pin`` to leave placement to
the kernel).

``--profile c`` (any case keys) also samples the worker with py-spy during an extra run of
that case and writes ``bench/results/http_overhead-profile-<case>.txt``.
"""

from __future__ import annotations

import argparse
import http.client
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import harness
from bench.harness import HOST, Gunicorn, Stack, WrkResult, say
from core.devstack.redis import client_commands

CPU_BUDGET_US = 150.0
BACKGROUND = ":ws:instance"  # keys of the Socket.IO instance heartbeat
RPS_TARGET = 0.5


@dataclass
class Case:
    key: str
    title: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    count_redis: bool = True


@dataclass
class Measured:
    case: Case
    wrk: WrkResult  # the saturating run: req/s, latency under load, CPU
    single: WrkResult  # one connection: latency without queueing
    cpu_s: float
    redis_per_request: float | None = None
    redis_breakdown: str = ""

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.wrk.requests * 1e6 if self.wrk.requests else float("nan")

    @property
    def errors(self) -> int:
        return self.wrk.error_count + self.single.error_count


def measure(server: Gunicorn, case: Case, args: argparse.Namespace) -> Measured:
    url = server.url + case.path
    status, answer = harness.request(case.method, url, case.body, case.headers)
    if status != 200:
        raise RuntimeError(f"{case.key}: {case.method} {case.path} answered {status}: {answer}")
    say(
        f"({case.key}) {case.title}: warm-up {args.warmup:g}s, {args.seconds:g}s with "
        f"{args.connections} connections, {args.single_seconds:g}s with one"
    )
    request = {"method": case.method, "body": case.body, "headers": case.headers}
    load = {"threads": args.threads, "cpus": args.load_cpus, **request}
    harness.run_wrk(url, args.warmup, args.connections, **load)  # type: ignore[arg-type]
    before = harness.cpu_seconds(server.worker)
    result = harness.run_wrk(url, args.seconds, args.connections, **load)  # type: ignore[arg-type]
    cpu = harness.cpu_seconds(server.worker) - before
    single = harness.run_wrk(url, args.single_seconds, 1, **load)  # type: ignore[arg-type]
    return Measured(case, result, single, cpu)


def profile(server: Gunicorn, measured: Measured, args: argparse.Namespace) -> None:
    """An extra run of the case under py-spy; the summary goes to bench/results/."""
    case = measured.case
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    raw = harness.RESULTS / f"http_overhead-profile-{case.key}.raw"

    def load() -> None:
        harness.run_wrk(
            server.url + case.path,
            args.profile_seconds,
            args.connections,
            args.threads,
            case.method,
            case.body,
            case.headers,
            args.load_cpus,
        )

    say(f"({case.key}) profiling with py-spy for {args.profile_seconds:g}s")
    if harness.profile_while(server.worker, args.profile_seconds, raw, load):
        summary = harness.profile_summary(raw, 60, measured.cpu_us)
        out = Path(str(raw).removesuffix(".raw") + ".txt")
        out.write_text(f"({case.key}) {case.title}\n{summary}\n")
        say(f"profile in {out}")


def count_redis(server: Gunicorn, redis_url: str, measured: Measured, sample: int) -> None:
    """Redis commands per request over ``sample`` sequential keep-alive requests."""
    case = measured.case
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
    # The Socket.IO instance heartbeat (every SOCKETIO_INSTANCE_TTL / 3 s) may fall into the
    # sample; it belongs to no request.
    background = [c for c in commands if BACKGROUND in c]
    per_request = [c for c in commands if BACKGROUND not in c]
    names = Counter(command.split(" ", 1)[0].upper() for command in per_request)
    measured.redis_per_request = len(per_request) / sample
    measured.redis_breakdown = ", ".join(f"{n} {c / sample:.2f}" for n, c in names.most_common())
    if background:
        measured.redis_breakdown += f" (+{len(background)} heartbeat commands, not counted)"


def _ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def report(results: list[Measured], args: argparse.Namespace) -> tuple[str, dict[str, Any], bool]:
    base = results[0]
    load_rows = []
    single_rows = []
    for m in results:
        w, one = m.wrk, m.single
        name = f"({m.case.key}) {m.case.title}"
        load_rows.append(
            [
                name,
                w.rps,
                _ratio(w.rps, base.wrk.rps),
                w.p50_ms,
                _ratio(w.p50_ms, base.wrk.p50_ms),
                w.p99_ms,
                _ratio(w.p99_ms, base.wrk.p99_ms),
                m.cpu_us,
                m.cpu_us - base.cpu_us if m is not base else float("nan"),
                f"{m.redis_per_request:.2f}" if m.redis_per_request is not None else "-",
                m.errors,
            ]
        )
        single_rows.append(
            [
                name,
                one.rps,
                one.p50_ms,
                _ratio(one.p50_ms, base.single.p50_ms),
                one.p99_ms,
                _ratio(one.p99_ms, base.single.p99_ms),
            ]
        )
    load_headers = [
        "case", "req/s", "x (a)", "p50 ms", "x (a)", "p99 ms", "x (a)",
        "CPU us/req", "over (a) us/req", "Redis cmds/req", "errors",
    ]  # fmt: skip
    single_headers = ["case", "req/s", "p50 ms", "x (a)", "p99 ms", "x (a)"]
    pinned = (
        f"worker pinned to CPU {sorted(args.server_cpus)}, wrk and the stores to "
        f"{sorted(args.load_cpus)}"
        if args.load_cpus
        else "no CPU pinning"
    )
    lines = [
        harness.machine_line(),
        f"gunicorn -c gunicorn.conf.py (1 gevent worker) for both apps; {pinned}; "
        f"load average before: {args.load_before}",
        "",
        f"Under load: wrk -t{args.threads} -c{args.connections} --latency, {args.warmup:g}s "
        f"warm-up + {args.seconds:g}s per case (the worker is CPU-bound); CPU = worker "
        f"utime+stime per request; Redis = client commands seen by MONITOR over "
        f"{args.sample} sequential requests",
        "",
        harness.table(load_headers, load_rows),
        "",
        f"One connection: wrk -t1 -c1 --latency, {args.single_seconds:g}s per case "
        f"(latency without queueing)",
        "",
        harness.table(single_headers, single_rows),
        "",
    ]
    lines += [f"Redis ({m.case.key}): {m.redis_breakdown}" for m in results if m.redis_breakdown]
    summary_parts = []
    met = True
    c = next((m for m in results if m.case.key == "c"), None)
    if c is not None:
        ratio = _ratio(c.wrk.rps, base.wrk.rps)
        overhead = c.cpu_us - base.cpu_us
        ok_ratio, ok_cpu = ratio >= RPS_TARGET, overhead <= CPU_BUDGET_US
        met = ok_ratio and ok_cpu
        summary_parts.append(
            f"(c) JWT+limits+metrics = {ratio:.2f} x bare Flask req/s "
            f"(target >= {RPS_TARGET}: {'met' if ok_ratio else 'NOT met'}), "
            f"framework CPU {overhead:.0f} us/request over bare Flask "
            f"(target <= {CPU_BUDGET_US:.0f}: {'met' if ok_cpu else 'NOT met'})"
        )
    trips = [
        f"({m.case.key}) {m.redis_per_request:.2f}"
        for m in results
        if m.redis_per_request is not None
    ]
    if trips:
        summary_parts.append("Redis round trips/request " + ", ".join(trips))
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
                "load": vars(m.wrk),
                "rps": m.wrk.rps,
                "single_connection": vars(m.single),
                "worker_cpu_s": m.cpu_s,
                "cpu_us_per_request": m.cpu_us,
                "overhead_us_per_request": m.cpu_us - base.cpu_us,
                "redis_commands_per_request": m.redis_per_request,
                "redis_breakdown": m.redis_breakdown,
            }
            for m in results
        ],
        "summary": summary,
        "targets_met": met,
    }
    return "\n".join(lines), data, met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured run per case")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up run per case")
    parser.add_argument("--connections", type=int, default=4, help="wrk keep-alive connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--single-seconds", type=float, default=5.0, help="one-connection run")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--sample", type=int, default=200, help="requests under MONITOR")
    parser.add_argument("--cases", default="a,b0,b,c,c2,d,e", help="cases (a is required)")
    parser.add_argument("--profile", default="", help="cases to profile with py-spy, e.g. c,d")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--keep-logs", action="store_true", help="keep the gunicorn logs")
    args = parser.parse_args(argv)
    wanted = [key.strip() for key in args.cases.split(",") if key.strip()]
    if "a" not in wanted:
        parser.error("case a (bare Flask) is the baseline and cannot be left out")
    profiled = {key.strip() for key in args.profile.split(",") if key.strip()}
    harness.ensure_wrk()
    args.load_before = harness.load_average()
    layout = None if args.no_pin else harness.cpu_layout()
    args.server_cpus, args.load_cpus = layout or (None, None)
    if args.load_before > 0.5:
        say(f"load average is {args.load_before}: other work on the machine skews the figures")

    results: list[Measured] = []
    with harness.log_dir(args.keep_logs) as logs, Stack() as stack:
        if args.load_cpus:
            stack.pin(args.load_cpus)
        bare_case = Case("a", "bare Flask GET /ping", "GET", "/ping", {}, count_redis=False)
        with Gunicorn("bench.bare_app:app", harness.base_env({}), logs, "bare") as bare:
            bare.start("/ping")
            if args.server_cpus:
                harness.pin(bare.worker, args.server_cpus)
            results.append(measure(bare, bare_case, args))
            if "a" in profiled:
                profile(bare, results[-1], args)

        env = stack.app_env()
        with Gunicorn("app:app", env, logs, "framework") as framework:
            framework.start("/health/ready")
            if args.server_cpus:
                harness.pin(framework.worker, args.server_cpus)
            tokens = harness.register_and_login(framework.url)
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            api_key = {"X-API-Key": harness.create_api_key(env)}
            cases = [
                Case("b0", "exempt GET /public/bench/exempt", "GET", "/public/bench/exempt", {}),
                Case("b", "public GET /public/bench/ping", "GET", "/public/bench/ping", {}),
                Case("c", "JWT GET /userauth/bench/ping", "GET", "/userauth/bench/ping", bearer),
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
            for case in cases:
                if case.key not in wanted:
                    continue
                measured = measure(framework, case, args)
                if case.count_redis:
                    count_redis(framework, stack.redis.url, measured, args.sample)
                results.append(measured)
                if case.key in profiled:
                    profile(framework, measured, args)

    text, data, _ = report(results, args)
    print(text, flush=True)
    path = harness.save("http_overhead", text, data)
    say(f"results in {path} (and .json)")
    errors = sum(m.errors for m in results)
    if errors:
        say(f"{errors} requests failed during the runs: the figures are not valid")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
