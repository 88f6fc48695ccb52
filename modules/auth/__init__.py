"""Users and tokens: register, login, refresh, logout, me (docs/auth.md, "Users").

Owns the ``users`` MongoDB collection and the login-failure counters in Redis; issues tokens
through the JWTManager. Emits ``user.registered``, ``user.logged_in`` and ``user.logged_out``.
"""

from __future__ import annotations

from core.app_manager import AppManager
from core.module import BaseModule
from modules.auth.cli import users_cli
from modules.auth.passwords import PasswordHasher
from modules.auth.routes import bp
from modules.auth.service import AuthService
from modules.auth.users import UserStore


class AuthModule(BaseModule):
    blueprint = bp
    commands = (users_cli,)

    def __init__(self, name: str, app_manager: AppManager) -> None:
        super().__init__(name, app_manager)
        settings = app_manager.settings
        users = UserStore(app_manager.database.mongo, PasswordHasher(settings))
        app_manager.services.register(
            "auth",
            AuthService(
                users,
                app_manager.jwt,
                app_manager.redis,
                app_manager.hooks,
                settings.login_max_failures,
                settings.login_lockout_seconds,
            ),
        )
