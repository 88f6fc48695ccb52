"""The Engine.IO door on the threaded server (the gunicorn flood is in
tests/production/test_socket_flood.py): polling openings are capped per address and count at
the ``ip`` level, refusals are problem documents, slots come back when engine.io closes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from core.testing import manager_of
from tests.support.servers import wait_until

Serve = Callable[..., tuple[Any, str]]


def polling_opening(url: str, address: str = "192.0.2.1") -> requests.Response:
    return requests.get(
        f"{url}/socket.io/?EIO=4&transport=polling",
        headers={"X-Forwarded-For": address},
        timeout=10,
    )


def test_polling_openings_are_capped_per_address_until_engine_io_closes_them(
    serve: Serve,
) -> None:
    app, url = serve(
        {
            "SOCKETIO_MAX_CONNECTIONS_PER_IP": "3",
            "TRUSTED_PROXIES": "1",
            "SOCKETIO_CONNECT_TIMEOUT": "1",
        }
    )
    door = manager_of(app).websocket.door
    answers = [polling_opening(url) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert all(a.text.startswith("0{") for a in answers[:3])  # Engine.IO OPEN packets
    refused = answers[3]
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "TOO_MANY_CONNECTIONS"
    assert int(refused.headers["Retry-After"]) >= 1
    assert polling_opening(url, "192.0.2.2").status_code == 200  # another address
    assert door.open_connections("192.0.2.1") == 3
    # Never connected: the reaper closes them, and their slots come back.
    wait_until(lambda: door.open_connections("192.0.2.1") == 0, what="slots released", timeout=10)
    assert polling_opening(url).status_code == 200


def test_an_opening_counts_at_the_ip_level(serve: Serve) -> None:
    _, url = serve({"RATE_LIMIT_IP": "2/minute", "TRUSTED_PROXIES": "1"})
    answers = [polling_opening(url, "198.51.100.3") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["code"] == "RATE_LIMITED"
