"""PostgresStore against a real server: pooling, transactions, timeouts, outages and healing."""

from __future__ import annotations

import subprocess
import sys
import threading

import psycopg2
import psycopg2.errors
import pytest

from core.app_manager import AppManager
from core.devstack import PostgresServer
from core.errors import DependencyUnavailable, FrameworkError
from core.managers.database.postgres import PostgresStore, is_unavailable
from core.testing import AppFactory, manager_of, problem
from tests.support.servers import stopped


def store(make_app: AppFactory, overrides: dict[str, str] | None = None) -> PostgresStore:
    manager: AppManager = manager_of(make_app(overrides))
    return manager.database.postgres


def backend_pid(pg: PostgresStore) -> int:
    pid: int = pg.execute("SELECT pg_backend_pid() AS pid")[0]["pid"]
    return pid


def test_the_pool_reuses_one_connection_for_calls_in_sequence(make_app: AppFactory) -> None:
    pg = store(make_app)
    assert len({backend_pid(pg) for _ in range(5)}) == 1


def test_connections_held_at_once_are_distinct_and_both_reused(make_app: AppFactory) -> None:
    pg = store(make_app)
    with pg.connection() as first, pg.connection() as second:
        held = {first.get_backend_pid(), second.get_backend_pid()}
    assert len(held) == 2
    assert {backend_pid(pg) for _ in range(4)} <= held


def test_a_transaction_commits_when_the_block_ends(make_app: AppFactory) -> None:
    pg = store(make_app)
    pg.execute("CREATE TABLE IF NOT EXISTS committed (v int)")
    with pg.transaction() as cursor:
        cursor.execute("INSERT INTO committed VALUES (1)")
    # Read on a second connection: only a commit makes the row visible there.
    with pg.connection() as holder, pg.transaction() as cursor:
        assert holder is not None
        cursor.execute("SELECT count(*) AS n FROM committed")
        assert cursor.fetchone()["n"] == 1


def test_an_error_inside_a_transaction_leaves_no_row(make_app: AppFactory) -> None:
    pg = store(make_app)
    pg.execute("CREATE TABLE IF NOT EXISTS rolled_back (v int)")

    def insert_then_fail() -> None:
        with pg.transaction() as cursor:
            cursor.execute("INSERT INTO rolled_back VALUES (1)")
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        insert_then_fail()
    assert pg.execute("SELECT count(*) AS n FROM rolled_back") == [{"n": 0}]


def test_a_failed_statement_rolls_back_and_the_connection_stays_usable(
    make_app: AppFactory,
) -> None:
    pg = store(make_app)
    pg.execute("CREATE TABLE IF NOT EXISTS uniq (v int PRIMARY KEY)")
    pid = backend_pid(pg)

    def insert_twice() -> None:
        with pg.transaction() as cursor:
            cursor.execute("INSERT INTO uniq VALUES (1)")
            cursor.execute("INSERT INTO uniq VALUES (1)")

    with pytest.raises(psycopg2.errors.UniqueViolation):
        insert_twice()
    assert pg.execute("SELECT count(*) AS n FROM uniq") == [{"n": 0}]
    assert backend_pid(pg) == pid


def test_a_connection_left_in_a_transaction_is_rolled_back_before_reuse(
    make_app: AppFactory,
) -> None:
    pg = store(make_app)
    pg.execute("CREATE TABLE IF NOT EXISTS abandoned (v int)")
    with pg.connection() as conn, conn.cursor() as cursor:
        cursor.execute("INSERT INTO abandoned VALUES (1)")  # never committed
    assert pg.execute("SELECT count(*) AS n FROM abandoned") == [{"n": 0}]


def test_statement_timeout_cancels_a_slow_query_as_an_error_not_an_outage(
    make_app: AppFactory, probe_modules: str
) -> None:
    app = make_app(
        {"POSTGRES_STATEMENT_TIMEOUT_MS": "100", "MODULES_PACKAGES": f"modules,{probe_modules}"}
    )
    manager: AppManager = manager_of(app)
    pg = manager.database.postgres
    pid = backend_pid(pg)

    with pytest.raises(psycopg2.errors.QueryCanceled) as caught:
        pg.execute("SELECT pg_sleep(5)")
    assert not is_unavailable(caught.value)
    assert manager.dependency_of(caught.value) is None
    assert backend_pid(pg) == pid  # the server is fine: the connection was kept

    client = app.test_client()
    problem(client.get("/public/dbprobe/postgres?sleep=5"), 500, "INTERNAL_ERROR")
    assert client.get("/public/dbprobe/postgres").get_json() == {"one": 1}


def test_a_checkout_waits_for_a_connection_to_be_released(make_app: AppFactory) -> None:
    pg = store(make_app, {"POSTGRES_POOL_MAX": "1", "POSTGRES_CONNECT_TIMEOUT": "5"})
    taken, release = threading.Event(), threading.Event()
    pids: list[int] = []

    def hold() -> None:
        with pg.connection() as conn:
            pids.append(conn.get_backend_pid())
            taken.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(5)
    threading.Timer(0.2, release.set).start()
    try:
        pids.append(backend_pid(pg))  # blocks until the holder lets go
    finally:
        release.set()
        holder.join(5)
    assert pids[0] == pids[1]


def test_an_exhausted_pool_raises_dependency_unavailable(make_app: AppFactory) -> None:
    pg = store(make_app, {"POSTGRES_POOL_MAX": "1", "POSTGRES_CONNECT_TIMEOUT": "1"})
    with pg.connection(), pytest.raises(DependencyUnavailable) as caught:
        backend_pid(pg)
    assert caught.value.dependency == "postgres"
    assert caught.value.extra == {"reason": "pool exhausted"}
    backend_pid(pg)  # the slot came back


def test_a_pooled_connection_killed_by_the_server_is_replaced_silently(
    make_app: AppFactory, postgres_dsn: str
) -> None:
    pg = store(make_app)
    pid = backend_pid(pg)
    admin = psycopg2.connect(postgres_dsn, connect_timeout=3)
    try:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
            assert cursor.fetchone() == (True,)
    finally:
        admin.close()
    assert backend_pid(pg) != pid


def test_postgres_down_means_503_and_the_same_app_heals_when_it_is_back(
    make_app: AppFactory, postgres_server: PostgresServer, probe_modules: str
) -> None:
    overrides = {"MODULES_PACKAGES": f"modules,{probe_modules}", "POSTGRES_CONNECT_TIMEOUT": "1"}
    app = make_app(overrides)
    pg: PostgresStore = manager_of(app).database.postgres
    client = app.test_client()
    assert client.get("/public/dbprobe/postgres").status_code == 200
    pid = backend_pid(pg)

    with stopped(postgres_server):
        with pytest.raises(DependencyUnavailable) as caught:
            backend_pid(pg)
        assert isinstance(caught.value.__cause__, psycopg2.OperationalError)
        problem(client.get("/public/dbprobe/postgres"), 503, "DEPENDENCY_UNAVAILABLE")
        ready = client.get("/health/ready").get_json()
        assert ready["checks"]["postgres"]["status"] == "error"
        assert ready["checks"]["mongodb"]["status"] == "ok"
        with pytest.raises(FrameworkError, match="postgres"):
            make_app(overrides)

    assert client.get("/public/dbprobe/postgres").get_json() == {"one": 1}
    assert backend_pid(pg) != pid
    assert client.get("/health/ready").status_code == 200


def test_close_is_idempotent_and_later_use_is_refused(make_app: AppFactory) -> None:
    pg = store(make_app)
    backend_pid(pg)
    pg.close()
    pg.close()
    with pytest.raises(DependencyUnavailable):
        backend_pid(pg)


def test_gevent_support_is_off_without_monkey_patching() -> None:
    from core.managers.database.postgres import enable_gevent_support

    assert enable_gevent_support() is False
    assert psycopg2.extensions.get_wait_callback() is None


def test_a_server_that_never_answers_is_unavailable_after_the_connect_timeout(
    make_app: AppFactory, silent_port: int
) -> None:
    overrides = {
        "POSTGRES_DSN": f"postgresql://app:app@127.0.0.1:{silent_port}/app",
        "POSTGRES_CONNECT_TIMEOUT": "1",
    }
    pg = manager_of(make_app(overrides, start=False)).database.postgres
    with pytest.raises(DependencyUnavailable) as caught:
        backend_pid(pg)
    assert "timeout expired" in str(caught.value.__cause__)


_GEVENT_SCRIPT = """
from gevent import monkey; monkey.patch_all()
import socket, sys
import gevent, psycopg2.extensions
from config.settings import Settings
from core.errors import DependencyUnavailable
from core.managers.database.postgres import PostgresStore

assert psycopg2.extensions.get_wait_callback() is None
store = PostgresStore(Settings(postgres_dsn=sys.argv[1]))
assert psycopg2.extensions.get_wait_callback() is not None

# While one greenlet waits on PostgreSQL, the others run.
events = []
def query():
    events.append("query start")
    store.execute("SELECT pg_sleep(0.5)")
    events.append("query end")
def other():
    gevent.sleep(0.05)
    events.append("other greenlet ran")
gevent.joinall([gevent.spawn(query), gevent.spawn(other)], raise_error=True)
assert events == ["query start", "other greenlet ran", "query end"], events

pid = store.execute("SELECT pg_backend_pid() AS pid")[0]["pid"]
assert store.execute("SELECT pg_backend_pid() AS pid")[0]["pid"] == pid

# libpq ignores connect_timeout for green connections; the store bounds it itself.
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
silent = f"postgresql://app:app@127.0.0.1:{listener.getsockname()[1]}/app"
mute = PostgresStore(Settings(postgres_dsn=silent, postgres_connect_timeout=1))
try:
    mute.execute("SELECT 1")
except DependencyUnavailable:
    print("ok")
"""


def test_under_gevent_queries_yield_to_other_greenlets_and_connects_are_bounded(
    postgres_dsn: str,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _GEVENT_SCRIPT, postgres_dsn],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
