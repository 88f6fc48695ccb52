"""Every Redis client of the app waits for a busy pool (bounded), and the wait is fair."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, Full
from typing import Any

import pytest
import redis

from core.devstack import RedisServer
from core.managers.redis import RedisManager
from core.managers.redis.direct import DirectConnections
from core.managers.redis.pool import HandOffQueue
from core.testing import AppFactory, manager_of
from tests.support.servers import wait_until


def one_connection(make_app: AppFactory, wait_ms: int) -> redis.Redis:
    """A client of the app's RedisManager with a pool of one connection (the app's own
    client keeps one for its pub/sub listener)."""
    app = make_app({"REDIS_MAX_CONNECTIONS": "1", "REDIS_POOL_TIMEOUT_MS": str(wait_ms)})
    manager: RedisManager = manager_of(app).redis
    return manager.new_client("test-pool")


def holding(client: redis.Redis, seconds: float) -> Callable[[], Any]:
    """A call that keeps the pool's only connection for ``seconds`` (BLPOP on an empty list)."""
    key = f"test:empty:{uuid.uuid4().hex}"
    return lambda: client.blpop([key], timeout=seconds)


def test_a_busy_pool_makes_the_caller_wait_instead_of_failing(make_app: AppFactory) -> None:
    client = one_connection(make_app, wait_ms=5000)
    key = f"test:waited:{uuid.uuid4().hex}"
    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(holding(client, 0.5))
        time.sleep(0.1)  # the BLPOP has the connection
        waited = pool.submit(client.incr, key)
        assert waited.result(timeout=10) == 1
        assert held.result(timeout=10) is None
    client.close()


def test_a_pool_busy_for_longer_than_the_wait_fails_with_a_connection_error(
    make_app: AppFactory,
) -> None:
    client = one_connection(make_app, wait_ms=100)
    key = f"test:refused:{uuid.uuid4().hex}"
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(holding(client, 0.8))
        time.sleep(0.2)
        started = time.monotonic()
        # A ConnectionError: RedisManager.unavailable_errors, so a 503 at the HTTP layer.
        with pytest.raises(redis.ConnectionError, match="No connection available"):
            client.incr(key)
        assert time.monotonic() - started < 0.7  # gave up after the wait, not after the BLPOP
        held.result(timeout=10)
    assert client.incr(key) == 1  # the pool serves again
    client.close()


def test_the_direct_path_waits_for_the_pool_too(make_app: AppFactory) -> None:
    """The rate limiter's path (``Script(direct=True)``: straight on the pool's queue): with
    every connection in use, a second command waits for one instead of failing with "Too
    many connections"."""
    client = one_connection(make_app, wait_ms=5000)
    direct = DirectConnections(client)
    key = f"test:direct:{uuid.uuid4().hex}"
    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(direct.execute, "BLPOP", f"{key}:empty", "0.5")
        time.sleep(0.1)
        waited = pool.submit(direct.execute, "INCR", key)
        assert waited.result(timeout=10) == 1
        assert held.result(timeout=10) is None
    assert direct.execute("INCR", key) == 2
    client.close()


def test_waiters_are_served_first_come_first_served() -> None:
    queue: HandOffQueue[str] = HandOffQueue(2)
    queue.put_nowait("a")
    assert queue.get(timeout=0) == "a"
    with pytest.raises(Empty):
        queue.get(block=False)
    served: list[tuple[str, str]] = []

    def wait(name: str) -> None:
        served.append((name, queue.get(timeout=5)))

    first = threading.Thread(target=wait, args=("first",))
    first.start()
    wait_until(lambda: queue.waiting == 1, what="the first waiter")
    second = threading.Thread(target=wait, args=("second",))
    second.start()
    wait_until(lambda: queue.waiting == 2, what="the second waiter")

    queue.put_nowait("x")  # to the first waiter, even if a newcomer runs before it wakes
    with pytest.raises(Empty):
        queue.get(block=False)
    queue.put_nowait("y")
    first.join(5)
    second.join(5)
    assert sorted(served) == [("first", "x"), ("second", "y")]

    queue.put_nowait("p")
    queue.put_nowait("q")
    with pytest.raises(Full):
        queue.put_nowait("r")
    assert [queue.get(), queue.get()] == ["q", "p"]  # most recent first


#: Under gevent (a subprocess: the suite itself runs threads), against the test Redis: a
#: caller interrupted while it waits for the pool (its own ``gevent.Timeout``, a kill).
_INTERRUPTED_SCRIPT = """
from gevent import monkey; monkey.patch_all()
import sys, uuid
import gevent, redis
from core.managers.redis.direct import DirectConnections
from core.managers.redis.pool import blocking_pool

url, path = sys.argv[1:]
client = redis.Redis.from_pool(blocking_pool(url, 1, 10.0))
other = redis.Redis.from_url(url)
key = f"test:interrupted:{uuid.uuid4().hex}"

def hold():
    # The pool's only connection, until the list gets an item; once it has the connection
    # the queue is empty.
    held = gevent.spawn(client.blpop, [key + ":go"], 0)
    while client.connection_pool.pool.qsize():
        gevent.sleep(0.01)
    return held

def interrupted(call):
    try:
        with gevent.Timeout(0.2):
            call()
    except gevent.Timeout:
        return
    raise AssertionError("the pool was free")

if path == "plain":
    held = hold()
    interrupted(lambda: client.incr(key))
    other.rpush(key + ":go", "x")
    held.get(timeout=30)
    # The connection the interrupted caller no longer waits for serves the next one.
    print(client.incr(key + ":next"))
else:
    direct = DirectConnections(client)
    assert direct.coalescing
    held = hold()
    # The first call opens a batch and waits for the pool; the second joins the batch.
    opener = gevent.spawn(interrupted, lambda: direct.execute("INCR", key + ":opener"))
    follower = gevent.spawn(direct.execute, "INCR", key + ":follower")
    opener.get(timeout=30)
    other.rpush(key + ":go", "x")
    held.get(timeout=30)
    # The follower's command never left with the batch: it goes in the next one.
    print(follower.get(timeout=30), other.get(key + ":opener"))
"""


def under_gevent(script: str, *args: str) -> str:
    """What ``script`` prints, run in a gevent-patched interpreter (it must exit 0)."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(("path", "printed"), [("plain", "1"), ("direct", "1 None")])
def test_a_caller_interrupted_while_waiting_for_the_pool_takes_nothing_along(
    redis_server: RedisServer, path: str, printed: str
) -> None:
    """``plain``: a redis-py command (every client of the app) timed out while it waited for
    the pool's only connection; that connection serves the next caller when it is given back
    (it went to the gone waiter: ``No connection available`` after the pool's wait).
    ``direct``: the limiter's coalesced path; the batch's opener times out before its write,
    and the caller that joined its batch is still sent and answered (it failed with
    ``Redis batch interrupted``)."""
    assert under_gevent(_INTERRUPTED_SCRIPT, redis_server.url, path) == printed


_UNENCODABLE_SCRIPT = """
from gevent import monkey; monkey.patch_all()
import sys, uuid
import gevent, redis
from core.managers.redis.direct import DirectConnections
from core.managers.redis.pool import blocking_pool

direct = DirectConnections(redis.Redis.from_pool(blocking_pool(sys.argv[1], 4, 10.0)))
mine = gevent.spawn(direct.execute, "INCR", f"test:encodable:{uuid.uuid4().hex}")
theirs = gevent.spawn(direct.execute, "INCR", "\\ud800")  # one batch: no UTF-8 for it
gevent.joinall([mine, theirs])
print(mine.value, type(theirs.exception).__name__)
"""


def test_a_command_that_cannot_be_packed_fails_only_its_caller_in_a_batch(
    redis_server: RedisServer,
) -> None:
    """A lone surrogate cannot be sent (UnicodeEncodeError, not redis-py's DataError): the
    other caller of the batch is still answered (the error failed the whole batch)."""
    assert under_gevent(_UNENCODABLE_SCRIPT, redis_server.url) == "1 UnicodeEncodeError"
