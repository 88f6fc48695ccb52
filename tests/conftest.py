"""Fixtures: real MongoDB, PostgreSQL, Redis and Vault servers (one set per session, random
free ports, temp dirs) and independent apps with cheap per-test isolation: every test gets
its own MongoDB database and Redis key prefix; every test module its own PostgreSQL database.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from core.devstack import (
    MongoServer,
    PostgresServer,
    RedisServer,
    VaultServer,
    free_port,
)
from tests.support.identity import admin_tokens, user_with_tokens

# The leak sweep: any process of this run still alive at the end is killed and fails the run.
from tests.support.processes import pytest_configure, pytest_sessionfinish  # noqa: F401

# Tests that need one of these (directly or through another fixture) are marked `servers`;
# `pytest -m "not servers"` is the fast, server-free part (CI runs it on the newest Python).
SERVER_FIXTURES = frozenset({"mongodb_server", "postgres_server", "redis_server", "vault_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


TEST_JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789"
TEST_ENCRYPTION_KEY = "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE="


@pytest.fixture(scope="session")
def stack_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def mongodb_server(stack_root: Path) -> Iterator[MongoServer]:
    server = MongoServer(stack_root / "mongodb", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(stack_root: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(stack_root / "postgres", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(stack_root: Path) -> Iterator[RedisServer]:
    server = RedisServer(stack_root / "redis", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vault_server() -> Iterator[VaultServer]:
    server = VaultServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres_dsn(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database per test module."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def app_env(
    tmp_path: Path,
    mongodb_server: MongoServer,
    postgres_dsn: str,
    redis_server: RedisServer,
) -> dict[str, str]:
    """Settings for an app against the real test servers, isolated for this test."""
    uid = uuid.uuid4().hex[:12]
    return {
        "APP_ENV": "test",
        "MONGODB_URI": mongodb_server.uri,
        "MONGODB_DB": f"t_{uid}",
        "POSTGRES_DSN": postgres_dsn,
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": f"t{uid}:",
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "SECRETS_DIR": str(tmp_path / "secrets"),
        "MODULES_PACKAGES": "modules,tests.support.modules",
        "LOG_FORMAT": "json",
        "HEALTH_CHECK_TIMEOUT": "2",
        # Cheap hashing keeps the suite fast; production parameters are the defaults.
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST": "1024",
        # Every test client is 127.0.0.1: the per-IP limits of register, login and refresh
        # and the per-IP login failures are tested where they are the subject.
        "RATE_LIMIT_REGISTER": "1000/second",
        "RATE_LIMIT_LOGIN": "1000/second",
        "RATE_LIMIT_REFRESH": "1000/second",
        "LOGIN_IP_MAX_FAILURES": "1000",
        # Tests watch readiness change at once when a store stops; the shared run and its
        # cache are tested in tests/http/test_health.py.
        "HEALTH_READY_CACHE_SECONDS": "0",
    }


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(app_env: dict[str, str]) -> Iterator[AppFactory]:
    """Build apps on the test's settings plus overrides; every app is closed afterwards."""
    apps: list[Flask] = []

    def factory(overrides: dict[str, str] | None = None, *, start: bool = True) -> Flask:
        application = create_app({**app_env, **(overrides or {})}, start=start)
        apps.append(application)
        return application

    yield factory
    for application in apps:
        application.extensions["app_manager"].close()


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """An admin's token pair (roles admin and user) on the test's ``app``."""
    pair: dict[str, Any] = admin_tokens(app, client)
    return pair


@pytest.fixture
def user(client: FlaskClient) -> dict[str, Any]:
    """A plain user's token pair (role ``user`` only)."""
    _, pair = user_with_tokens(client)
    return pair


@pytest.fixture
def log_output(app: Flask) -> Iterator[io.StringIO]:
    """What the framework's log handler writes (formatted, redacted) during the test.

    The handler keeps the stream it was built with, so ``capsys`` would miss apps built by
    fixtures; this swaps the handler's stream instead.
    """
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "python-base-04")
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)
