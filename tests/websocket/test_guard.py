"""Attacks on ``/socket.io`` itself: each is performed against a served app and refused.

A connect passes the IP level, bans, maintenance and the token's revocation in one Redis round
trip; a connection that never sends (or never gets accepted) a Socket.IO CONNECT is closed
after ``SOCKETIO_CONNECT_TIMEOUT``; sockets per user are capped; browsers' origins are checked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import engineio
import pytest
import requests
import socketio

from core.devstack.redis import client_commands
from core.testing import Client, bearer, manager_of
from modules.auth.testing import admin_tokens, user_with_tokens
from tests.support.presence import presence_left
from tests.support.servers import wait_until
from tests.websocket.conftest import Person

Serve = Callable[..., tuple[Any, str]]
MakePerson = Callable[[Any, str], Person]


def refused_code(client: Client, url: str, token: str | None) -> str:
    """The code a connect was refused with: the CONNECT's ``connect_error``, or ``OPENING``
    when the Engine.IO door refused the transport before any Socket.IO packet (an HTTP
    problem the client libraries do not hand on)."""
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(url, token)
    return connect_outcome(client)


def connect_outcome(client: Client) -> str:
    """The code of a refused connect (the client keeps only a message for a transport that
    was refused)."""
    error = client.connect_error
    code: str = error["code"] if isinstance(error, dict) else "OPENING"
    return code


def opening_refusal(url: str) -> str:
    """The problem code a polling opening of Engine.IO answers now (what the door says)."""
    answer = requests.get(f"{url}/socket.io/?EIO=4&transport=polling", timeout=10)
    assert answer.status_code in (429, 503), answer.text
    code: str = answer.json()["code"]
    return code


def test_connect_counts_against_the_ip_level_and_its_bans(
    serve: Serve, socket_clients: Callable[[], Client], person: MakePerson
) -> None:
    app, url = serve(
        {
            "RATE_LIMIT_IP": "5/minute",
            "RATE_LIMIT_BAN_AFTER": "1",
            "RATE_LIMIT_BAN_SECONDS": "60",
        }
    )
    # A socket: its Engine.IO opening and its CONNECT, 2 of the IP's 5 (register and login
    # have limits of their own).
    ada = person(app, url)

    token = ada.tokens["access_token"]
    outcomes = []
    for _ in range(4):
        client = socket_clients()
        try:
            client.connect(url, token)
            outcomes.append("ok")
        except socketio.exceptions.ConnectionError:
            outcomes.append(connect_outcome(client))
    # Requests 3 and 4 connect; the 5th (an opening) passes and its CONNECT is limited, which
    # bans the address: from then on the door refuses the opening itself.
    assert outcomes == ["ok", "RATE_LIMITED", "OPENING", "OPENING"]
    assert opening_refusal(url) == "BANNED"
    # The ban holds for a bad token too: refused before the token is even looked at.
    assert refused_code(socket_clients(), url, "garbage") == "OPENING"


def test_connect_without_a_valid_token_still_counts_against_the_ip(
    serve: Serve, socket_clients: Callable[[], Client]
) -> None:
    _, url = serve({"RATE_LIMIT_IP": "6/minute"})
    # Each try is two requests at the ip level: the Engine.IO opening and the CONNECT.
    codes = [refused_code(socket_clients(), url, "garbage") for _ in range(5)]
    assert codes == ["TOKEN_INVALID"] * 3 + ["OPENING", "OPENING"]
    assert opening_refusal(url) == "RATE_LIMITED"


def test_connect_is_refused_during_maintenance(
    serve: Serve, socket_clients: Callable[[], Client], person: MakePerson
) -> None:
    app, url = serve()
    ada = person(app, url)
    admin_client = app.test_client()
    admin = admin_tokens(app, admin_client)
    switched = admin_client.post(
        "/userauth/admin/maintenance",
        json={"enabled": True, "message": "Upgrading."},
        headers=bearer(admin["access_token"]),
    )
    assert switched.status_code == 200
    client = socket_clients()
    assert refused_code(client, url, ada.tokens["access_token"]) == "MAINTENANCE"
    assert client.connect_error["message"] == "Upgrading."


def test_connect_checks_revocation_limits_and_bans_in_one_round_trip(
    serve: Serve, socket_clients: Callable[[], Client], person: MakePerson
) -> None:
    app, url = serve({"SOCKETIO_SWEEP_INTERVAL": "60"})  # no sweep commands in the count
    ada = person(app, url)
    redis_url = manager_of(app).settings.redis_url

    def connect() -> None:
        socket_clients().connect(url, ada.tokens["access_token"])

    commands = client_commands(redis_url, connect)
    evaluated = [c for c in commands if c.startswith(("EVALSHA", "EVAL "))]
    scripts = [c for c in evaluated if ":rl:" in c]
    # One round trip per request: the Engine.IO opening (the door: the ip level), then the
    # Socket.IO CONNECT (the guard: revocation and both levels).
    assert len(scripts) == 2, commands
    # Then the socket's presence, recorded by one script of its own (no rate-limit key).
    assert evaluated[:2] == scripts, commands
    assert len(evaluated) == 3, commands
    assert f":ws:user:{ada.id}:sids" in evaluated[2], commands
    # Nothing else reads before the guards' scripts: the presence writes come after them.
    assert commands[0].startswith("EVALSHA"), commands
    assert commands[1].startswith("EVALSHA"), commands
    assert not [c for c in commands if c.startswith(("EXISTS", "GET "))], commands
    opening, connect_script = scripts
    assert ":rl:ban:ip:127.0.0.1" in opening
    assert ":jwt:revoked:" not in opening
    # The CONNECT's script got the token's revocation keys and both levels' keys.
    assert ":jwt:revoked:" in connect_script
    assert ":rl:ban:ip:127.0.0.1" in connect_script
    assert f":rl:ban:user:{ada.id}" in connect_script

    app.test_client().post("/userauth/logout", headers=bearer(ada.tokens["access_token"]))
    assert refused_code(socket_clients(), url, ada.tokens["access_token"]) == "TOKEN_REVOKED"


def test_connect_behind_a_trusted_proxy_counts_the_clients_address(
    serve: Serve, socket_clients: Callable[[], Client], person: MakePerson
) -> None:
    """The CONNECT's handler reads the address from the environ the opening came with (no
    Flask request of its own): the client's, after the trusted proxy, as the opening's."""
    app, url = serve({"TRUSTED_PROXIES": "1", "SOCKETIO_SWEEP_INTERVAL": "60"})
    ada = person(app, url)
    redis_url = manager_of(app).settings.redis_url
    client = socket_clients()

    def connect() -> None:
        client.sio.connect(
            url,
            auth={"token": ada.tokens["access_token"]},
            headers={"X-Forwarded-For": "198.51.100.9"},
            transports=["websocket"],
            wait_timeout=5,
        )

    commands = client_commands(redis_url, connect)
    scripts = [c for c in commands if c.startswith("EVALSHA") and ":rl:" in c]
    assert len(scripts) == 2, commands
    for script in scripts:  # the opening's, then the CONNECT's
        assert ":rl:ban:ip:198.51.100.9" in script, script
        assert ":rl:ban:ip:127.0.0.1" not in script, script
    assert f":rl:ban:user:{ada.id}" in scripts[1]
    sessions = manager_of(app).websocket.sessions.values()
    assert [s.ip for s in sessions if s.sid == client.sio.get_sid()] == ["198.51.100.9"]


def test_sockets_per_user_are_capped_over_every_connect(
    serve: Serve, socket_clients: Callable[[], Client], person: MakePerson
) -> None:
    app, url = serve({"SOCKETIO_MAX_SOCKETS_PER_USER": "3"})
    ada = person(app, url)  # socket 1
    token = ada.tokens["access_token"]
    others = [socket_clients() for _ in range(2)]
    for client in others:
        client.connect(url, token)  # sockets 2 and 3

    # Many at once cannot slip past the cap either.
    attempts = [socket_clients() for _ in range(6)]
    results: list[str] = []

    def attempt(client: Client) -> None:
        try:
            client.connect(url, token)
            results.append("ok")
        except socketio.exceptions.ConnectionError:
            results.append(client.connect_error["code"])

    threads = [threading.Thread(target=attempt, args=(c,)) for c in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == ["TOO_MANY_SOCKETS"] * 6

    others[0].sio.disconnect()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the server registers the disconnect
        if manager_of(app).websocket.connected() == 2:
            break
        time.sleep(0.05)
    socket_clients().connect(url, token)  # a slot is free again


class RawEngineIO:
    """An Engine.IO client that answers pings but speaks no Socket.IO unless told to."""

    def __init__(self, url: str) -> None:
        self.eio = engineio.Client()
        self.closed = threading.Event()
        self.messages: list[Any] = []
        self.eio.on("disconnect", lambda *_: self.closed.set())
        self.eio.on("message", self.messages.append)
        self.eio.connect(url, transports=["websocket"], engineio_path="socket.io")

    def close(self) -> None:
        if not self.closed.is_set():
            threading.Thread(target=self.eio.disconnect, daemon=True).start()


def test_connections_that_never_connect_or_authenticate_are_closed(serve: Serve) -> None:
    app, url = serve({"SOCKETIO_CONNECT_TIMEOUT": "1"})
    silent = RawEngineIO(url)  # never sends the Socket.IO CONNECT packet
    refused = RawEngineIO(url)
    refused.eio.send('0{"token":"garbage"}')  # a CONNECT that is refused, then nothing
    try:
        assert silent.eio.sid in manager_of(app).websocket.socketio.server.eio.sockets
        # Pings keep both alive on today's engine.io; the guard closes them (timeout 1 s,
        # checked every sweep interval).
        assert silent.closed.wait(10), "a connection without a connect was left open"
        assert refused.closed.wait(10), "a refused connection was left open"
        assert any("TOKEN_INVALID" in str(m) for m in refused.messages)
    finally:
        silent.close()
        refused.close()


def test_an_accepted_socket_is_not_closed_by_the_handshake_timeout(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve({"SOCKETIO_CONNECT_TIMEOUT": "0.5"})
    ada = person(app, url)
    time.sleep(2)  # several sweeps past the timeout
    assert ada.socket.sio.connected
    assert ada.call("list_rooms", {})["ok"] is True


def polling_handshake(url: str, origin: str | None) -> int:
    headers = {"Origin": origin} if origin else {}
    response = requests.get(f"{url}/socket.io/?EIO=4&transport=polling", headers=headers, timeout=5)
    return response.status_code


def test_cross_site_origins_are_refused(serve: Serve) -> None:
    _, url = serve()  # CORS_ORIGINS empty: same origin only
    assert polling_handshake(url, "https://evil.example") == 400
    assert polling_handshake(url, url) == 200  # the app's own origin
    assert polling_handshake(url, None) == 200  # not a browser: nothing to forge

    _, listed = serve({"CORS_ORIGINS": "https://app.example"})
    assert polling_handshake(listed, "https://app.example") == 200
    assert polling_handshake(listed, "https://evil.example") == 400


def test_a_cross_site_websocket_is_refused(serve: Serve) -> None:
    _, url = serve()
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(
            url,
            headers={"Origin": "https://evil.example"},
            transports=["websocket"],
            wait_timeout=5,
        )


def test_connects_waiting_at_the_gate_are_not_reaped_and_a_client_gone_meanwhile_leaves_nothing(
    serve: Serve,
) -> None:
    """In a storm, connects queue at the websocket gate (decisions 94). One waiting there sent
    its CONNECT: the handshake reaper leaves it. One whose client left while it waited is not
    admitted, and nothing of it stays in Redis."""
    # Pings at their defaults: under the threading server a connect held at the gate also
    # holds up its socket's pings, and the test's fast pings would end it first.
    ping = {"SOCKETIO_PING_INTERVAL": "25", "SOCKETIO_PING_TIMEOUT": "20"}
    app, url = serve({"SOCKETIO_CONNECT_TIMEOUT": "0.5", **ping})
    websocket = manager_of(app).websocket
    http = app.test_client()
    waiting, gone = RawEngineIO(url), RawEngineIO(url)  # openings pass the gate too: first
    (_, waiting_tokens), (gone_user, gone_tokens) = user_with_tokens(http), user_with_tokens(http)
    held = 0
    while websocket.gate.acquire(blocking=False):  # a storm holds every slot
        held += 1
    try:
        waiting.eio.send("0" + json.dumps({"token": waiting_tokens["access_token"]}))
        gone.eio.send("0" + json.dumps({"token": gone_tokens["access_token"]}))
        assert wait_until(lambda: len(websocket.connecting) == 2, what="both connects queued")
        gone.eio.disconnect()
        time.sleep(2)  # several sweeps past the handshake timeout
        assert not waiting.closed.is_set(), "a connect waiting at the gate was reaped"
    finally:
        for _ in range(held):
            websocket.gate.release()
    try:
        assert wait_until(lambda: any(str(m).startswith("0{") for m in waiting.messages))
        assert wait_until(lambda: not websocket.connecting, what="the gone client's connect")
        assert len(websocket.sessions) == 1
        redis = manager_of(app).redis
        left = presence_left(redis.client, redis.prefix)
        assert not [key for key in left if gone_user["id"] in key], left
    finally:
        waiting.close()
