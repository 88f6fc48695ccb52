"""Each store goes away during traffic and comes back; the same app process serves on.

An app served by the threaded Werkzeug server gets traffic from a few client threads (one user
each) cycling through notes.create and notes.list (``POST /actions/...``), ``GET
/userauth/me``, ``POST /public/login``, ``POST /actions/system.ping`` and ``GET
/public/probe/sql`` (tests/support/load.py). Meanwhile the test stops one real session server
and starts it again. Then:

- nothing hangs or crashes: every request gets an HTTP answer within the client timeout
  (10 s), and the app answers without a restart afterwards;
- only documented answers: 200/201, or 503 ``DEPENDENCY_UNAVAILABLE`` as a problem document
  for requests that need the missing store (JWT routes too while Redis is down: revocation
  checks fail closed by default); never a 500; requests that do not need the store keep
  getting 200, and before the outage everything was 200;
- readiness names the store while it is down, and is 200 again afterwards;
- no acknowledged write is lost: every note whose create answered 200 (before, during and
  after the outage) is listed afterwards by notes.list; a logout (a revocation in Redis)
  still holds after Redis restarted; every action answered 200 has its audit row in
  PostgreSQL once it is back;
- recovery without a restart: within ``RECOVERY_TIMEOUT`` of the store being back, every
  kind of request answers 200 again, and keeps doing so.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress

import pytest
import requests
from flask import Flask

from core.devstack import DevServer, VaultServer
from core.testing import AppFactory, manager_of, serving
from modules.auth.testing import PASSWORD
from tests.support.load import MIX, LoadUser, Outcome, Traffic, register_user

SETTINGS = {
    # The traffic is a handful of users sending back to back: the defaults would limit it.
    "RATE_LIMIT_IP": "100000/second",
    "RATE_LIMIT_USER": "100000/second",
    "MONGODB_SERVER_SELECTION_TIMEOUT_MS": "500",
    "MONGODB_CONNECT_TIMEOUT_MS": "500",
    "POSTGRES_CONNECT_TIMEOUT": "1",
}
THREADS = 4
#: While the store is down, every kind of request is answered at least this often.
OUTAGE_ROUNDS = 3
#: How long the app may take to answer everything with 200 again once the store is back.
RECOVERY_TIMEOUT = 20.0
OK = frozenset({200, 201})


def succeeded(outcome: Outcome) -> bool:
    return outcome.status in OK


def documented(outcome: Outcome) -> bool:
    """200/201, or 503 DEPENDENCY_UNAVAILABLE as a problem document."""
    return succeeded(outcome) or (
        outcome.status == 503
        and outcome.code == "DEPENDENCY_UNAVAILABLE"
        and outcome.content_type == "application/problem+json"
    )


def each_kind(outcomes: list[Outcome], test: Callable[[list[Outcome]], bool]) -> bool:
    return all(test([o for o in outcomes if o.kind == kind]) for kind in MIX)


@contextmanager
def stopped_for_sure(server: DevServer) -> Iterator[None]:
    """``tests.support.servers.stopped``, re-sending the stop signal until the server exits.

    SecantusDB 0.7.0b3's daemon waits in ``Event.wait()`` without a timeout on its main
    thread (secantus/cli.py, ``server.wait()``); when the kernel delivers SIGTERM to one of
    its other threads, the handler never runs. The devstack then SIGKILLs it after 13 s, and
    writes it acknowledged meanwhile on connections still open are lost with it. Another
    SIGTERM lets it shut down cleanly. The pidfd keeps the signal from reaching another
    process that reuses the pid.
    """
    assert server.pid is not None
    pidfd = os.pidfd_open(server.pid)
    stopper = threading.Thread(target=server.stop, name="stop-server")
    try:
        stopper.start()
        while stopper.is_alive():
            stopper.join(0.25)
            if stopper.is_alive():
                with suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, type(server).stop_signal)
    finally:
        os.close(pidfd)
    try:
        yield
    finally:
        server.start()


class Timeline:
    """When the store went down and came back, and when the app had recovered."""

    down = up = recovered = 0.0


@contextmanager
def outage_under_traffic(
    url: str,
    users: list[LoadUser],
    server: DevServer,
    timeline: Timeline,
    after_restart: Callable[[], object] = lambda: None,
    while_down: Callable[[], object] = lambda: None,
) -> Iterator[Traffic]:
    """Traffic flows, ``server`` stops until every kind of request was answered while it was
    down and ``while_down()`` returned, then starts again; the block runs once the app has
    recovered, with the traffic still flowing."""
    with Traffic(url, users) as traffic:
        traffic.wait_until(
            lambda seen: (
                each_kind(seen, lambda mine: sum(map(succeeded, mine)) >= 2)
                and all(
                    any(
                        o.user == user.email and o.kind == "notes.create" and succeeded(o)
                        for o in seen
                    )
                    for user in users
                )
            ),
            15,
            "traffic to flow (every user created a note)",
        )
        timeline.down = time.monotonic()
        with stopped_for_sure(server):
            stopped_at = time.monotonic()
            traffic.wait_until(
                lambda seen: each_kind(
                    seen, lambda mine: sum(o.started >= stopped_at for o in mine) >= OUTAGE_ROUNDS
                ),
                30,
                "every kind of request to be answered while the store is down",
            )
            while_down()
        after_restart()
        timeline.up = time.monotonic()
        traffic.wait_until(
            lambda seen: each_kind(seen, lambda mine: _recovered(mine, timeline.up)),
            RECOVERY_TIMEOUT,
            "every kind of request to answer 200 again",
        )
        timeline.recovered = time.monotonic()
        traffic.wait_until(
            lambda seen: each_kind(
                seen, lambda mine: sum(o.started >= timeline.recovered for o in mine) >= 2
            ),
            15,
            "more traffic after the recovery",
        )
        yield traffic


def _recovered(outcomes: list[Outcome], up: float) -> bool:
    after = [o for o in outcomes if o.started >= up]
    return len(after) >= 2 and all(map(succeeded, after[-2:]))


def check_traffic(outcomes: list[Outcome], timeline: Timeline, needs_store: set[str]) -> None:
    """The answers before, during and after the outage; ``needs_store``: the kinds of
    request that cannot be served without the store."""
    assert outcomes
    hung = [o for o in outcomes if o.status is None]
    assert not hung, f"requests without an answer: {hung[:5]}"
    undocumented = [o for o in outcomes if not documented(o)]
    assert not undocumented, f"undocumented answers: {undocumented[:5]}"
    before = [o for o in outcomes if o.ended < timeline.down]
    assert before
    assert all(map(succeeded, before)), [o for o in before if not succeeded(o)][:5]
    unaffected = [o for o in outcomes if o.kind not in needs_store]
    assert all(map(succeeded, unaffected)), [o for o in unaffected if not succeeded(o)][:5]
    during = [o for o in outcomes if o.started >= timeline.down and o.ended <= timeline.up]
    for kind in needs_store:  # the outage really was in the way of these
        assert any(o.status == 503 for o in during if o.kind == kind), kind
    after = [o for o in outcomes if o.started >= timeline.recovered]
    assert after
    assert all(map(succeeded, after)), [o for o in after if not succeeded(o)][:5]


def check_notes_kept(url: str, users: list[LoadUser], outcomes: list[Outcome], down: float) -> None:
    """Every note whose create answered 200 is listed; so are those created before."""
    for user in users:
        listed = requests.post(
            f"{url}/actions/notes.list",
            json={"limit": 100},
            headers={"Authorization": f"Bearer {user.access_token}"},
            timeout=10,
        )
        assert listed.status_code == 200, listed.text
        titles = {note["title"] for note in listed.json()["result"]["items"]}
        acknowledged = [
            o
            for o in outcomes
            if o.kind == "notes.create" and o.status == 200 and o.user == user.email
        ]
        before = {o.note for o in acknowledged if o.ended < down}
        assert before, "no note was created before the outage"
        assert before <= titles, f"notes created before the outage are gone: {before - titles}"
        lost = [o for o in acknowledged if o.note not in titles]
        assert not lost, "acknowledged notes are gone: " + ", ".join(
            f"{o.note} (sent {o.started - down:+.3f}s after the stop, answered after"
            f" {o.ended - o.started:.3f}s, request {o.request_id})"
            for o in lost
        )


def wait_ready(url: str, store: str, ready: bool, timeout: float = RECOVERY_TIMEOUT) -> None:
    """Poll /health/ready until it is 200 with ``store`` ok, or 503 naming ``store``."""
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(f"{url}/health/ready", timeout=10)
        check = response.json()["checks"].get(store, {})
        if ready and response.status_code == 200 and check.get("status") == "ok":
            return
        if not ready and response.status_code == 503 and check.get("status") != "ok":
            assert check.get("status") in ("error", "timeout"), check
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"readiness {response.status_code} {response.text}")
        time.sleep(0.05)


def served_users(app: Flask, url: str) -> list[LoadUser]:
    assert app.test_client().get("/health/ready").status_code == 200
    return [register_user(url) for _ in range(THREADS)]


@pytest.fixture
def served(make_app: AppFactory) -> Iterator[Callable[..., tuple[Flask, str]]]:
    """``served(overrides) -> (app, url)``: an app on the threaded Werkzeug server."""
    with ExitStack() as stack:

        def start(overrides: dict[str, str] | None = None) -> tuple[Flask, str]:
            app = make_app({**SETTINGS, **(overrides or {})})
            return app, stack.enter_context(serving(app))

        yield start


Served = Callable[..., tuple[Flask, str]]


def test_redis_outage_during_traffic(served: Served, redis_server: DevServer) -> None:
    app, url = served()
    users = served_users(app, url)
    revoked = register_user(url)
    assert (
        requests.post(
            f"{url}/userauth/logout",
            headers={"Authorization": f"Bearer {revoked.access_token}"},
            timeout=10,
        ).status_code
        == 204
    )
    timeline = Timeline()

    with outage_under_traffic(
        url, users, redis_server, timeline, while_down=lambda: wait_ready(url, "redis", False)
    ) as traffic:
        wait_ready(url, "redis", True)
    outcomes = traffic.snapshot()

    # JWT routes (revocation check, fail closed) and login (its failure counter) need Redis;
    # public routes without either keep working (limits fail open).
    check_traffic(outcomes, timeline, {"notes.create", "notes.list", "me", "login"})
    check_notes_kept(url, users, outcomes, timeline.down)
    still_revoked = requests.get(
        f"{url}/userauth/me",
        headers={"Authorization": f"Bearer {revoked.access_token}"},
        timeout=10,
    )
    assert still_revoked.status_code == 401
    assert still_revoked.json()["code"] == "TOKEN_REVOKED"


def test_mongodb_outage_during_traffic(served: Served, mongodb_server: DevServer) -> None:
    app, url = served()
    users = served_users(app, url)
    timeline = Timeline()

    with outage_under_traffic(
        url, users, mongodb_server, timeline, while_down=lambda: wait_ready(url, "mongodb", False)
    ) as traffic:
        wait_ready(url, "mongodb", True)
    outcomes = traffic.snapshot()

    check_traffic(outcomes, timeline, {"notes.create", "notes.list", "me", "login"})
    check_notes_kept(url, users, outcomes, timeline.down)


def test_postgres_outage_during_traffic(served: Served, postgres_server: DevServer) -> None:
    app, url = served()
    users = served_users(app, url)
    timeline = Timeline()

    with outage_under_traffic(
        url,
        users,
        postgres_server,
        timeline,
        while_down=lambda: wait_ready(url, "postgres", False),
    ) as traffic:
        wait_ready(url, "postgres", True)
    outcomes = traffic.snapshot()

    # Only the SQL route needs PostgreSQL at once; actions queue their audit rows.
    check_traffic(outcomes, timeline, {"sql"})
    check_notes_kept(url, users, outcomes, timeline.down)
    app_manager = manager_of(app)
    assert app_manager.actions.audit.flush(RECOVERY_TIMEOUT)
    rows = app_manager.database.postgres.execute(
        "SELECT request_id FROM audit_log WHERE kind = 'action' AND outcome = 'ok'"
    )
    audited = {row["request_id"] for row in rows}
    answered = {o.request_id for o in outcomes if o.kind.startswith("notes.") and o.status == 200}
    during = {
        o.request_id
        for o in outcomes
        if o.kind.startswith("notes.")
        and o.status == 200
        and timeline.down <= o.started
        and o.ended <= timeline.up
    }
    assert during, "no action ran while PostgreSQL was down"
    assert answered <= audited, f"{len(answered - audited)} audit rows lost"
    assert app_manager.actions.audit.stats()["failed"] == 0


def test_vault_outage_during_traffic(served: Served, vault_server: VaultServer) -> None:
    uid = uuid.uuid4().hex[:10]
    secrets = {"JWT_SECRET": f"jwt-secret-from-vault-{uid}-0123456789abcdef"}

    def seed() -> tuple[str, str]:
        # The dev server keeps everything in memory: seed again after every start.
        return vault_server.seed(secrets, path=f"res-{uid}", role_name=f"res-{uid}")

    role_id, secret_id = seed()
    app, url = served(
        {
            "VAULT_ADDR": vault_server.addr,
            "VAULT_AUTH_METHOD": "approle",
            "VAULT_ROLE_ID": role_id,
            "VAULT_SECRET_ID": secret_id,
            "VAULT_SECRET_PATH": f"res-{uid}",
            "VAULT_TIMEOUT": "2",
        }
    )
    vault = manager_of(app).vault
    assert manager_of(app).settings.jwt_secret == secrets["JWT_SECRET"]
    users = served_users(app, url)
    timeline = Timeline()

    def while_down() -> None:
        wait_ready(url, "vault", False)
        assert vault.read_secret() == secrets  # the KV cache answers

    with outage_under_traffic(
        url, users, vault_server, timeline, after_restart=seed, while_down=while_down
    ) as traffic:
        wait_ready(url, "vault", True)
    outcomes = traffic.snapshot()

    check_traffic(outcomes, timeline, set())  # nothing on the request path needs Vault
    check_notes_kept(url, users, outcomes, timeline.down)
    login = requests.post(
        f"{url}/public/login", json={"email": users[0].email, "password": PASSWORD}, timeout=10
    )
    assert login.status_code == 200
