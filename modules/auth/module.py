"""The auth module: wires the users store, the password hasher and the login guard into the
``auth`` service at start-up."""

from __future__ import annotations

from core.module import BaseModule, ModuleHost
from modules.auth.cli import users_cli
from modules.auth.lockout import LoginGuard, LoginLimits
from modules.auth.passwords import PasswordHasher
from modules.auth.routes import bp
from modules.auth.service import AuthService
from modules.auth.sessions import SessionStore
from modules.auth.settings import AuthSettings
from modules.auth.users import UserStore


class AuthModule(BaseModule):
    blueprint = bp
    settings_model = AuthSettings
    commands = (users_cli,)

    def __init__(self, name: str, app_manager: ModuleHost) -> None:
        super().__init__(name, app_manager)
        settings = app_manager.settings_of(AuthSettings)
        runs = app_manager.metrics.counter(
            "auth_argon2_runs_total",
            "Password hashes and verifications run with argon2 (~30 ms of CPU each)",
            ("operation",),
        )
        hasher = PasswordHasher(settings, lambda operation: runs.labels(operation=operation).inc())
        users = UserStore(app_manager.database.mongo, hasher)
        limits = LoginLimits(
            max_failures=settings.login_max_failures,
            window_seconds=settings.login_lockout_seconds,
            lock_seconds=settings.login_lock_seconds,
            ip_max_failures=settings.login_ip_max_failures,
            ip_window_seconds=settings.login_ip_window_seconds,
            device_ttl=settings.login_device_ttl,
        )
        app_manager.services.register(
            "auth",
            AuthService(
                users,
                app_manager.jwt,
                LoginGuard(app_manager.redis, limits),
                app_manager.hooks,
                SessionStore(app_manager.database.mongo, app_manager.settings.jwt_refresh_ttl),
            ),
        )
