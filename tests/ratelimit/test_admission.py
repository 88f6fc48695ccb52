"""One admission function for every door (``core.managers.admission``): an Engine.IO open is
admitted at the ``ip`` level (limits and bans) and passes maintenance, which the Socket.IO
CONNECT explains. The socket events' admission: tests/websocket/test_admission.py."""

from __future__ import annotations

import pytest
from flask import Flask

from core.app_manager import get_app_manager
from core.edge.endpoint import Endpoint
from core.edge.principal import PUBLIC
from core.errors import Maintenance, TooManyRequests
from core.managers.admission import Admission, Caller
from core.managers.state import maintenance
from core.testing import AppFactory, problem

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
