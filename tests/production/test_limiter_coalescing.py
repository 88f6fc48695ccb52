"""The limiter's Redis calls of concurrent requests, coalesced in the gevent worker.

gunicorn with the production config (one gevent worker) serves a JWT route; many requests
leave their clients at the same moment (each thread on its own warm keep-alive connection,
released together), so the worker runs their limiter calls in the same loop turns and sends
them in shared writes (core/managers/redis/direct.py). Each request still sends its own one
``EVALSHA`` and gets its own answer: counts, error replies, ``NOSCRIPT`` and outages are per
request, exactly as when every call went alone.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import redis
import requests

from core.devstack import RedisServer
from core.devstack.redis import client_commands
from core.testing import AppFactory, bearer
from tests.production.helpers import Gunicorn, access_tokens
from tests.support.servers import frozen, stopped, wait_until

ROUTE = "/userauth/probe/private"  # JWT: revocation marks, `ip` and `user` levels
Answer = tuple[int, str, str | None]  # status, the user's token, X-RateLimit-Remaining or code


@pytest.fixture
def served(app_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Gunicorn]]:
    started: list[Gunicorn] = []

    def start(settings: dict[str, str]) -> Gunicorn:
        server = Gunicorn({**app_env, **settings}, tmp_path / f"g{len(started)}.log", ())
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def burst(
    url: str, tokens: list[str], at_once: Callable[[Callable[[], None]], object]
) -> list[Answer]:
    """One GET of ``ROUTE`` per token, all sent at the same moment: each thread warms its own
    keep-alive connection (an exempt route, no Redis), waits at a barrier, then sends.
    ``at_once(fire)`` runs ``fire`` (which releases them and waits for every answer)."""
    barrier = threading.Barrier(len(tokens) + 1)

    def one(token: str) -> Answer:
        with requests.Session() as session:
            assert session.get(url + "/health/live", timeout=30).status_code == 200
            barrier.wait(60)
            response = session.get(url + ROUTE, headers=bearer(token), timeout=60)
        if response.status_code == 200:
            return 200, token, response.headers["X-RateLimit-Remaining"]
        assert response.headers["Content-Type"] == "application/problem+json", response.text
        return response.status_code, token, response.json()["code"]

    with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
        futures = [pool.submit(one, token) for token in tokens]

        def fire() -> None:
            barrier.wait(60)
            for future in futures:
                future.exception(90)

        at_once(fire)
        return [future.result() for future in futures]


def sent_alone(fire: Callable[[], None]) -> None:
    fire()


def reads_and_scripts(client: redis.Redis) -> tuple[int, int]:
    """Redis' count of read events on client sockets, and of EVALSHA calls, so far."""
    with client.pipeline(transaction=False) as pipe:
        pipe.info("stats")
        pipe.info("commandstats")
        stats, commands = pipe.execute()
    scripts = commands.get("cmdstat_evalsha", {}).get("calls", 0)  # absent before the first
    return int(stats["total_reads_processed"]), int(scripts)


def test_concurrent_requests_against_a_limit_of_k_get_exactly_k_answers_each_its_own(
    served: Callable[..., Gunicorn], make_app: AppFactory, redis_server: RedisServer
) -> None:
    k, sent = 40, 160
    server = served({"RATE_LIMIT_IP": "100000/second", "RATE_LIMIT_USER": f"{k}/hour"})
    token, warm = access_tokens(make_app(start=False), 2, "coalesce")
    # Another user's burst first: the worker loads the script and opens its connections.
    assert {status for status, _, _ in burst(server.url, [warm] * k, sent_alone)} == {200}
    client = redis.Redis.from_url(redis_server.url)
    before = reads_and_scripts(client)
    commands: list[str] = []

    def monitored(fire: Callable[[], None]) -> None:
        commands.extend(client_commands(redis_server.url, fire))

    answers = burst(server.url, [token] * sent, monitored)
    reads, scripts = (
        now - then for now, then in zip(reads_and_scripts(client), before, strict=True)
    )

    # Exactly k served, each with its own place in the count (one reply per request, none
    # swapped or shared); the rest refused by the limit (or the ban it earns).
    served_remaining = sorted(int(r) for status, _, r in answers if status == 200)
    assert served_remaining == list(range(k)), Counter(a[0] for a in answers)
    refused = Counter(code for status, _, code in answers if status != 200)
    assert set(refused) <= {"RATE_LIMITED", "BANNED"}, refused
    assert sum(refused.values()) == sent - k
    # Still one EVALSHA per request, each with the user's own keys, and no reload or retry
    # (besides, the worker may read its cached state or open a connection meanwhile).
    scripts_seen = [c for c in commands if c.startswith("EVALSHA")]
    assert len(scripts_seen) == sent, Counter(c.split()[0] for c in commands)
    assert all(":rl:ban:user:coalesce-0" in c for c in scripts_seen)
    assert not [c for c in commands if c.startswith(("SCRIPT", "EVAL "))]
    # ... and the worker sent them coalesced: Redis read them in fewer reads than calls.
    assert scripts >= sent
    assert reads < scripts, (reads, scripts)


def test_an_error_reply_fails_only_its_own_request(
    served: Callable[..., Gunicorn], make_app: AppFactory, app_env: dict[str, str]
) -> None:
    server = served({"RATE_LIMIT_IP": "100000/second", "RATE_LIMIT_USER": "1000/day"})
    tokens = access_tokens(make_app(start=False), 4, "isolated")
    poisoned, *clean = tokens
    assert requests.get(server.url + ROUTE, headers=bearer(poisoned), timeout=10).ok
    # The poisoned user's rate counter holds a list: the script's GET on it is a WRONGTYPE
    # error reply, for that user's calls only.
    client = redis.Redis.from_url(app_env["REDIS_URL"])
    pattern = f"{app_env['REDIS_KEY_PREFIX']}rl:tat:user:isolated-0:*"
    counters = list(client.scan_iter(match=pattern))
    assert counters
    for key in counters:
        client.delete(key)
        client.rpush(key, "not a number")

    answers = burst(server.url, [tokens[n % 4] for n in range(120)], sent_alone)

    assert {(status, code) for status, t, code in answers if t == poisoned} == {
        (500, "INTERNAL_ERROR")
    }
    for token in clean:
        mine = [(status, remaining) for status, t, remaining in answers if t == token]
        assert [status for status, _ in mine] == [200] * 30
        assert sorted(int(r) for _, r in mine) == list(range(970, 1000)), mine


def test_a_burst_after_redis_forgot_the_script_reloads_it_and_counts_right(
    served: Callable[..., Gunicorn], make_app: AppFactory, app_env: dict[str, str]
) -> None:
    server = served({"RATE_LIMIT_IP": "100000/second", "RATE_LIMIT_USER": "10/hour"})
    tokens = access_tokens(make_app(start=False), 5, "flushed")
    redis.Redis.from_url(app_env["REDIS_URL"]).script_flush()

    answers = burst(server.url, [tokens[n % 5] for n in range(100)], sent_alone)

    for token in tokens:  # every call got NOSCRIPT, loaded the script and ran once
        statuses = Counter(status for status, t, _ in answers if t == token)
        assert statuses == {200: 10, 429: 10}, statuses


@pytest.mark.parametrize("outage", [stopped, frozen], ids=["stopped", "frozen"])
def test_redis_gone_during_a_burst_answers_503_and_the_next_burst_is_served(
    served: Callable[..., Gunicorn],
    make_app: AppFactory,
    redis_server: RedisServer,
    outage: Callable[[RedisServer], AbstractContextManager[None]],
) -> None:
    server = served(
        {
            "RATE_LIMIT_IP": "100000/second",
            "RATE_LIMIT_USER": "100000/second",
            "RATE_LIMIT_REDIS_TIMEOUT_MS": "200",  # a frozen Redis is waited on that long
        }
    )
    tokens = access_tokens(make_app(start=False), 10, "outage")
    for token in tokens:  # the pool holds connections to the server about to go away
        assert requests.get(server.url + ROUTE, headers=bearer(token), timeout=10).ok

    with outage(redis_server):
        during = burst(server.url, tokens * 6, sent_alone)
    # Revocation checks fail closed: every request of the burst, whatever batch it was in.
    assert Counter((status, code) for status, _, code in during) == {
        (503, "DEPENDENCY_UNAVAILABLE"): 60
    }

    def served_again() -> bool:
        return requests.get(server.url + ROUTE, headers=bearer(tokens[0]), timeout=10).ok

    wait_until(served_again, 30, "the limiter to reconnect")
    after = burst(server.url, tokens * 6, sent_alone)
    assert Counter(status for status, _, _ in after) == {200: 60}
