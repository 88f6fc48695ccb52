"""Fixtures for the data-layer tests: fresh PostgreSQL databases, outages, a probe module."""

from __future__ import annotations

import socket
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.devstack import PostgresServer
from tests.support.packages import make_modules_package

# Routes that need a store, to see what a client gets while it is down.
_PROBE_SOURCE = textwrap.dedent(
    """
    from flask import Blueprint, jsonify, request

    from core.app_manager import get_app_manager
    from core.module import BaseModule

    bp = Blueprint("dbprobe", __name__)

    @bp.get("/public/dbprobe/postgres")
    def postgres():
        seconds = float(request.args.get("sleep", "0"))
        rows = get_app_manager().database.postgres.execute(
            "SELECT pg_sleep(%s), 1 AS one", (seconds,)
        )
        return jsonify(one=rows[0]["one"])

    @bp.get("/public/dbprobe/mongodb")
    def mongodb():
        get_app_manager().database.mongo.collection("probe").find_one({})
        return jsonify(ok=True)

    class Module(BaseModule):
        blueprint = bp
    """
)


@pytest.fixture
def fresh_dsn(postgres_server: PostgresServer) -> str:
    """A new, empty PostgreSQL database for this test only."""
    return postgres_server.create_database(f"f_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def probe_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``MODULES_PACKAGES`` value adding GET /public/dbprobe/{postgres,mongodb}."""
    return make_modules_package(tmp_path, monkeypatch, {"dbprobe": _PROBE_SOURCE})


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener completes TCP handshakes (in the kernel) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def eventually(check: Callable[[], bool], attempts: int = 50, pause: float = 0.1) -> bool:
    """Poll ``check`` a bounded number of times; True as soon as it holds."""

    for _ in range(attempts):
        if check():
            return True
        time.sleep(pause)
    return False
