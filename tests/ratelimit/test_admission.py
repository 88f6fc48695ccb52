"""One admission function for every door (``core.managers.admission``): an Engine.IO open at the
``ip`` level, a socket event in one Redis round trip with its token's revocation marks and the
bans of its address and user, and the gates an event passes like a request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from flask import Flask

from core.app_manager import get_app_manager
from core.devstack import RedisServer
from core.devstack.redis import client_commands
from core.edge.endpoint import Endpoint
from core.edge.principal import PUBLIC
from core.errors import Maintenance, TooManyRequests
from core.managers.admission import Admission, Caller
from core.managers.state import maintenance
from core.testing import AppFactory, Client, bearer, problem, serving
from modules.auth.testing import user_with_tokens
from tests.support.servers import wait_until

#: Quiet background work: no heartbeat or token sweep inside a measured window.
QUIET = {"SOCKETIO_SWEEP_INTERVAL": "60", "SOCKETIO_PRESENCE_TTL": "120"}


def admission_of(app: Flask) -> Admission:
    with app.app_context():
        return get_app_manager().admission


def test_an_engineio_open_is_admitted_at_the_ip_level_with_its_bans(make_app: AppFactory) -> None:
    app = make_app({"RATE_LIMIT_IP": "2/minute", "RATE_LIMIT_BAN_AFTER": "1"})
    admission = admission_of(app)
    quota = admission.admit_ip("203.0.113.9")
    assert quota is not None
    assert (quota.limit, quota.remaining) == (2, 1)
    assert admission.admit_ip("203.0.113.9") is not None
    with pytest.raises(TooManyRequests) as limited:
        admission.admit_ip("203.0.113.9")
    assert limited.value.code == "RATE_LIMITED"
    with pytest.raises(TooManyRequests) as banned:  # limited twice: banned at the ip level
        admission.admit_ip("203.0.113.9")
    assert banned.value.code == "BANNED"
    # The same ip level as HTTP: the banned address gets nothing over HTTP either...
    response = app.test_client().get("/health/live", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 200  # (health is exempt)
    openapi = app.test_client().get("/openapi.json", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    problem(openapi, 429, "BANNED")
    # ...and another address is untouched; an IPv6 client counts by its /64.
    assert admission.admit_ip("2001:db8::1") is not None
    assert admission.admit_ip("2001:db8::2") is not None
    with pytest.raises(TooManyRequests):
        admission.admit_ip("2001:db8::3")


def test_an_engineio_open_passes_maintenance_for_the_connect_to_explain(
    make_app: AppFactory,
) -> None:
    app = make_app()
    admission = admission_of(app)
    with app.app_context():
        maintenance.set_mode(get_app_manager().state, True, "Back soon.")
    admission.admit_ip("198.51.100.7")  # admitted: the CONNECT that follows says why not
    closed = Endpoint(kind="route", name="closed", auth=PUBLIC)
    with pytest.raises(Maintenance) as refused:
        admission.admit(closed, Caller(ip="198.51.100.7"))
    assert refused.value.detail == "Back soon."


@pytest.fixture
def served(make_app: AppFactory) -> Iterator[Callable[..., tuple[Flask, str]]]:
    with ExitStack() as stack:

        def serve(overrides: dict[str, str] | None = None) -> tuple[Flask, str]:
            app = make_app({**QUIET, **(overrides or {})})
            return app, stack.enter_context(serving(app))

        yield serve


@pytest.fixture
def connect(socket_clients: Callable[[], Client]) -> Callable[[Flask, str], tuple[Client, Any]]:
    def open_socket(app: Flask, url: str) -> tuple[Client, Any]:
        _, tokens = user_with_tokens(app.test_client())
        client = socket_clients()
        client.connect(url, tokens["access_token"])
        return client, tokens

    return open_socket


ECHO = ("typed_probe.echo", {"text": "hi"})


def test_a_socket_event_costs_one_round_trip_for_revocation_bans_and_limits(
    served: Callable[..., tuple[Flask, str]],
    connect: Callable[[Flask, str], tuple[Client, Any]],
    redis_server: RedisServer,
) -> None:
    app, url = served()
    client, _ = connect(app, url)
    assert client.call(*ECHO)["ok"] is True  # warm connections

    def one_event() -> None:
        assert client.call(*ECHO) == {"ok": True, "text": "hi", "tags": []}

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
    served: Callable[..., tuple[Flask, str]],
    connect: Callable[[Flask, str], tuple[Client, Any]],
) -> None:
    app, url = served()
    client, tokens = connect(app, url)
    logout = app.test_client().post("/userauth/logout", headers=bearer(tokens["access_token"]))
    assert logout.status_code == 204
    # The sweep (every 60 s here) has not dropped the socket: admission refuses the event.
    answer = client.call(*ECHO)
    assert answer["error"]["code"] == "TOKEN_REVOKED", answer
    assert client.sio.connected


def test_a_socket_event_is_refused_when_its_address_is_banned(
    served: Callable[..., tuple[Flask, str]],
    connect: Callable[[Flask, str], tuple[Client, Any]],
) -> None:
    app, url = served({"RATE_LIMIT_IP": "3/minute", "RATE_LIMIT_BAN_AFTER": "1"})
    client, _ = connect(app, url)
    assert client.call(*ECHO)["ok"] is True
    http = app.test_client()
    wait_until(
        lambda: http.get("/openapi.json").get_json(force=True).get("code") == "BANNED",
        what="the address banned over HTTP",
    )
    answer = client.call(*ECHO)
    assert answer["error"]["code"] == "BANNED", answer


def test_socket_events_pass_the_maintenance_gate_like_requests(
    served: Callable[..., tuple[Flask, str]],
    connect: Callable[[Flask, str], tuple[Client, Any]],
) -> None:
    app, url = served()
    client, _ = connect(app, url)
    with app.app_context():
        maintenance.set_mode(get_app_manager().state, True, "Back at noon.")
    wait_until(
        lambda: client.call(*ECHO).get("error", {}).get("code") == "MAINTENANCE",
        what="events refused in maintenance",
    )
    answer = client.call(*ECHO)
    assert answer["error"] == {"code": "MAINTENANCE", "message": "Back at noon."}
