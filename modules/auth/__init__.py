"""Users and tokens: register, login, refresh, logout, me (docs/auth.md, "Users").

Owns the ``users`` MongoDB collection and the login-attempt counters in Redis; issues tokens
through the JWTManager. Emits ``user.registered``, ``user.logged_in`` and ``user.logged_out``.
"""

from modules.auth.module import AuthModule

__all__ = ["AuthModule"]
