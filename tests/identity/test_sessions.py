"""Sessions a user can see and end (issue 22 item 5), against real served instances: the
list, ending one (tokens and sockets on every instance), ending all others, and another
user's session ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import requests

from core.testing import AppFactory, Client, bearer, serving
from modules.auth.testing import PASSWORD, login, register
from tests.identity.test_security_events import security_rows

FAST = {"SOCKETIO_SWEEP_INTERVAL": "0.2", "TRUSTED_PROXIES": "1"}
Serve = Callable[[], tuple[Any, str]]


@pytest.fixture
def serve(make_app: AppFactory) -> Iterator[Serve]:
    """``serve() -> (app, url)``: another instance on the same stores, on a real server."""
    with ExitStack() as stack:

        def factory() -> tuple[Any, str]:
            app = make_app(FAST)
            return app, stack.enter_context(serving(app))

        yield factory


def log_in(url: str, email: str, ip: str, agent: str) -> dict[str, Any]:
    answer = requests.post(
        f"{url}/public/login",
        json={"email": email, "password": PASSWORD},
        headers={"X-Forwarded-For": ip, "User-Agent": agent},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    pair: dict[str, Any] = answer.json()
    return pair


def call(method: str, url: str, access: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {access}", **kwargs.pop("headers", {})}
    return requests.request(method, url, headers=headers, timeout=30, **kwargs)


def sessions(url: str, access: str, **query: Any) -> dict[str, Any]:
    answer = call("GET", f"{url}/userauth/sessions", access, params=query)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def test_a_user_sees_their_sessions_and_no_one_elses(serve: Serve) -> None:
    app, url = serve()
    owner, stranger = register(app.test_client()), register(app.test_client())
    phone = log_in(url, owner["email"], "198.51.100.7", "phone/1.0")
    laptop = log_in(url, owner["email"], "203.0.113.9", "laptop/2.0")
    log_in(url, stranger["email"], "192.0.2.1", "stranger/1.0")

    page = sessions(url, laptop["access_token"])
    assert page["next_cursor"] is None
    items = page["items"]
    assert [(s["ip"], s["user_agent"], s["current"]) for s in items] == [
        ("203.0.113.9", "laptop/2.0", True),  # newest first
        ("198.51.100.7", "phone/1.0", False),
    ]
    assert set(items[0]) == {"id", "created_at", "last_used_at", "ip", "user_agent", "current"}
    text = str(page)
    assert phone["refresh_token"] not in text
    assert phone["access_token"] not in text

    # A refresh is a use: the phone's session shows where it was used last.
    refreshed = requests.post(
        f"{url}/public/refresh",
        json={"refresh_token": phone["refresh_token"]},
        headers={"X-Forwarded-For": "198.51.100.8", "User-Agent": "phone/1.1"},
        timeout=30,
    )
    assert refreshed.status_code == 200, refreshed.text
    after = sessions(url, refreshed.json()["access_token"])["items"]
    assert [(s["ip"], s["user_agent"], s["current"]) for s in after] == [
        ("203.0.113.9", "laptop/2.0", False),
        ("198.51.100.8", "phone/1.1", True),
    ]

    # Paged: one at a time, with a cursor.
    first = sessions(url, laptop["access_token"], limit=1)
    assert len(first["items"]) == 1
    second = sessions(url, laptop["access_token"], limit=1, cursor=first["next_cursor"])
    assert [s["id"] for s in first["items"] + second["items"]] == [s["id"] for s in after]
    assert second["next_cursor"] is None

    # The stranger cannot end (nor learn of) the owner's sessions: the same 404 as garbage.
    theirs = log_in(url, stranger["email"], "192.0.2.1", "stranger/1.0")
    for session_id in (after[0]["id"], "nonsense", "0" * 24):
        gone = call("DELETE", f"{url}/userauth/sessions/{session_id}", theirs["access_token"])
        assert gone.status_code == 404, gone.text
        assert gone.json()["code"] == "NOT_FOUND"
    assert len(sessions(url, laptop["access_token"])["items"]) == 2
    assert call("GET", f"{url}/userauth/sessions", "garbage").status_code == 401


def test_ending_a_session_revokes_its_tokens_and_sockets_on_every_instance(
    serve: Serve, socket_clients: Callable[[], Client]
) -> None:
    app_a, url_a = serve()
    _app_b, url_b = serve()
    owner = register(app_a.test_client())
    mine = log_in(url_a, owner["email"], "198.51.100.1", "mine")
    lost = log_in(url_b, owner["email"], "203.0.113.66", "stolen laptop")
    socket_b, socket_a = socket_clients(), socket_clients()
    socket_b.connect(url_b, lost["access_token"])
    socket_a.connect(url_a, lost["access_token"])
    kept = socket_clients()
    kept.connect(url_b, mine["access_token"])

    listed = sessions(url_a, mine["access_token"])["items"]
    [target] = [s for s in listed if s["user_agent"] == "stolen laptop"]
    ended = call("DELETE", f"{url_a}/userauth/sessions/{target['id']}", mine["access_token"])
    assert ended.status_code == 204, ended.text

    # Its access token is refused on both instances, its refresh token too.
    for url in (url_a, url_b):
        refused = call("GET", f"{url}/userauth/me", lost["access_token"])
        assert refused.status_code == 401
        assert refused.json()["code"] == "TOKEN_REVOKED"
    refresh = requests.post(
        f"{url_b}/public/refresh", json={"refresh_token": lost["refresh_token"]}, timeout=30
    )
    assert refresh.status_code == 401
    assert refresh.json()["code"] == "TOKEN_REVOKED"
    # Its sockets are told and dropped on every instance; the other session's stays.
    ended_event = {"code": "TOKEN_REVOKED", "message": "The token has been revoked."}
    for socket in (socket_a, socket_b):
        assert socket.disconnected.wait(5)
        assert socket.wait_for("session_ended") == [ended_event]
    assert not kept.disconnected.is_set()
    assert call("GET", f"{url_b}/userauth/me", mine["access_token"]).status_code == 200
    assert [s["user_agent"] for s in sessions(url_b, mine["access_token"])["items"]] == ["mine"]

    # An audit row and a security event, naming the session (never a token).
    [row] = [
        r
        for r in security_rows(app_a)
        if r["action"] == "session.revoked" and r["principal_id"] == owner["id"]
    ]
    assert row["principal_id"] == owner["id"]
    assert row["details"]["session_id"] == target["id"]
    assert row["details"]["current"] == "false"
    assert lost["access_token"] not in str(row)


def test_revoke_others_ends_every_session_but_the_current_one(
    serve: Serve, socket_clients: Callable[[], Client]
) -> None:
    app, url = serve()
    owner = register(app.test_client())
    logins = [log_in(url, owner["email"], f"192.0.2.{i}", f"device-{i}") for i in range(4)]
    current, others = logins[0], logins[1:]
    socket = socket_clients()
    socket.connect(url, others[0]["access_token"])

    answer = call("POST", f"{url}/userauth/sessions/revoke-others", current["access_token"])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ended": 3}
    for pair in others:
        assert call("GET", f"{url}/userauth/me", pair["access_token"]).status_code == 401
    assert socket.disconnected.wait(5)
    [only] = sessions(url, current["access_token"])["items"]
    assert only["current"] is True
    assert call("GET", f"{url}/userauth/me", current["access_token"]).status_code == 200
    rows = security_rows(app)  # the test module's database: this user's rows
    ended = [
        r for r in rows if r["action"] == "session.revoked" and r["principal_id"] == owner["id"]
    ]
    assert len(ended) == 3

    # Ending the current session is a logout.
    gone = call("DELETE", f"{url}/userauth/sessions/{only['id']}", current["access_token"])
    assert gone.status_code == 204
    assert call("GET", f"{url}/userauth/me", current["access_token"]).status_code == 401


def test_flask_users_end_sessions_for_one_user_or_everyone(make_app: AppFactory) -> None:
    app = make_app()
    client = app.test_client()
    ada, bob = register(client), register(client)
    ada_pairs = [login(client, ada["email"]) for _ in range(2)]
    bob_pair = login(client, bob["email"])
    runner = app.test_cli_runner()

    def me(pair: dict[str, Any]) -> int:
        return int(client.get("/userauth/me", headers=bearer(pair["access_token"])).status_code)

    result = runner.invoke(args=["users", "end-sessions", ada["email"].upper()])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ended 2 session(s)"
    assert [me(pair) for pair in ada_pairs] == [401, 401]
    assert me(bob_pair) == 200

    everyone = runner.invoke(args=["users", "end-sessions", "--all"])
    assert everyone.output.strip() == "ended 1 session(s)"
    assert me(bob_pair) == 401
    assert runner.invoke(args=["users", "end-sessions"]).exit_code != 0
