"""The auth module's settings. Their names predate module settings and are a public contract
(``LOGIN_*``, ``ARGON2_*``, ``RATE_LIMIT_REGISTER/LOGIN/REFRESH``), so each keeps its own
``env=`` name instead of the module's ``AUTH_`` prefix (docs/modules.md, "Settings")."""

from __future__ import annotations

from config.modules import ModuleSettings, setting


class AuthSettings(ModuleSettings):
    #: Password checks per account per LOGIN_LOCKOUT_SECONDS window, reserved before checking.
    login_max_failures: int = setting(5, env="LOGIN_MAX_FAILURES", ge=1)
    login_lockout_seconds: int = setting(900, env="LOGIN_LOCKOUT_SECONDS", ge=1)
    #: How long an account stays locked once LOGIN_MAX_FAILURES is reached (kept short:
    #: anyone who knows an email can lock that account).
    login_lock_seconds: int = setting(300, env="LOGIN_LOCK_SECONDS", ge=1)
    #: Failed logins per client IP per LOGIN_IP_WINDOW_SECONDS, across all accounts.
    login_ip_max_failures: int = setting(30, env="LOGIN_IP_MAX_FAILURES", ge=1)
    login_ip_window_seconds: int = setting(900, env="LOGIN_IP_WINDOW_SECONDS", ge=1)
    #: How long the device token of a successful login is trusted (docs/auth.md, "Device
    #: tokens"); a login presenting it has its own failure budget.
    login_device_ttl: int = setting(30 * 24 * 3600, env="LOGIN_DEVICE_TTL", ge=60)
    argon2_time_cost: int = setting(2, env="ARGON2_TIME_COST", ge=1)
    #: KiB; OWASP's argon2id minimum.
    argon2_memory_cost: int = setting(19456, env="ARGON2_MEMORY_COST", ge=1024)
    argon2_parallelism: int = setting(1, env="ARGON2_PARALLELISM", ge=1)
    #: Per-IP limits of the anonymous routes that hash or verify passwords and refresh tokens;
    #: they replace RATE_LIMIT_IP on those routes.
    rate_limit_register: str = setting("5/minute;50/hour", env="RATE_LIMIT_REGISTER")
    rate_limit_login: str = setting("20/minute;300/hour", env="RATE_LIMIT_LOGIN")
    rate_limit_refresh: str = setting("60/minute;1000/hour", env="RATE_LIMIT_REFRESH")
