"""VaultManager: logs in to HashiCorp Vault (or OpenBao), keeps the token alive, reads KV v2
secrets through a cache and encrypts with the transit engine.

Auth methods: ``token`` (``VAULT_TOKEN``), ``approle`` (``VAULT_ROLE_ID`` +
``VAULT_SECRET_ID``) and ``kubernetes`` (``VAULT_KUBERNETES_ROLE`` + the pod's service-account
token file, re-read at every login because Kubernetes rotates it).

Start-up (``login()`` and the first ``read_secret()``, before ``init_app``): every failure is a
:class:`VaultError`, so start-up stops with one clear message. At runtime (after ``init_app``):

- a daemon thread renews the token at 2/3 of its TTL and logs in again when renewal is refused
  or the token reached its max TTL, backing off while Vault is unreachable;
- a request answered 403 by a dead token (revoked, expired, Vault restarted) logs in once more;
- ``read_secret`` serves from a per-path cache for ``VAULT_KV_CACHE_TTL`` seconds; while Vault
  is unreachable it serves the last value even when expired (WARNING + ``stale_reads``), and
  with nothing cached it raises ``DependencyUnavailable("vault")``.

Counters (``logins``, ``renewals``, ``renewal_failures``, ``stale_reads``) are plain attributes.
No token or secret value is ever logged or put in an error message.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests
from flask import Flask

from config.loader import vault_problems
from config.settings import Settings
from core.errors import (
    ConfigurationError,
    CryptoError,
    DependencyUnavailable,
    FrameworkError,
    VaultError,
)
from core.managers.base import HealthCheck, HealthResult, Manager, timed_check

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors meaning "Vault cannot answer right now" (as opposed to "Vault said no").
UNREACHABLE: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.VaultDown,
)
_REQUEST_ERRORS = (hvac.exceptions.VaultError, requests.RequestException)
RENEW_AT = 2 / 3  # of the token TTL: leaves a third of it for retries


@dataclass(frozen=True)
class _Cached:
    data: dict[str, Any]
    fetched_at: float


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class VaultManager(Manager):
    """Vault client with token lifecycle, cached KV v2 reads and a transit helper."""

    name = "vault"
    unavailable_errors = UNREACHABLE
    #: Backoff bounds (seconds) between token refresh attempts while Vault is unreachable.
    retry_min = 0.5
    retry_max = 30.0

    def __init__(self, settings: Settings) -> None:
        problems = vault_problems(settings)
        if problems:
            raise ConfigurationError(problems)
        assert settings.vault_addr is not None
        self.settings = settings
        self.addr = settings.vault_addr
        self.client = hvac.Client(
            url=settings.vault_addr,
            timeout=settings.vault_timeout,
            verify=settings.vault_cacert or True,  # never off: a CA file, or the system CAs
        )
        self.logins = self.renewals = self.renewal_failures = self.stale_reads = 0
        self._can_relogin = settings.vault_auth_method != "token"
        self._lock = threading.Lock()  # guards login, renewal and the lease fields below
        self._generation = 0  # +1 per login: concurrent 403s trigger one login, not many
        self._ttl = 0.0  # seconds left at _lease_at; 0 = nothing to schedule
        self._granted_ttl = 0.0
        self._lease_at = 0.0
        self._renewable = False
        self._at_max_ttl = False
        self._failures = 0
        self._retry_at: float | None = None
        self._cache: dict[str, _Cached] = {}
        self._runtime = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- login and token lifecycle ------------------------------------------------------

    def login(self) -> None:
        """Authenticate with the configured method; raises :class:`VaultError`."""
        method = self.settings.vault_auth_method
        try:
            with self._lock:
                self._login_locked()
        except _REQUEST_ERRORS as exc:
            raise VaultError(
                f"Vault login ({method}) at {self.addr} failed: {type(exc).__name__}"
                f"{self._refusal(exc)}{self._hint(exc)}"
            ) from exc
        logger.info("vault login ok", extra={"vault_auth_method": method})

    def _refusal(self, exc: Exception) -> str:
        """Why Vault refused a login: its own words (which never hold the credentials) and,
        for Kubernetes auth, where to look."""
        if not isinstance(exc, hvac.exceptions.Forbidden | hvac.exceptions.InvalidRequest):
            return ""
        said = "; ".join(str(error) for error in exc.errors or [])[:200]
        reason = f" ({said})" if said else ""
        if self.settings.vault_auth_method != "kubernetes":
            return reason
        return (
            f"{reason}: the service-account token at "
            f"{self.settings.vault_kubernetes_token_path} was refused for role "
            f"{self.settings.vault_kubernetes_role!r}; check that the role binds this pod's "
            "service account and namespace and the token's audience, and that Vault's "
            "TokenReview reaches the Kubernetes API"
        )

    def _login_locked(self) -> None:
        method = self.settings.vault_auth_method
        if method == "token":
            self.client.token = self.settings.vault_token
            data = self.client.auth.token.lookup_self()["data"]
            ttl, granted = data["ttl"], data.get("creation_ttl") or data["ttl"]
            renewable = data["renewable"]
        else:
            if method == "approle":
                response = self.client.auth.approle.login(
                    role_id=self.settings.vault_role_id, secret_id=self.settings.vault_secret_id
                )
            else:
                response = self.client.auth.kubernetes.login(
                    self.settings.vault_kubernetes_role, self.service_account_jwt()
                )
            ttl = granted = response["auth"]["lease_duration"]
            renewable = response["auth"]["renewable"]
        self._ttl, self._granted_ttl = float(ttl), float(granted)
        self._lease_at, self._renewable = time.monotonic(), bool(renewable)
        self._at_max_ttl = False
        self._failures, self._retry_at = 0, None
        self._generation += 1
        self.logins += 1
        self._wake.set()  # the renewal thread reschedules for the new token

    def service_account_jwt(self) -> str:
        """The Kubernetes service-account token; a missing or empty file is a VaultError."""
        path = Path(self.settings.vault_kubernetes_token_path)
        try:
            jwt = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise VaultError(
                f"Vault login (kubernetes): cannot read the service-account token at {path} "
                f"({type(exc).__name__}); is the pod's service account token mounted?"
            ) from None
        if not jwt:
            raise VaultError(f"Vault login (kubernetes): the service-account token {path} is empty")
        return jwt

    def _renew_locked(self) -> None:
        auth = self.client.auth.token.renew_self()["auth"]
        ttl = float(auth["lease_duration"])
        # Vault caps the TTL at the token's max TTL: below what was granted means "nearly done".
        self._at_max_ttl = ttl < self._granted_ttl
        self._ttl, self._lease_at, self._renewable = ttl, time.monotonic(), bool(auth["renewable"])
        # A success ends any retry backoff; without this the next delay stays 0 forever.
        self._failures, self._retry_at = 0, None
        self.renewals += 1

    def _refresh_token(self) -> None:
        """One renewal cycle: renew, or log in again when renewal is impossible or refused."""
        with self._lock:
            reason = "max_ttl" if self._at_max_ttl else "not_renewable"
            if self._renewable and not self._at_max_ttl:
                try:
                    self._renew_locked()
                    return
                except UNREACHABLE:
                    raise
                except hvac.exceptions.VaultError as exc:
                    reason = f"renewal_refused:{type(exc).__name__}"
            if not self._can_relogin:
                logger.warning("vault token will expire: VAULT_TOKEN cannot log in again")
                self._ttl, self._at_max_ttl = 0.0, False  # nothing more to schedule
                return
            logger.info("vault re-login", extra={"reason": reason})
            self._login_locked()

    def _next_delay(self) -> float | None:
        with self._lock:
            now = time.monotonic()
            if self._retry_at is not None:
                return max(0.0, self._retry_at - now)
            if self._ttl <= 0 and not self._at_max_ttl:
                return None  # root or non-expiring token: nothing to renew
            return max(0.0, self._lease_at + self._ttl * RENEW_AT - now)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._wake.wait(self._next_delay()):
                self._wake.clear()  # a login or close() changed the schedule
                continue
            try:
                self._refresh_token()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any failure
                self._schedule_retry(exc)

    def _schedule_retry(self, exc: Exception) -> None:
        with self._lock:
            self._failures += 1
            self.renewal_failures += 1
            delay = min(self.retry_max, self.retry_min * 2 ** (self._failures - 1))
            delay *= random.uniform(0.8, 1.2)  # pods that lost Vault together do not retry in step
            self._retry_at = time.monotonic() + delay
        logger.warning(
            "vault token refresh failed; retrying",
            extra={"error": type(exc).__name__, "retry_in_s": round(delay, 2)},
        )

    def _call(self, request: Callable[[], T]) -> T:
        """Run a request; when a 403 comes from a dead token, log in once and run it again."""
        generation = self._generation
        try:
            return request()
        except hvac.exceptions.Forbidden:
            if not self._can_relogin or not self._relogin_if_token_dead(generation):
                raise
        return request()

    def _relogin_if_token_dead(self, generation: int) -> bool:
        """After a 403: log in again unless the token is alive (then it was a policy denial)."""
        with self._lock:
            if self._generation != generation:
                return True  # another thread logged in meanwhile
            try:
                self.client.auth.token.lookup_self()
            except hvac.exceptions.Forbidden:
                logger.info("vault re-login", extra={"reason": "token_revoked_or_expired"})
                self._login_locked()
                return True
            return False

    # -- KV v2 --------------------------------------------------------------------------

    def read_secret(self, path: str | None = None) -> dict[str, Any]:
        """The data of the KV v2 secret at ``path`` (default ``VAULT_SECRET_PATH``), cached."""
        path = path or self.settings.vault_secret_path
        mount = self.settings.vault_kv_mount
        cached = self._cache.get(path)
        now = time.monotonic()
        if cached is not None and now - cached.fetched_at < self.settings.vault_kv_cache_ttl:
            return dict(cached.data)
        try:
            response = self._call(
                lambda: self.client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=mount, raise_on_deleted_version=True
                )
            )
        except hvac.exceptions.InvalidPath:
            self._cache.pop(path, None)
            raise VaultError(f"Vault has no secret at {mount}/{path}") from None
        except UNREACHABLE as exc:
            if cached is None:
                raise self._unavailable(f"read of {mount}/{path}", exc) from exc
            self.stale_reads += 1
            logger.warning(
                "vault unreachable; serving a cached secret",
                extra={
                    "path": f"{mount}/{path}",
                    "age_s": round(now - cached.fetched_at, 1),
                    "error": type(exc).__name__,
                },
            )
            return dict(cached.data)
        except _REQUEST_ERRORS as exc:
            raise VaultError(f"Vault read of {mount}/{path} failed: {type(exc).__name__}") from exc
        data: dict[str, Any] = response["data"]["data"]
        self._cache[path] = _Cached(dict(data), time.monotonic())
        return dict(data)

    # -- transit ------------------------------------------------------------------------

    def encrypt(
        self, plaintext: bytes, context: str | None = None, *, key: str | None = None
    ) -> str:
        """Encrypt with transit key ``key`` (default ``VAULT_TRANSIT_KEY``): ``vault:v<n>:...``.

        ``context`` is required by keys created with ``derived=True`` (key derivation).
        """
        return str(self._transit("encrypt", key, context, plaintext=_b64(plaintext))["ciphertext"])

    def decrypt(self, token: str, context: str | None = None, *, key: str | None = None) -> bytes:
        """Decrypt a ``vault:v<n>:...`` token; tampered or foreign tokens raise CryptoError."""
        return base64.b64decode(
            self._transit("decrypt", key, context, ciphertext=token)["plaintext"]
        )

    def _transit(
        self, action: str, key: str | None, context: str | None, **payload: str
    ) -> dict[str, Any]:
        name = key or self.settings.vault_transit_key
        if not name:
            raise ConfigurationError("VAULT_TRANSIT_KEY is required for Vault transit encryption")
        transit = self.client.secrets.transit
        send = transit.encrypt_data if action == "encrypt" else transit.decrypt_data
        try:
            response = self._call(
                lambda: send(
                    name,
                    context=_b64(context.encode()) if context else None,
                    mount_point=self.settings.vault_transit_mount,
                    **payload,
                )
            )
        except UNREACHABLE as exc:
            raise self._unavailable(f"transit {action}", exc) from exc
        except _REQUEST_ERRORS as exc:
            # Vault's own message is not passed on: keep errors free of anything data-derived.
            raise CryptoError(
                f"Vault transit {action} with key {name!r} failed: {type(exc).__name__}"
                + (" (tampered value, wrong key or context)" if action == "decrypt" else "")
            ) from None
        data: dict[str, Any] = response["data"]
        return data

    # -- errors -------------------------------------------------------------------------

    def _unavailable(self, what: str, exc: Exception) -> FrameworkError:
        """Runtime: 503 DEPENDENCY_UNAVAILABLE. Start-up: a VaultError that says what to do."""
        if self._runtime:
            return DependencyUnavailable("vault")
        return VaultError(
            f"Vault {what} at {self.addr} failed: {type(exc).__name__}{self._hint(exc)}"
        )

    def _hint(self, exc: Exception) -> str:
        if self.settings.is_prod or not isinstance(exc, UNREACHABLE):
            return ""
        return " (run `make run` to start the dev stack)"

    # -- manager contract ---------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Register, switch to runtime error handling and start the token renewal thread."""
        super().init_app(app)
        self._runtime = True
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(
                target=self._run, name="vault-token-renewal", daemon=True
            )
            self._thread.start()

    @property
    def renewal_thread(self) -> threading.Thread | None:
        return self._thread

    def health(self) -> HealthResult:
        return timed_check(
            lambda: self._call(self.client.auth.token.lookup_self),
            auth_method=self.settings.vault_auth_method,
        )

    def readiness_checks(self) -> dict[str, HealthCheck]:
        return {"vault": self.health}

    def close(self) -> None:
        """Stop and join the renewal thread, then close the HTTP session. Idempotent."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.settings.vault_timeout + 1)
            if thread.is_alive():
                logger.warning("vault token renewal thread did not stop in time")
        self.client.adapter.close()
