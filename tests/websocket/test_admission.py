"""Socket events pass the one admission function (``core.managers.admission``) like requests:
one Redis round trip with the session token's revocation marks, the bans of the socket's
address and user and the socket level's limit; maintenance; a revoked token refused before
the sweep drops the socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.app_manager import get_app_manager
from core.devstack import RedisServer
from core.devstack.redis import client_commands
from core.managers.state import maintenance
from core.testing import bearer
from tests.support.servers import wait_until
from tests.websocket.conftest import Person

Serve = Callable[..., tuple[Any, str]]
MakePerson = Callable[[Any, str], Person]

#: No token sweep or presence heartbeat inside a measured window.
QUIET = {"SOCKETIO_SWEEP_INTERVAL": "60", "SOCKETIO_PRESENCE_TTL": "120"}
ECHO = ("typed_probe.echo", {"text": "hi"})


def test_a_socket_event_costs_one_round_trip_for_revocation_bans_and_limits(
    serve: Serve, person: MakePerson, redis_server: RedisServer
) -> None:
    app, url = serve(QUIET)
    ada = person(app, url)
    assert ada.call(*ECHO)["ok"] is True  # warm connections

    def one_event() -> None:
        assert ada.call(*ECHO) == {"ok": True, "text": "hi", "tags": []}

    scripts = [c for c in client_commands(redis_server.url, one_event) if "rl:" in c]
    assert len(scripts) == 1, scripts
    (script,) = scripts
    assert script.startswith("EVALSHA")
    assert ":jwt:revoked:jti:" in script  # the session token's revocation marks
    assert ":jwt:revoked:fam:" in script
    assert ":rl:ban:ip:127.0.0.1" in script  # the socket's address...
    assert ":rl:ban:user:" in script  # ...and its user are refused when banned
    assert ":rl:tat:socket:" in script  # the socket level's limit


def test_a_socket_event_is_refused_as_soon_as_its_token_is_revoked(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve(QUIET)
    ada = person(app, url)
    logout = app.test_client().post("/userauth/logout", headers=bearer(ada.tokens["access_token"]))
    assert logout.status_code == 204
    # The sweep (every 60 s here) has not dropped the socket: admission refuses the event.
    answer = ada.call(*ECHO)
    assert answer["error"]["code"] == "TOKEN_REVOKED", answer
    assert ada.socket.sio.connected


def test_a_socket_event_is_refused_when_its_address_is_banned(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve({**QUIET, "RATE_LIMIT_IP": "3/minute", "RATE_LIMIT_BAN_AFTER": "1"})
    ada = person(app, url)
    assert ada.call(*ECHO)["ok"] is True
    http = app.test_client()
    wait_until(
        lambda: http.get("/openapi.json").get_json(force=True).get("code") == "BANNED",
        what="the address banned over HTTP",
    )
    answer = ada.call(*ECHO)
    assert answer["error"]["code"] == "BANNED", answer


def test_socket_events_pass_the_maintenance_gate_like_requests(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve(QUIET)
    ada = person(app, url)
    with app.app_context():
        maintenance.set_mode(get_app_manager().state, True, "Back at noon.")
    wait_until(
        lambda: ada.call(*ECHO).get("error", {}).get("code") == "MAINTENANCE",
        what="events refused in maintenance",
    )
    answer = ada.call(*ECHO)
    assert answer["error"] == {"code": "MAINTENANCE", "message": "Back at noon."}
