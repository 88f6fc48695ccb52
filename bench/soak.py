"""Load and soak: N concurrent users for a few minutes; zero errors and bounded memory.

    .venv/bin/python -m bench.soak [--minutes 3] [--users 20] [--max-rss-growth 20] [--smoke]

One production server (gunicorn with ``gunicorn.conf.py``: one gevent worker, ``APP_ENV=prod``,
default argon2 cost) against real MongoDB, PostgreSQL and Redis (``core.devstack``), loopback
only. Rate limits are set far above the load so they never interfere. Each virtual user
loops until the time is up:

    register -> login -> Socket.IO connect (python-socketio AsyncClient) -> join a room ->
    ``--iterations`` x [refresh, notes.create, notes.list, GET /userauth/me,
                        send_message and wait for its delivery] with a short think time ->
    socket disconnect -> logout -> a new identity

Reported: every error (must be 0), latency percentiles per operation, and the RSS of the
gunicorn worker (``/proc/<pid>/statm``) at boot, after the warm-up (the baseline), every 15 s
and at the end. Exit status 1 when any operation failed or the RSS grew more than
``--max-rss-growth`` percent over the baseline (default 20). Stops by itself after
``--minutes`` (plus a short drain of the users' last iteration). ``--smoke``: 3 users for
15 s, every operation at least once, errors still fail the run, memory is not judged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench import harness
from bench.harness import PASSWORD, Gunicorn, Stack, say

ROOMS = 4
RSS_EVERY = 15.0


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[str] = field(default_factory=list)
    identities: int = 0

    def record(self, operation: str, seconds: float) -> None:
        self.latencies[operation].append(seconds * 1000)

    def error(self, operation: str, detail: str) -> None:
        self.errors[operation] += 1
        if len(self.samples) < 20:
            self.samples.append(f"{operation}: {detail[:300]}")


class OperationFailed(Exception):
    pass


class User:
    def __init__(self, index: int, base: str, http: Any, stats: Stats, rooms: list[str]) -> None:
        self.index = index
        self.base = base
        self.http = http
        self.stats = stats
        self.room = rooms[index % len(rooms)]
        self.tokens: dict[str, Any] = {}
        self.pending: dict[str, asyncio.Future[float]] = {}

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any = None,
        expect: int = 200,
        auth: bool = False,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens['access_token']}"} if auth else {}
        started = time.perf_counter()
        try:
            async with self.http.request(
                method, self.base + path, json=body, headers=headers
            ) as response:
                text = await response.text()
                status = response.status
        except (TimeoutError, OSError) as exc:
            self.stats.error(operation, f"{type(exc).__name__}: {exc}")
            raise OperationFailed(operation) from None
        self.stats.record(operation, time.perf_counter() - started)
        if status != expect:
            self.stats.error(operation, f"{status} {text}")
            raise OperationFailed(operation)
        return json.loads(text) if text else None

    async def run(self, deadline: float, args: argparse.Namespace) -> None:
        await asyncio.sleep(random.uniform(0, 2))  # spread the start
        while time.monotonic() < deadline:
            try:
                await self.identity(deadline, args)
            except OperationFailed:
                await asyncio.sleep(1)  # recorded; start over with a new identity

    async def identity(self, deadline: float, args: argparse.Namespace) -> None:
        import socketio

        uid = uuid.uuid4().hex[:12]
        email = f"soak-{uid}@example.com"
        await self.call(
            "register",
            "POST",
            "/public/register",
            {"email": email, "username": f"soak_{uid}", "password": PASSWORD},
            expect=201,
        )
        self.tokens = await self.call(
            "login", "POST", "/public/login", {"email": email, "password": PASSWORD}
        )
        self.stats.identities += 1
        sio = socketio.AsyncClient(reconnection=False)
        sio.on("message", self.on_message)
        started = time.perf_counter()
        try:
            await sio.connect(
                self.base,
                auth={"token": self.tokens["access_token"]},
                transports=["websocket"],
                wait_timeout=10,
            )
        except (socketio.exceptions.ConnectionError, TimeoutError, OSError) as exc:
            self.stats.error("socket.connect", f"{type(exc).__name__}: {exc}")
            raise OperationFailed("socket.connect") from None
        self.stats.record("socket.connect", time.perf_counter() - started)
        try:
            await self.socket_call(sio, "join_room", {"room_id": self.room})
            for _ in range(args.iterations):
                if time.monotonic() >= deadline:
                    break
                await self.iteration(sio)
                await asyncio.sleep(random.uniform(0.5, 1.5) * args.think)
        finally:
            await sio.disconnect()
        await self.call(
            "logout",
            "POST",
            "/userauth/logout",
            {"refresh_token": self.tokens["refresh_token"]},
            expect=204,
            auth=True,
        )

    async def iteration(self, sio: Any) -> None:
        self.tokens = await self.call(
            "refresh", "POST", "/public/refresh", {"refresh_token": self.tokens["refresh_token"]}
        )
        created = await self.call(
            "notes.create",
            "POST",
            "/actions/notes.create",
            {"title": "soak", "body": "x" * random.randint(10, 500)},
            auth=True,
        )
        listed = await self.call(
            "notes.list", "POST", "/actions/notes.list", {"limit": 10}, auth=True
        )
        if created["result"]["id"] not in {n["id"] for n in listed["result"]["items"]}:
            self.stats.error("notes.list", "the note just created is not listed")
            raise OperationFailed("notes.list")
        await self.call("me", "GET", "/userauth/me", auth=True)

        marker = uuid.uuid4().hex
        delivered: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.pending[marker] = delivered
        sent = time.perf_counter()
        try:
            await self.socket_call(sio, "send_message", {"room_id": self.room, "body": marker})
            received = await asyncio.wait_for(delivered, 5)
            self.stats.record("socket.delivery", received - sent)
        except TimeoutError:
            self.stats.error("socket.delivery", "own message not delivered within 5 s")
            raise OperationFailed("socket.delivery") from None
        finally:
            self.pending.pop(marker, None)

    async def socket_call(self, sio: Any, event: str, data: Any) -> Any:
        started = time.perf_counter()
        try:
            answer = await sio.call(event, data, timeout=10)
        except Exception as exc:  # noqa: BLE001 - socketio raises its own timeout/disconnect types
            self.stats.error(f"socket.{event}", f"{type(exc).__name__}: {exc}")
            raise OperationFailed(event) from None
        self.stats.record(f"socket.{event}", time.perf_counter() - started)
        if not isinstance(answer, dict) or not answer.get("ok"):
            self.stats.error(f"socket.{event}", f"ack {answer}")
            raise OperationFailed(event)
        return answer

    def on_message(self, data: Any) -> None:
        future = self.pending.get(str(data.get("body")) if isinstance(data, dict) else "")
        if future is not None and not future.done():
            future.set_result(time.perf_counter())


async def soak(server: Gunicorn, args: argparse.Namespace) -> tuple[Stats, list[tuple[float, int]]]:
    import aiohttp
    import socketio

    stats = Stats()
    rss: list[tuple[float, int]] = [(0.0, harness.rss_bytes(server.worker))]
    # Rooms owned by a setup user, so they outlive every virtual user.
    owner = harness.register_and_login(server.url, "owner")
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(server.url, auth={"token": owner["access_token"]}, transports=["websocket"])
    rooms = []
    for i in range(ROOMS):
        answer = await sio.call("create_room", {"name": f"soak-{i}"}, timeout=10)
        rooms.append(answer["room"]["id"])
    await sio.disconnect()

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=args.users * 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        began = time.monotonic()
        deadline = began + args.minutes * 60
        users = [User(i, server.url, http, stats, rooms) for i in range(args.users)]
        tasks = [asyncio.create_task(user.run(deadline, args)) for user in users]
        next_report = began + RSS_EVERY
        while time.monotonic() < deadline:
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= next_report:
                next_report += RSS_EVERY
                elapsed = time.monotonic() - began
                rss.append((elapsed, harness.rss_bytes(server.worker)))
                ops = sum(len(v) for v in stats.latencies.values())
                say(
                    f"{elapsed:5.0f}s  RSS {rss[-1][1] / 2**20:6.1f} MiB  operations {ops}  "
                    f"errors {sum(stats.errors.values())}"
                )
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), args.iterations * 10 + 60)
        except TimeoutError:
            stats.error("shutdown", "users did not finish their last iteration in time")
            for task in tasks:
                task.cancel()
    rss.append((time.monotonic() - began, harness.rss_bytes(server.worker)))
    return stats, rss


def report(
    stats: Stats, rss: list[tuple[float, int]], args: argparse.Namespace
) -> tuple[str, dict[str, Any], bool]:
    order = [
        "register", "login", "refresh", "notes.create", "notes.list", "me", "logout",
        "socket.connect", "socket.join_room", "socket.send_message", "socket.delivery",
    ]  # fmt: skip
    names = [n for n in order if n in stats.latencies or n in stats.errors]
    names += sorted((set(stats.latencies) | set(stats.errors)) - set(order))
    rows = []
    for name in names:
        values = stats.latencies.get(name, [])
        rows.append(
            [
                name,
                len(values),
                stats.errors.get(name, 0),
                harness.percentile(values, 50),
                harness.percentile(values, 90),
                harness.percentile(values, 99),
                max(values) if values else float("nan"),
            ]
        )
    total_ops = sum(len(v) for v in stats.latencies.values())
    total_errors = sum(stats.errors.values())
    boot = rss[0][1]
    baseline_at, baseline = next(((t, b) for t, b in rss if t >= args.warmup), rss[-1])
    end = rss[-1][1]
    growth = (end - baseline) / baseline * 100
    ok = total_errors == 0 and (args.smoke or growth <= args.max_rss_growth)
    rss_line = "  ".join(f"{t:.0f}s {b / 2**20:.1f}" for t, b in rss)
    summary = (
        f"soak: {args.users} users x {args.minutes:g} min, {total_ops} operations "
        f"({total_ops / (args.minutes * 60):.0f}/s), {stats.identities} identities, "
        f"errors {total_errors} (must be 0); worker RSS boot {boot / 2**20:.1f} MiB, "
        f"after warm-up {baseline / 2**20:.1f} MiB, end {end / 2**20:.1f} MiB: "
        f"{growth:+.1f}% (bound {args.max_rss_growth:g}%"
        f"{', not judged in a smoke run' if args.smoke else ''}): {'PASS' if ok else 'FAIL'}"
    )
    lines = [
        harness.machine_line(),
        f"server: gunicorn -c gunicorn.conf.py (1 gevent worker), APP_ENV=prod, default argon2 "
        f"cost; {args.users} users, {args.iterations} iterations per identity, think time "
        f"~{args.think:g}s; load average before: {args.load_before}",
        "",
        harness.table(
            ["operation", "count", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows
        ),
        "",
        f"worker RSS (MiB) over time: {rss_line}",
        f"baseline: the first sample at or after {args.warmup:g}s "
        f"({baseline_at:.0f}s); growth = end vs baseline",
    ]
    if stats.samples:
        lines += ["", "first errors:", *(f"  {s}" for s in stats.samples)]
    lines += ["", summary]
    data = {
        "settings": vars(args),
        "operations": {
            name: {
                "count": len(stats.latencies.get(name, [])),
                "errors": stats.errors.get(name, 0),
                "p50_ms": harness.percentile(stats.latencies.get(name, []), 50),
                "p90_ms": harness.percentile(stats.latencies.get(name, []), 90),
                "p99_ms": harness.percentile(stats.latencies.get(name, []), 99),
            }
            for name in names
        },
        "rss_bytes": rss,
        "rss_growth_percent": growth,
        "errors": total_errors,
        "error_samples": stats.samples,
        "passed": ok,
        "summary": summary,
    }
    return "\n".join(lines), data, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the load lasts")
    parser.add_argument("--users", type=int, default=20, help="concurrent virtual users")
    parser.add_argument("--iterations", type=int, default=20, help="iterations per identity")
    parser.add_argument("--think", type=float, default=0.2, help="seconds between iterations")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before the baseline")
    parser.add_argument(
        "--max-rss-growth", type=float, default=20.0, help="percent over the baseline RSS"
    )
    parser.add_argument("--keep-logs", action="store_true")
    # Smoke: 3 users for 15 s (the RSS bound is not judged: no warm-up to speak of).
    smoke = {"minutes": 0.25, "users": 3, "iterations": 3, "warmup": 5.0}
    args = harness.parse_args(parser, argv, smoke)
    if args.minutes * 60 <= args.warmup:
        parser.error("--minutes must be longer than --warmup")
    args.load_before = harness.load_average()

    with harness.log_dir(args.keep_logs) as logs, Stack() as stack:
        env = stack.app_env()
        with Gunicorn("app:app", env, logs, "soak") as server:
            server.start("/health/ready")
            stats, rss = asyncio.run(soak(server, args))
            status, _ = harness.request("GET", server.url + "/health/ready")
            if status != 200:
                stats.error("health", f"/health/ready answered {status} after the soak")

    text, data, ok = report(stats, rss, args)
    print(text, flush=True)
    path = harness.save("soak", text, data, args.smoke)
    say(f"results in {path} (and .json)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
