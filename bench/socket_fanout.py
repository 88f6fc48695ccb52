"""Socket.IO fan-out: one message to a room of N clients, one instance and two over Redis.

    .venv/bin/python -m bench.socket_fanout [--sizes 10,100,500] [--messages 30] [--smoke]

Servers: the framework under gunicorn with ``gunicorn.conf.py`` (one gevent worker each),
``APP_ENV=prod``, against real MongoDB, PostgreSQL and Redis (``core.devstack``). "two" runs
two such instances sharing Redis (the Socket.IO message queue): the sender is on instance A
and the room's clients alternate between A and B.

Clients, all in this process on one asyncio loop, over aiohttp websockets: the sender is
python-socketio's ``AsyncClient``; the receivers by default a minimal client of the same
protocol (:class:`RawClient`), because AsyncClient's per-event cost makes 500 of them the
bottleneck on 2 cores (``--client socketio`` uses AsyncClient for the receivers too). A few
users, each with many sockets, so presence events stay O(users).
Per room size and topology:

- latency: ``--messages`` messages, one at a time; each body carries the send time
  (``time.time()``, same machine), every receiver records ``now - sent``; p50/p99/max over all
  deliveries;
- throughput: a burst of ``--deliveries`` / N messages (at least ``--min-burst``, 200, at
  most 2000) with up to ``--window`` unacknowledged sends; messages/s and deliveries/s until
  the last delivery.

``--smoke`` runs a room of 5 for a few messages (CI: ``make bench-smoke``): it checks that
the benchmark runs, its figures are not meant to be read.

CPU use of the server worker(s) and of this client process is reported next to the figures,
so a client-bound run can be told from a server-bound one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench import harness
from bench.harness import Gunicorn, Stack, say

USERS = 10  # receiver users; sockets are spread over them
CLIENTS = {"raw": "RawClient", "socketio": "python-socketio AsyncClient"}


@dataclass
class Fanout:
    """What the receivers saw, per message sequence number."""

    expected: int = 0
    latencies: list[float] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)
    done: dict[int, asyncio.Event] = field(default_factory=dict)
    delivered: int = 0
    all_done: asyncio.Event = field(default_factory=asyncio.Event)
    target: int = 0

    def expect(self, seq: int) -> asyncio.Event:
        self.counts[seq] = 0
        event = self.done[seq] = asyncio.Event()
        return event

    def received(self, now: float, data: Any) -> None:
        try:
            seq_text, sent_text = str(data["body"]).split(":", 1)
            seq, sent = int(seq_text), float(sent_text)
        except (KeyError, TypeError, ValueError):
            return
        self.latencies.append(now - sent)
        self.delivered += 1
        if seq in self.counts:
            self.counts[seq] += 1
            if self.counts[seq] >= self.expected:
                self.done[seq].set()
        if self.target and self.delivered >= self.target:
            self.all_done.set()


async def connect(url: str, token: str, on_message: Any = None) -> Any:
    """A python-socketio AsyncClient (aiohttp, websocket transport)."""
    import socketio

    client = socketio.AsyncClient(reconnection=False)
    if on_message is not None:
        client.on("message", lambda data: on_message(time.time(), data))
    await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=20)
    return client


class RawClient:
    """The Socket.IO v5 / Engine.IO v4 websocket protocol, only what a receiver needs.

    python-socketio's AsyncClient costs about 40 us of CPU per received event (a task per
    packet, two decoders); 500 of them on one loop saturate a core before the server does.
    This client speaks the same protocol to the same server (open, ``40`` connect with the
    auth payload, ping/pong, events with acks) and timestamps a ``message`` as its frame
    arrives, before any decoding.
    """

    def __init__(self, session: Any, on_message: Any) -> None:
        self.session = session
        self.on_message = on_message
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[Any]] = {}

    async def connect(self, url: str, token: str) -> RawClient:
        ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws = await self.session.ws_connect(ws_url, autoping=True, heartbeat=None)
        opened = await self.ws.receive_str(timeout=20)
        if not opened.startswith("0"):
            raise RuntimeError(f"unexpected Engine.IO open packet {opened[:80]!r}")
        await self.ws.send_str("40" + json.dumps({"token": token}))
        while True:
            answer = await self.ws.receive_str(timeout=20)
            if answer.startswith("40"):
                break
            if answer.startswith("44"):
                raise RuntimeError(f"connection refused: {answer[2:]}")
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        import aiohttp

        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            data: str = frame.data
            if data.startswith('42["message",'):
                self.on_message(time.time(), json.loads(data[2:])[1])
            elif data == "2":
                await self.ws.send_str("3")
            elif data.startswith("43"):
                end = 2
                while data[end].isdigit():
                    end += 1
                future = self.pending.pop(int(data[2:end]), None)
                if future is not None and not future.done():
                    future.set_result(json.loads(data[end:])[0])

    async def call(self, event: str, data: Any, timeout: float) -> Any:
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_str(f"42{self.next_id}" + json.dumps([event, data]))
        return await asyncio.wait_for(future, timeout)

    async def disconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send_str("41")
        await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


async def gather_limited(coros: list[Any], limit: int = 50) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(coro: Any) -> Any:
        async with gate:
            return await coro

    return list(await asyncio.gather(*(run(c) for c in coros)))


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class Row:
    topology: str
    size: int
    messages: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    lost: int
    burst_messages: int
    msgs_per_s: float
    deliveries_per_s: float
    burst_p99_ms: float
    server_cpu: float
    client_cpu: float
    connect_s: float


async def one_run(
    topology: str,
    size: int,
    servers: list[Gunicorn],
    sender_token: str,
    receiver_tokens: list[str],
    args: argparse.Namespace,
) -> Row:
    import aiohttp

    fanout = Fanout(expected=size)
    # No connection limit: every websocket holds its connection for the whole run.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def receiver(index: int) -> Any:
        url = servers[index % len(servers)].url
        token = receiver_tokens[index % len(receiver_tokens)]
        if args.client == "socketio":
            return await connect(url, token, fanout.received)
        return await RawClient(session, fanout.received).connect(url, token)

    began = time.monotonic()
    sender = await connect(servers[0].url, sender_token)  # always the real client library
    receivers = await gather_limited([receiver(i) for i in range(size)])
    connect_s = time.monotonic() - began
    try:
        created = await sender.call("create_room", {"name": f"fanout-{size}"}, timeout=10)
        room_id = created["room"]["id"]
        joined = await gather_limited(
            [r.call("join_room", {"room_id": room_id}, timeout=30) for r in receivers]
        )
        if not all(answer.get("ok") for answer in joined):
            raise RuntimeError(f"join_room failed: {[a for a in joined if not a.get('ok')][:3]}")
        await asyncio.sleep(0.5)  # user_joined notifications settle

        # Latency: one message at a time.
        lost = 0
        for seq in range(args.messages):
            done = fanout.expect(seq)
            body = f"{seq}:{time.time()!r}"
            ack = await sender.call("send_message", {"room_id": room_id, "body": body}, timeout=10)
            if not ack.get("ok"):
                raise RuntimeError(f"send_message failed: {ack}")
            try:
                await asyncio.wait_for(done.wait(), args.timeout)
            except TimeoutError:
                lost += size - fanout.counts[seq]
            await asyncio.sleep(0.01)
        latencies = [s * 1000 for s in fanout.latencies]

        # Throughput: a burst with a bounded window of unacknowledged sends.
        burst = max(args.min_burst, min(2000, args.deliveries // size))
        fanout.latencies = []
        fanout.delivered = 0
        fanout.target = burst * size
        window = asyncio.Semaphore(args.window)
        cpu_before = [harness.cpu_seconds(s.worker) for s in servers]
        client_before = own_cpu()
        started = time.monotonic()

        async def send(seq: int) -> None:
            async with window:
                body = f"{1_000_000 + seq}:{time.time()!r}"
                await sender.call("send_message", {"room_id": room_id, "body": body}, timeout=30)

        senders = asyncio.gather(*(send(seq) for seq in range(burst)))
        try:
            await asyncio.wait_for(fanout.all_done.wait(), args.burst_timeout)
        except TimeoutError:
            lost += fanout.target - fanout.delivered
        elapsed = time.monotonic() - started
        await senders
        server_cpu = sum(
            harness.cpu_seconds(s.worker) - before
            for s, before in zip(servers, cpu_before, strict=True)
        )
        client_cpu = own_cpu() - client_before
        burst_latencies = [s * 1000 for s in fanout.latencies]
    finally:
        await gather_limited([c.disconnect() for c in [*receivers, sender]])
        await session.close()
    await asyncio.sleep(1.0)  # presence cleanup on the servers
    return Row(
        topology=topology,
        size=size,
        messages=args.messages,
        p50_ms=harness.percentile(latencies, 50),
        p99_ms=harness.percentile(latencies, 99),
        max_ms=max(latencies) if latencies else float("nan"),
        lost=lost,
        burst_messages=burst,
        msgs_per_s=burst / elapsed,
        deliveries_per_s=fanout.delivered / elapsed,
        burst_p99_ms=harness.percentile(burst_latencies, 99),
        server_cpu=server_cpu / elapsed,
        client_cpu=client_cpu / elapsed,
        connect_s=connect_s,
    )


def report(rows: list[Row], args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    headers = [
        "instances", "room size", "p50 ms", "p99 ms", "max ms", "burst msgs", "msgs/s",
        "deliveries/s", "burst p99 ms", "server CPU", "client CPU", "lost",
    ]  # fmt: skip
    body = [
        [
            r.topology,
            r.size,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.burst_messages,
            r.msgs_per_s,
            r.deliveries_per_s,
            r.burst_p99_ms,
            f"{r.server_cpu:.2f}",
            f"{r.client_cpu:.2f}",
            r.lost,
        ]
        for r in rows
    ]
    largest = max(rows, key=lambda r: (r.size, r.topology == "two"))
    summary = "socket_fanout: " + "; ".join(
        f"{r.topology} instance{'s' if r.topology == 'two' else ''} N={r.size}: "
        f"p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, {r.deliveries_per_s:,.0f} deliveries/s"
        for r in rows
        if r.size == largest.size
    )
    lost = sum(r.lost for r in rows)
    summary += f"; lost {lost}"
    text = "\n".join(
        [
            harness.machine_line(),
            f"servers: gunicorn -c gunicorn.conf.py (1 gevent worker each), Redis message queue; "
            f"receivers: {CLIENTS[args.client]} (aiohttp websockets, one process); "
            f"{args.messages} messages one at a time for latency, then a burst of "
            f"{args.deliveries} / N messages ({args.min_burst}-2000, window {args.window}) for "
            f"throughput; "
            f"CPU in cores (1.00 = one core busy) during the burst; "
            f"load average before: {args.load_before}",
            "",
            harness.table(headers, body),
            "",
            summary,
        ]
    )
    data = {"settings": vars(args), "rows": [vars(r) for r in rows], "summary": summary}
    return text, data


async def run(args: argparse.Namespace, servers: list[Gunicorn]) -> list[Row]:
    base = servers[0].url
    sender = harness.register_and_login(base, "sender")["access_token"]
    receivers = [harness.register_and_login(base, f"r{i}")["access_token"] for i in range(USERS)]
    rows = []
    for topology in args.topologies:
        chosen = servers[:1] if topology == "one" else servers
        for size in args.sizes:
            say(f"{topology} instance(s), room of {size}")
            rows.append(await one_run(topology, size, chosen, sender, receivers, args))
            r = rows[-1]
            say(
                f"  p50 {r.p50_ms:.1f} ms p99 {r.p99_ms:.1f} ms, "
                f"{r.deliveries_per_s:,.0f} deliveries/s, lost {r.lost}"
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,500", help="room sizes")
    parser.add_argument("--topologies", default="one,two", help="one, two or both")
    parser.add_argument("--messages", type=int, default=30, help="messages for latency")
    parser.add_argument("--deliveries", type=int, default=100_000, help="deliveries per burst")
    parser.add_argument("--min-burst", type=int, default=200, help="fewest messages in a burst")
    parser.add_argument("--window", type=int, default=8, help="unacknowledged sends in a burst")
    parser.add_argument("--timeout", type=float, default=10.0, help="per message, seconds")
    parser.add_argument("--burst-timeout", type=float, default=90.0, help="per burst, seconds")
    parser.add_argument(
        "--client",
        choices=("raw", "socketio"),
        default="raw",
        help="receivers: a minimal protocol client (default) or python-socketio's AsyncClient",
    )
    parser.add_argument("--keep-logs", action="store_true")
    smoke = {"sizes": "5", "messages": 3, "deliveries": 50, "min_burst": 10, "timeout": 5.0}
    args = harness.parse_args(parser, argv, smoke)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.topologies = [t.strip() for t in args.topologies.split(",") if t.strip()]
    if not set(args.topologies) <= {"one", "two"}:
        parser.error("--topologies takes one, two or one,two")
    args.load_before = harness.load_average()

    with harness.log_dir(args.keep_logs) as logs, Stack() as stack:
        env = stack.app_env()
        count = 2 if "two" in args.topologies else 1
        servers = [Gunicorn("app:app", env, logs, f"instance-{i}") for i in range(count)]
        try:
            for server in servers:
                server.start("/health/ready")
            rows = asyncio.run(run(args, servers))
        finally:
            for server in servers:
                server.stop()

    text, data = report(rows, args)
    print(text, flush=True)
    path = harness.save("socket_fanout", text, data, args.smoke)
    say(f"results in {path} (and .json)")
    return 1 if any(r.lost for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
