"""How long a socket lives: refreshed in band (``refresh_session``), told before its token
expires (``session_expiring``), ended by bans on every instance (``session_ended BANNED``),
and moved off a draining instance a few at a time (``server_shutdown {reconnect_after_ms}``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt as pyjwt
import pytest
import requests
import socketio

from core.app_manager import get_app_manager
from core.devstack import RedisServer
from core.managers.websocket import manager as websocket_manager
from core.testing import TEST_JWT_SECRET, Client, bearer, expired_access_token
from modules.auth.testing import login, user_with_tokens
from tests.support.servers import stopped, wait_until
from tests.websocket.conftest import Person

Serve = Callable[..., tuple[Any, str]]
MakePerson = Callable[[Any, str], Person]


def exp_of(token: str) -> int:
    claims = pyjwt.decode(token, options={"verify_signature": False})
    return int(claims["exp"])


def iso(exp: int) -> str:
    return datetime.fromtimestamp(exp, UTC).isoformat().replace("+00:00", "Z")


def refreshed(person: Person, http: Any) -> dict[str, Any]:
    answer = http.post(
        "/public/refresh", json={"refresh_token": person.tokens["refresh_token"]}
    ).get_json()
    person.tokens = answer
    return dict(answer)


def test_refresh_session_keeps_the_socket_past_its_first_token(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve({"JWT_ACCESS_TTL": "3"})
    ada = person(app, url)
    first_exp = exp_of(ada.tokens["access_token"])
    time.sleep(1.1)  # a new token of a later second
    token = refreshed(ada, app.test_client())["access_token"]
    ack = ada.call("refresh_session", {"token": token})
    assert ack == {"ok": True, "expires_at": iso(exp_of(token))}
    assert exp_of(token) > first_exp

    # Past the first token's expiry, the socket is still there and serves events.
    while time.time() < first_exp + 0.5:
        time.sleep(0.1)
    assert ada.call("list_rooms", {})["ok"] is True
    assert not ada.socket.disconnected.is_set()
    # The new token's expiry ends it in the end, and says why.
    [ended] = ada.socket.wait_for("session_ended", timeout=6)
    assert ended["code"] == "TOKEN_EXPIRED"
    assert time.time() >= exp_of(token)


def test_an_expired_token_ends_its_socket_while_redis_is_down(
    serve: Serve,
    person: MakePerson,
    socket_clients: Callable[[], Client],
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Revocations and bans cannot be checked without Redis, expiry can: the sweep still
    ends a socket whose token expired, in its batch or in one after a batch that failed
    (one socket per batch here, the live one first)."""
    monkeypatch.setattr(websocket_manager, "SWEEP_BATCH", 1)
    app, url = serve()
    bob = person(app, url)  # a token of the default lifetime: checked in Redis every sweep
    _, tokens = user_with_tokens(app.test_client())
    claims = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
    claims["exp"] = int(time.time()) + 3
    kid = pyjwt.get_unverified_header(tokens["access_token"])["kid"]
    short = pyjwt.encode(claims, TEST_JWT_SECRET, "HS256", headers={"kid": kid})
    ada = socket_clients()
    ada.connect(url, short)
    with stopped(redis_server):
        [ended] = ada.wait_for("session_ended", timeout=20)
        assert ended["code"] == "TOKEN_EXPIRED"
        assert time.time() >= claims["exp"]
        wait_until(ada.disconnected.is_set, timeout=20)
        assert not bob.socket.disconnected.is_set()


def test_refresh_session_refuses_other_users_and_bad_tokens_and_keeps_the_old_one(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve()
    ada, eve = person(app, url), person(app, url)
    http = app.test_client()
    cases = {
        "FORBIDDEN": eve.tokens["access_token"],
        "TOKEN_INVALID": ada.tokens["access_token"][:-4] + "AAAA",
        "TOKEN_EXPIRED": expired_access_token(ada.tokens["access_token"], TEST_JWT_SECRET),
    }
    # A second login of ada's, then logged out: its token is revoked.
    other_login = login(http, ada.user["email"])
    logout = http.post("/userauth/logout", headers=bearer(other_login["access_token"]))
    assert logout.status_code == 204
    cases["TOKEN_REVOKED"] = other_login["access_token"]
    # A refresh token is not an access token.
    cases["TOKEN_INVALID "] = ada.tokens["refresh_token"]
    for code, token in cases.items():
        ack = ada.call("refresh_session", {"token": token})
        assert ack["ok"] is False, (code, ack)
        assert ack["error"]["code"] == code.strip(), (code, ack)
    assert ada.call("refresh_session", {})["error"]["code"] == "VALIDATION_ERROR"

    # The socket still lives on its own token.
    with app.app_context():
        sessions = get_app_manager().websocket.sessions
        [session] = [s for s in sessions.values() if s.user_id == ada.id]
    assert session.claims["exp"] == exp_of(ada.tokens["access_token"])
    assert ada.call("list_rooms", {})["ok"] is True


def test_after_refresh_session_the_sweep_checks_the_new_token_not_the_old_one(
    serve: Serve, person: MakePerson
) -> None:
    """The sweep keeps each socket's keys between sweeps: a refreshed socket must be checked
    against its new token's revocation marks from then on, not its first token's."""
    app, url = serve()
    ada = person(app, url)
    http = app.test_client()
    time.sleep(1)  # a few sweeps on the first token
    second = login(http, ada.user["email"])  # another login of ada's: a family of its own
    ack = ada.call("refresh_session", {"token": second["access_token"]})
    assert ack["ok"] is True, ack

    first_logout = http.post("/userauth/logout", headers=bearer(ada.tokens["access_token"]))
    assert first_logout.status_code == 204
    time.sleep(1)  # a few sweeps: the first token is revoked, the socket no longer holds it
    assert not ada.socket.disconnected.is_set()
    assert ada.call("list_rooms", {})["ok"] is True

    second_logout = http.post("/userauth/logout", headers=bearer(second["access_token"]))
    assert second_logout.status_code == 204
    revoked = {"code": "TOKEN_REVOKED", "message": "The token has been revoked."}
    assert ada.socket.wait_for("session_ended", timeout=5) == [revoked]
    assert ada.socket.disconnected.wait(5)


def test_session_expiring_comes_once_before_the_token_expires(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve({"JWT_ACCESS_TTL": "6", "SOCKETIO_EXPIRY_NOTICE": "4"})
    ada = person(app, url)
    exp = exp_of(ada.tokens["access_token"])
    [notice] = ada.socket.wait_for("session_expiring", timeout=5)
    told_at = time.time()
    assert notice == {"expires_at": iso(exp)}
    assert told_at < exp  # before, not after
    time.sleep(1)
    assert len([e for e in ada.socket.events if e[0] == "session_expiring"]) == 1
    # Refreshed: the next token gets its own notice.
    token = refreshed(ada, app.test_client())["access_token"]
    assert ada.call("refresh_session", {"token": token})["ok"] is True
    second = ada.socket.wait_for("session_expiring", count=2, timeout=8)[1]
    assert second == {"expires_at": iso(exp_of(token))}


def test_a_ban_of_the_address_ends_its_sockets_on_every_instance(
    serve: Serve, person: MakePerson
) -> None:
    limits = {"RATE_LIMIT_IP": "30/minute", "RATE_LIMIT_BAN_AFTER": "1"}
    app_a, url_a = serve(limits)
    app_b, url_b = serve(limits)
    ada, bob = person(app_a, url_a), person(app_b, url_b)
    http = app_a.test_client()
    # Anonymous requests count against the address (authenticated ones against the user).
    codes = {http.post("/actions/system.ping", json={}).status_code for _ in range(40)}
    assert 429 in codes
    banned = {"code": "BANNED", "message": "This client is temporarily banned."}
    for who in (ada, bob):  # every socket of 127.0.0.1, whichever instance holds it
        assert who.socket.wait_for("session_ended", timeout=5) == [banned]
        assert who.socket.disconnected.wait(5)


def test_a_ban_of_the_user_ends_only_that_users_sockets(serve: Serve, person: MakePerson) -> None:
    limits = {"RATE_LIMIT_USER": "5/minute", "RATE_LIMIT_BAN_AFTER": "1"}
    app_a, url_a = serve(limits)
    app_b, url_b = serve(limits)
    ada, bob = person(app_a, url_a), person(app_b, url_b)
    ada_elsewhere = Client()
    try:
        ada_elsewhere.connect(url_b, ada.tokens["access_token"])
        http = app_b.test_client()
        for _ in range(10):
            http.get("/userauth/me", headers=bearer(ada.tokens["access_token"]))
        banned = {"code": "BANNED", "message": "This client is temporarily banned."}
        assert ada.socket.wait_for("session_ended", timeout=5) == [banned]
        assert ada_elsewhere.wait_for("session_ended", timeout=5) == [banned]
        assert ada.socket.disconnected.wait(5)
        time.sleep(1)  # a few sweeps
        assert bob.call("list_rooms", {})["ok"] is True
        assert not [e for e in bob.socket.events if e[0] == "session_ended"]
    finally:
        ada_elsewhere.close()


def test_a_draining_instance_spreads_its_sockets_reconnects(
    serve: Serve, person: MakePerson, socket_clients: Callable[[], Client]
) -> None:
    app, url = serve({"SOCKETIO_RECONNECT_SPREAD_MS": "1200", "SHUTDOWN_TIMEOUT": "10"})
    people = [person(app, url) for _ in range(4)]
    closed_at: dict[int, float] = {}
    watching = threading.Event()

    def watch() -> None:  # when each socket is closed
        while watching.is_set() and len(closed_at) < len(people):
            for n, who in enumerate(people):
                if who.socket.disconnected.is_set():
                    closed_at.setdefault(n, time.monotonic())
            time.sleep(0.01)

    with app.app_context():
        manager = get_app_manager()
    # The test client's requests stay counted as in flight (their responses are never
    # closed): the drain's own hold is what is measured on top of them.
    baseline = manager.lifecycle.in_flight
    watching.set()
    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    manager.lifecycle.draining.set()
    manager.hooks.emit("app.draining", app_manager=manager)  # what drain() does on SIGTERM
    assert manager.lifecycle.in_flight == baseline + 1  # the drain waits for the sockets
    told = [who.socket.wait_for("server_shutdown")[0] for who in people]
    # Spread evenly over 0..1200 ms, one moment per socket.
    assert sorted(t["reconnect_after_ms"] for t in told) == [0, 400, 800, 1200]
    # A new connection meanwhile is refused before engine.io takes it (a load balancer that
    # retries a 503 sends it to another instance): this one is going away.
    opening = requests.get(f"{url}/socket.io/?EIO=4&transport=polling", timeout=10)
    assert opening.status_code == 503
    assert opening.json()["code"] == "SHUTTING_DOWN"
    late = socket_clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        late.connect(url, people[0].tokens["access_token"])
    wait_until(lambda: manager.lifecycle.in_flight == baseline, 20, "the drain's hold to end")
    # Every socket was closed on the server by the time the drain's hold ended (the clients
    # may hear of it a moment later on a loaded machine: their side is checked for order).
    assert manager.websocket.connected() == 0
    wait_until(lambda: len(closed_at) == 4, 10, "every client to see its socket closed")
    watching.clear()
    watcher.join(5)
    # Each at its moment, in order.
    order = sorted(range(4), key=lambda n: told[n]["reconnect_after_ms"])
    assert sorted(closed_at, key=closed_at.__getitem__) == order
    assert closed_at[order[-1]] - started >= 1.2  # the last one not before its moment
