"""The pytest plugin: real servers, apps, clients and sockets for module tests.

Activate it with ``pytest_plugins = ["core.testing.plugin"]`` in the top ``conftest.py`` (this
repository's ``tests/conftest.py`` does). Every fixture talks to real servers started by the
dev stack's classes: one MongoDB, PostgreSQL, Redis and Vault per test session, on free ports
in temp dirs. Isolation is cheap: every test gets its own MongoDB database and Redis key
prefix, every test module its own PostgreSQL database.

Each enabled module may ship a plugin of its own, ``modules/<name>/testing.py``: this plugin
loads it at start-up, after itself and in the modules' dependency order, for the modules
``MODULES_PACKAGES`` and ``MODULES_DISABLED`` (of the environment pytest runs in) enable. The
module that owns users gives ``user``, ``admin`` and ``socket_client`` (modules/auth); the
one that owns API keys gives ``api_key`` (modules/api_keys). A module plugin may extend
``app_env`` by requesting it.

=====================  ======================================================================
fixture                what it is
=====================  ======================================================================
``mongodb_server``...  the session's servers (``.uri`` / ``.url`` / ``.addr``, ``.seed()``)
``app_env``            the settings of an app against them (override it to add your own)
``make_app``           ``make_app(overrides, start=True)`` builds apps, closed afterwards
``app``, ``client``    one started app and its Flask test client
``app_manager``        the AppManager of ``app`` (``manager_of(app)`` for any other app)
``live_server``        ``app`` served by a real threaded server: its base URL
``socket_clients``     ``socket_clients()`` makes (unconnected) Socket.IO clients, closed after
``log_output``         what the framework's log handler writes during the test (redacted)
=====================  ======================================================================
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config.generated import new_secret
from config.loader import SettingsLoader
from core.app_manager import AppManager, get_app_manager
from core.devstack import MongoServer, PostgresServer, RedisServer, VaultServer, free_port
from core.devstack._base import DevServer
from core.factory import create_app
from core.managers.modules import discover
from core.testing.sockets import Client, serving

#: Random per test session (shared with every app and server the fixtures start), never a
#: value printed in the repository: nothing a test signs with is accepted by another app.
TEST_JWT_SECRET = new_secret()
TEST_ENCRYPTION_KEY = new_secret()

#: ``make_app(overrides=None, *, start=True) -> Flask``
AppFactory = Callable[..., Flask]


S = TypeVar("S", bound=DevServer)


def manager_of(app: Flask) -> AppManager:
    """The AppManager of ``app``: ``get_app_manager()`` in the app's context. Tests reach the
    managers this way (or with the ``app_manager`` fixture), never through ``app.extensions``."""
    with app.app_context():
        return get_app_manager()


#: The settings that decide which modules load: from the environment pytest runs in, for the
#: module plugins and for every app.
MODULE_SETTINGS = ("MODULES_PACKAGES", "MODULES_DISABLED")


def module_plugins(environ: dict[str, str] | None = None) -> list[str]:
    """The ``testing`` plugins of the enabled modules, in dependency order."""
    settings = SettingsLoader(environ).bootstrap().settings
    return [
        f"{found.package}.testing"
        for found in discover(settings.modules_packages, settings.modules_disabled)
        if importlib.util.find_spec(f"{found.package}.testing") is not None
    ]


#: Loaded by pytest right after this plugin is registered (before the conftest files below
#: the top one, which may import them), so they are registered after it and their asserts
#: are rewritten.
pytest_plugins = module_plugins()


def _running(server: S) -> Iterator[S]:
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def mongodb_server(stack_root: Path) -> Iterator[MongoServer]:
    yield from _running(MongoServer(stack_root / "mongodb", free_port()))


@pytest.fixture(scope="session")
def postgres_server(stack_root: Path) -> Iterator[PostgresServer]:
    yield from _running(PostgresServer(stack_root / "postgres", free_port()))


@pytest.fixture(scope="session")
def redis_server(stack_root: Path) -> Iterator[RedisServer]:
    yield from _running(RedisServer(stack_root / "redis", free_port()))


@pytest.fixture(scope="session")
def vault_server() -> Iterator[VaultServer]:
    yield from _running(VaultServer(free_port()))


@pytest.fixture(scope="module")
def postgres_dsn(postgres_server: PostgresServer) -> str:
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
        # The apps load the modules whose testing plugins were loaded (pytest_configure).
        **{name: os.environ[name] for name in MODULE_SETTINGS if name in os.environ},
        "APP_ENV": "test",
        "MONGODB_URI": mongodb_server.uri,
        "MONGODB_DB": f"t_{uid}",
        "POSTGRES_DSN": postgres_dsn,
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": f"t{uid}:",
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "SECRETS_DIR": str(tmp_path / "secrets"),
        "LOG_FORMAT": "json",
        "HEALTH_CHECK_TIMEOUT": "2",
        # Tests watch readiness change at once when a store stops; the shared run and its
        # cache are tested in the framework's tests/http/test_health.py.
        "HEALTH_READY_CACHE_SECONDS": "0",
        # The limiter's 100 ms Redis budget is a production latency bound; on a loaded test
        # machine it turned a few connects into 503s. Tests of the timeout set their own.
        "RATE_LIMIT_REDIS_TIMEOUT_MS": "1000",
    }


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
        manager_of(application).close()


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def app_manager(app: Flask) -> AppManager:
    """The AppManager of ``app`` (``manager_of(app)``)."""
    return manager_of(app)


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """``app`` on a real threaded server (Socket.IO in threading mode): its base URL."""
    with serving(app) as url:
        yield url


@pytest.fixture
def socket_clients() -> Iterator[Callable[[], Client]]:
    """``socket_clients()`` -> a new unconnected client; all are closed after the test."""
    clients: list[Client] = []

    def factory() -> Client:
        made = Client()
        clients.append(made)
        return made

    yield factory
    for made in clients:
        made.close()


@pytest.fixture
def log_output(app: Flask) -> Iterator[io.StringIO]:
    """What the framework's log handler writes (formatted, redacted) during the test
    (:func:`captured_log`, once ``app`` is built)."""
    with captured_log() as buffer:
        yield buffer


@contextmanager
def captured_log() -> Iterator[io.StringIO]:
    """What the framework's log handler writes (formatted, redacted) meanwhile; call it once
    an app is built (the app sets the handler up).

    The handler keeps the stream it was built with, so ``capsys`` would miss apps built by
    fixtures; this swaps the handler's stream instead.
    """
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "python-base-04")
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)
