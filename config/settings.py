"""Typed settings: one field per setting, named after its environment variable in lower case.

Field metadata (``json_schema_extra``) drives the loader and ``flask config show``:

- ``secret``: the value is masked everywhere it is shown and redacted from logs;
- ``url_credentials``: a connection URL; only its password is masked and redacted;
- ``prod_required``: in ``prod`` the value must come from a real source (secret file, Vault or
  environment), never from the development default;
- ``bootstrap``: the value is needed to reach Vault, so Vault itself cannot provide it.

Development defaults point at the embedded dev stack (``make run``). No secret has a value
printed here: ``JWT_SECRET`` and ``ENCRYPTION_KEY`` are generated outside prod when no source
sets them (config/generated.py).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

Environment = Literal["dev", "test", "prod"]


#: When a previous JWT key stopped signing: a UTC time such as 2026-12-07T13:00:00Z.
_TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?Z"
_PREVIOUS_SECRET = re.compile(rf"({_TIMESTAMP}):(.+)", re.DOTALL)
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.DOTALL)
_PEM_RETIRED_AT = re.compile(rf"({_TIMESTAMP})\s*$")
RETIRED_FORMAT = (
    "<retired_at>:<secret>, retired_at the UTC time the key stopped signing, "
    "e.g. 2026-12-07T13:00:00Z"
)


class RetiredKey(BaseModel):
    """A previous JWT key and when it stopped signing: tokens it signed are accepted only if
    issued before ``retired_at`` (and within their type's lifetime)."""

    model_config = ConfigDict(frozen=True)
    retired_at: datetime
    #: The HMAC secret, or the PEM public key of an asymmetric algorithm.
    key: str


def _utc(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp).astimezone(UTC)


def parse_previous_secret(entry: str) -> RetiredKey:
    """``<retired_at>:<secret>`` (one entry of ``JWT_PREVIOUS_SECRETS``); never echoes it."""
    match = _PREVIOUS_SECRET.fullmatch(entry)
    if match is None:
        raise ValueError(f"each entry must be {RETIRED_FORMAT}")
    return RetiredKey(retired_at=_utc(match[1]), key=match[2])


def parse_previous_public_keys(text: str) -> list[RetiredKey]:
    """PEM public keys, each after its ``retired_at`` line (``JWT_PREVIOUS_PUBLIC_KEYS``)."""
    keys = []
    position = 0
    for block in _PEM_BLOCK.finditer(text):
        match = _PEM_RETIRED_AT.search(text[position : block.start()])
        if match is None:
            raise ValueError(
                "each PEM block must follow its retired_at on the line before, the UTC time "
                "the key stopped signing, e.g. 2026-12-07T13:00:00Z"
            )
        keys.append(RetiredKey(retired_at=_utc(match[1]), key=block[0]))
        position = block.end()
    if text.strip() and not keys:
        raise ValueError("holds no PEM block")
    return keys


def secret(default: Any = None, *, default_factory: Any = None, **extra: Any) -> Any:
    """A secret field: masked by ``flask config show``, redacted from logs; with a default
    (a development value), ``prod`` refuses to start until a real source provides it."""
    if default_factory is not None:
        return Field(default_factory=default_factory, json_schema_extra={"secret": True, **extra})
    return Field(default, json_schema_extra={"secret": True, **extra})


def required_in_prod(default: Any, **extra: Any) -> Any:
    """A field ``prod`` must get from a secret file, Vault or the environment."""
    return Field(default, json_schema_extra={"prod_required": True, **extra})


def _bootstrap(default: Any, **extra: Any) -> Any:
    return Field(default, json_schema_extra={"bootstrap": True, **extra})


class SettingsModel(BaseModel):
    """What every settings model shares: the framework's :class:`Settings` and each module's
    ``ModuleSettings`` (field flags, masking, the values to redact)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def field_flag(cls, name: str, flag: str) -> bool:
        extra = cls.model_fields[name].json_schema_extra
        return bool(isinstance(extra, dict) and extra.get(flag))

    def secret_values(self) -> list[str]:
        """The values of every secret setting and URL password, for log redaction."""
        values: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if self.field_flag(name, "secret"):
                if isinstance(value, list):
                    values.extend(v.key if isinstance(v, RetiredKey) else v for v in value)
                elif isinstance(value, str) and value:
                    values.append(value)
            elif self.field_flag(name, "url_credentials") and isinstance(value, str):
                values.extend(connection_passwords(value))
        return values

    def display_value(self, name: str) -> str:
        """The value as ``flask config show`` prints it: secrets masked, URL passwords hidden."""
        value = getattr(self, name)
        if value is None or value == []:
            return ""
        if self.field_flag(name, "secret"):
            return "********"
        if self.field_flag(name, "url_credentials") and isinstance(value, str):
            return mask_connection_passwords(value)
        if isinstance(value, list):
            return ",".join(value)
        return str(value)


class Settings(SettingsModel):
    """Every setting the framework reads. Environment names are the field names upper-cased."""

    app_env: Environment = _bootstrap("dev")
    host: str = "127.0.0.1"
    port: int = Field(5000, ge=0, le=65535)

    # Connections. The dev defaults point at the embedded dev stack.
    mongodb_uri: str = required_in_prod(
        "mongodb://127.0.0.1:27018/?directConnection=true", url_credentials=True
    )
    mongodb_db: str = "app"
    mongodb_max_pool_size: int = Field(50, ge=1)
    mongodb_server_selection_timeout_ms: int = Field(2000, ge=100)
    mongodb_connect_timeout_ms: int = Field(2000, ge=100)
    mongodb_socket_timeout_ms: int = Field(5000, ge=100)
    mongodb_retry_writes: bool = True
    mongodb_retry_reads: bool = True
    mongodb_read_only_preference: Literal[
        "primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"
    ] = "secondaryPreferred"
    mongodb_admin_uri: str | None = Field(None, json_schema_extra={"url_credentials": True})
    postgres_dsn: str = required_in_prod(
        "postgresql://app:app@127.0.0.1:5433/app", url_credentials=True
    )
    postgres_pool_min: int = Field(1, ge=0)
    postgres_pool_max: int = Field(10, ge=1)
    postgres_connect_timeout: int = Field(3, ge=1)
    postgres_statement_timeout_ms: int = Field(5000, ge=0)
    postgres_migrate_on_start: bool = True
    redis_url: str = required_in_prod("redis://127.0.0.1:6380/0", url_credentials=True)
    redis_key_prefix: str = "app:"
    redis_max_connections: int = Field(100, ge=1)
    #: How long a caller waits for a connection while all REDIS_MAX_CONNECTIONS are in use
    #: (a reconnect storm), before failing with 503; 0: fail at once.
    redis_pool_timeout_ms: int = Field(5000, ge=0)
    redis_socket_timeout_ms: int = Field(1000, ge=10)

    # Vault: how to reach it comes from secret files, the environment or defaults only.
    vault_addr: str | None = _bootstrap(None)
    vault_auth_method: Literal["token", "approle", "kubernetes"] = _bootstrap("token")
    vault_token: str | None = _bootstrap(None, secret=True)
    vault_role_id: str | None = _bootstrap(None)
    vault_secret_id: str | None = _bootstrap(None, secret=True)
    vault_kubernetes_role: str | None = _bootstrap(None)
    vault_kubernetes_token_path: str = _bootstrap(
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )
    vault_kv_mount: str = _bootstrap("secret")
    vault_secret_path: str = _bootstrap("app")
    vault_timeout: float = _bootstrap(5.0)
    #: PEM file of the CA that signed Vault's TLS certificate (None: the system CAs).
    vault_cacert: str | None = _bootstrap(None)
    vault_kv_cache_ttl: float = _bootstrap(300.0)
    vault_transit_mount: str = _bootstrap("transit")
    vault_transit_key: str | None = _bootstrap(None)
    secrets_dir: str = _bootstrap("./secrets")

    # Auth.
    #: Empty until a source sets it; outside prod generated when none does (config/generated.py).
    jwt_secret: str = secret("", prod_required=True, generated=True)
    jwt_access_ttl: int = Field(900, ge=2)
    jwt_refresh_ttl: int = Field(14 * 24 * 3600, ge=60)
    jwt_issuer: str = "python-base-04"
    jwt_audience: str = "python-base-04"
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA"] = "HS256"
    #: Earlier HMAC secrets still accepted for tokens they signed before they were retired
    #: (comma-separated ``<retired_at>:<secret>``; docs/auth.md, "Rotating keys").
    jwt_previous_secrets: list[RetiredKey] = secret(default_factory=list)
    #: PEM private key that signs tokens with RS256/ES256/EdDSA.
    jwt_private_key: str | None = secret(None)
    #: PEM public keys of earlier private keys, each after its ``retired_at`` line, accepted
    #: like JWT_PREVIOUS_SECRETS.
    jwt_previous_public_keys: str | None = None
    jwt_leeway: int = Field(0, ge=0, le=300)
    #: When Redis cannot be asked whether a token or API key is revoked: refuse (false, 503)
    #: or accept it (true).
    revocation_fail_open: bool = False
    api_key_cache_ttl: int = Field(60, ge=0)
    encryption_key: str = secret("", prod_required=True, generated=True)
    metrics_token: str | None = secret(None)

    # HTTP.
    cors_origins: list[str] = Field(default_factory=list)
    trusted_proxies: int = Field(0, ge=0, le=10)
    max_content_length: int = Field(1024 * 1024, ge=1024)
    #: How long the first answer to an ``Idempotency-Key`` is replayed (seconds).
    idempotency_ttl: float = Field(24 * 3600, gt=0)

    # Rate limits (limit strings such as "20/second;600/minute").
    rate_limit_ip: str = "50/second;1000/minute"
    rate_limit_user: str = "20/second;600/minute"
    rate_limit_api_key: str = "100/second;6000/minute"
    rate_limit_socket: str = "10/second;300/minute"
    rate_limit_ban_after: int = Field(20, ge=1)
    rate_limit_ban_window: int = Field(600, ge=1)
    rate_limit_ban_seconds: int = Field(900, ge=1)
    #: Repeat offenders' bans double up to this factor.
    rate_limit_ban_max_factor: int = Field(16, ge=1)
    rate_limit_enabled: bool = True
    #: Levels that refuse requests (503) instead of allowing them when Redis is unreachable.
    rate_limit_fail_closed: list[str] = Field(default_factory=list)
    #: The limiter's own Redis timeout: a slow Redis must not slow every request.
    rate_limit_redis_timeout_ms: int = Field(100, ge=5)
    #: IPv6 clients are limited (and banned) per network of this prefix length: one host
    #: owns a whole /64 and rotates addresses inside it.
    rate_limit_ipv6_prefix: int = Field(64, ge=32, le=128)

    # Logging.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] | None = None

    # Actions, API docs, metrics.
    #: Serve /docs (Swagger UI); default: on outside prod.
    docs_enabled: bool | None = None
    #: Audit rows buffered for the background writer before new ones are dropped (and counted).
    audit_queue_size: int = Field(10000, ge=10)
    #: HMAC key of the audit log's digests (params, login emails); unset: derived from
    #: ENCRYPTION_KEY.
    audit_digest_key: str | None = secret(None)
    #: Serve /metrics on this separate port instead of the app's port (None: the app's port).
    metrics_port: int | None = Field(None, ge=1, le=65535)
    #: Answer ``GET /health/live`` on this port too, from a thread beside the worker's loop
    #: (core/http/liveness.py): fast while the loop is busy, 503 once it lags past
    #: LIVENESS_MAX_LAG. None: not served (the app's port answers /health/live either way).
    health_port: int | None = Field(None, ge=1, le=65535)
    #: Seconds the worker's loop may be late on its beat before HEALTH_PORT answers 503.
    liveness_max_lag: float = Field(10.0, gt=0)

    # Socket.IO.
    socketio_ping_interval: float = Field(25.0, gt=0)
    socketio_ping_timeout: float = Field(20.0, gt=0)
    #: Largest Socket.IO packet accepted, in bytes.
    socketio_max_buffer: int = Field(64 * 1024, ge=4096)
    #: How often each instance checks its sockets' tokens (revoked or expired: disconnect).
    socketio_sweep_interval: float = Field(1.0, gt=0)
    #: Seconds within which a dead instance's presence is gone: each instance heartbeats
    #: every 1/6 of it and is presumed dead after 2/3 of it without one.
    socketio_presence_ttl: float = Field(15.0, ge=1)
    #: Seconds a connection may stay open without a Socket.IO connect that was accepted.
    socketio_connect_timeout: float = Field(10.0, gt=0, le=30)
    #: Sockets one user may have open at once, over every instance.
    socketio_max_sockets_per_user: int = Field(10, ge=1)
    #: Engine.IO connections one client address may hold open on one instance (polling or
    #: websocket, authenticated or not); the next opening answers 429 TOO_MANY_CONNECTIONS.
    socketio_max_connections_per_ip: int = Field(50, ge=1)
    #: Connections of a gunicorn worker (worker_connections) Engine.IO never takes: kept for
    #: HTTP requests and health probes however many sockets are open (503 AT_CAPACITY).
    socketio_connection_reserve: int = Field(100, ge=0)
    #: Seconds after the server closes a websocket before its TCP connection is shut down,
    #: for a client that ignores the close frame.
    socketio_close_grace: float = Field(2.0, gt=0, le=30)
    #: Seconds nobody has been in a room before ``socket.room_empty`` fires for it (the rooms
    #: module then deletes the room; its own settings are in modules/rooms/settings.py).
    socketio_room_empty_ttl: int = Field(3600, ge=1)
    #: Rooms of up to this many users get ``user_joined``/``user_left`` for each user; larger
    #: ones get ``room_presence {room_id, member_count}`` instead, at most once every
    #: SOCKETIO_ROOM_PRESENCE_INTERVAL seconds. Member lists (``join_room``, ``room_members``)
    #: hold at most this many users, with ``member_count``.
    socketio_presence_events_max: int = Field(100, ge=1)
    socketio_room_presence_interval: float = Field(5.0, gt=0)
    # Realtime that survives reconnects, deploys and token expiry (docs/websockets.md).
    #: Each room keeps at least its last SOCKETIO_HISTORY_MAX messages for
    #: SOCKETIO_HISTORY_SECONDS after its last message (recovery on join, room_history).
    socketio_history_max: int = Field(200, ge=1, le=10000)
    socketio_history_seconds: int = Field(600, ge=1)
    #: ``session_expiring`` goes out this many seconds before a socket's token expires.
    socketio_expiry_notice: float = Field(30.0, ge=0)
    #: On SIGTERM, ``server_shutdown {reconnect_after_ms}`` spreads the sockets' reconnects
    #: evenly over this many milliseconds (bounded by SHUTDOWN_TIMEOUT), closing each then.
    socketio_reconnect_spread_ms: int = Field(5000, ge=0)

    # Tracing (OpenTelemetry, OTLP over HTTP): off unless an OTLP endpoint is set. The
    # standard names; the other OTEL_* variables (OTEL_RESOURCE_ATTRIBUTES,
    # OTEL_EXPORTER_OTLP_TIMEOUT, _COMPRESSION, _CERTIFICATE, OTEL_TRACES_SAMPLER, ...) are read
    # by the OpenTelemetry SDK from the environment. docs/operations.md, "Tracing".
    #: The collector's base URL (``/v1/traces`` is appended), e.g. ``http://otel-collector:4318``.
    otel_exporter_otlp_endpoint: str | None = Field(
        None, json_schema_extra={"url_credentials": True}
    )
    #: The full URL for traces; wins over the base URL.
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        None, json_schema_extra={"url_credentials": True}
    )
    #: Headers sent with every export (``key=value,key2=value2``, URL-encoded): credentials.
    otel_exporter_otlp_headers: str | None = secret(None)
    otel_service_name: str = "python-base-04"
    #: ``true`` turns tracing off whatever else is set (the SDK's switch).
    otel_sdk_disabled: bool = False
    #: Fraction of new traces recorded (0 to 1); a request continuing a trace follows its
    #: caller's decision. OTEL_TRACES_SAMPLER, when set, replaces this.
    tracing_sample_ratio: float = Field(1.0, ge=0, le=1)

    # Modules, health and lifecycle.
    #: Which modules exist decides which settings exist: like Vault's own settings, these
    #: come from secret files, the environment or defaults, never from Vault.
    modules_packages: list[str] = Field(
        default_factory=lambda: ["modules"], json_schema_extra={"bootstrap": True}
    )
    modules_disabled: list[str] = Field(default_factory=list, json_schema_extra={"bootstrap": True})
    health_check_timeout: float = Field(2.0, gt=0)
    #: /health/ready (and the dependency gauges) reuse one run of the checks this long;
    #: concurrent callers share the run in flight, so a probe flood cannot load the stores.
    health_ready_cache_seconds: float = Field(2.0, ge=0)
    shutdown_timeout: float = Field(25.0, ge=0)

    @field_validator(
        "cors_origins",
        "modules_packages",
        "modules_disabled",
        "rate_limit_fail_closed",
        mode="before",
        check_fields=True,
    )
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("jwt_previous_secrets", mode="before")
    @classmethod
    def _retired_secrets(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list):
            return [parse_previous_secret(v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("jwt_previous_public_keys")
    @classmethod
    def _retired_public_keys(cls, value: str | None) -> str | None:
        if value:
            parse_previous_public_keys(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "log_format",
        "vault_addr",
        "vault_cacert",
        "mongodb_admin_uri",
        "vault_transit_key",
        "docs_enabled",
        "metrics_port",
        "health_port",
        "audit_digest_key",
        "otel_exporter_otlp_endpoint",
        "otel_exporter_otlp_traces_endpoint",
        "otel_exporter_otlp_headers",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("encryption_key")
    @classmethod
    def _encryption_key_is_32_bytes(cls, value: str) -> str:
        if not value:  # unset: generated outside prod, required in prod (config/loader.py)
            return value
        try:
            raw = base64.urlsafe_b64decode(value.encode() + b"=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise ValueError("must be URL-safe base64") from None
        if len(raw) != 32:
            raise ValueError(f"must decode to 32 bytes, got {len(raw)}")
        return value

    @property
    def is_prod(self) -> bool:
        return self.app_env == "prod"

    @property
    def tracing_enabled(self) -> bool:
        """An OTLP endpoint is set and the SDK is not switched off."""
        endpoint = self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint
        return endpoint is not None and not self.otel_sdk_disabled

    @property
    def effective_log_format(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_prod else "console"

    @classmethod
    def env_names(cls) -> list[str]:
        return [name.upper() for name in cls.model_fields]


#: ``password=...`` in a libpq key/value DSN (``host=db password='a b'``) or a URL's query
#: (``postgresql://db/app?password=...``): a quoted value, or up to a space, ``&`` or ``;``.
_PASSWORD_PAIR = re.compile(r"(?i)(?<![\w])(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&;]+)")


def connection_passwords(dsn: str) -> list[str]:
    """Every password in a connection string: a URL's ``user:password@``, and each
    ``password=`` pair (as written, unquoted and percent-decoded)."""
    found: list[str] = []
    if "://" in dsn:
        password = urlsplit(dsn).password
        if password:
            found.extend({password, unquote(password)})
    for match in _PASSWORD_PAIR.finditer(dsn):
        raw = match[2]
        value = raw[1:-1].replace("\\'", "'").replace("\\\\", "\\") if raw[0] == "'" else raw
        found.extend(v for v in {raw, value, unquote(value)} if v)
    return found


def mask_connection_passwords(dsn: str) -> str:
    """The connection string with every password shown as ``****``: ``scheme://user:****@host``,
    ``password=****``. Strings without a password are returned unchanged."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
            dsn = urlunsplit(parts._replace(netloc=netloc))
    return _PASSWORD_PAIR.sub(lambda match: f"{match[1]}****", dsn)
