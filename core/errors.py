"""The one exception hierarchy of the framework.

    FrameworkError
    ├── ConfigurationError          settings are missing or invalid (start-up)
    ├── CryptoError                 a value cannot be encrypted or decrypted (tampered, wrong key)
    ├── ServiceError                a service name is taken or unknown (ServicesManager)
    ├── StartupError                the app cannot start (start-up)
    │   ├── ModuleError             discovery, import, dependency or cycle problem of a module
    │   └── VaultError              Vault unreachable, login refused or no secret at the path
    └── ApiError                    maps to an RFC 9457 problem response (status + stable code)
        ├── BadRequest              400 BAD_REQUEST
        │   ├── InvalidJson         400 INVALID_JSON
        │   └── ValidationFailed    400 VALIDATION_ERROR, with per-field ``errors``
        ├── Unauthorized            401 AUTH_REQUIRED (and the other 401 codes)
        ├── Forbidden               403 FORBIDDEN / INSUFFICIENT_SCOPE
        │   └── NotInRoom           403 NOT_IN_ROOM (Socket.IO acks)
        ├── NotFound                404 NOT_FOUND
        ├── MethodNotAllowed        405 METHOD_NOT_ALLOWED
        ├── Conflict                409 CONFLICT / EMAIL_TAKEN / ...
        │   ├── StateConflict       409 STATE_CONFLICT (compare-and-set lost)
        │   ├── IllegalTransition   409 ILLEGAL_TRANSITION (not allowed by the state machine)
        │   └── QuotaExceeded       409 QUOTA_EXCEEDED (an owner's quota is used up)
        ├── PayloadTooLarge         413 PAYLOAD_TOO_LARGE
        ├── UnsupportedMediaType    415 UNSUPPORTED_MEDIA_TYPE
        ├── UnprocessableContent    422 UNPROCESSABLE_CONTENT (IDEMPOTENCY_KEY_MISMATCH)
        ├── TooManyRequests         429 RATE_LIMITED / BANNED / LOGIN_LOCKED, with Retry-After
        ├── HttpError               a Werkzeug HTTP error (406, 414, 431, ...) with its status
        ├── InternalError           500 INTERNAL_ERROR
        └── ServiceUnavailable      503 SERVICE_UNAVAILABLE
            ├── DependencyUnavailable   503 DEPENDENCY_UNAVAILABLE (a store is down)
            ├── Maintenance             503 MAINTENANCE
            └── ShuttingDown            503 SHUTTING_DOWN

Managers raise these. Any exception becomes one of them in one place,
:func:`core.edge.problems.api_error`: problem documents, Socket.IO acks, the action executor and
audit rows all use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar


class FrameworkError(Exception):
    """Base of every error the framework raises on purpose."""


class ConfigurationError(FrameworkError):
    """Settings are missing or invalid; carries every problem found, one per line."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class CryptoError(FrameworkError):
    """A value cannot be encrypted or decrypted: tampered ciphertext or the wrong key."""


class StartupError(FrameworkError):
    """The application cannot start; the message says why and, in development, what to run."""


class ModuleError(StartupError):
    """A feature module cannot be discovered, imported or ordered; the message names it."""

    def __init__(self, module: str, reason: str) -> None:
        self.module = module
        super().__init__(f"module {module!r}: {reason}")


class VaultError(StartupError):
    """Vault cannot be reached, refuses the login, or has no secret at the path."""


class ServiceError(FrameworkError):
    """A service name is taken or unknown."""


class ApiError(FrameworkError):
    """An error with an HTTP status and a stable UPPER_SNAKE code, shown to clients as-is."""

    status: int = 500
    default_code: ClassVar[str] = "INTERNAL_ERROR"
    title: str = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.code = code or self.default_code
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.detail)

    def summary(self) -> str:
        """One line for a terminal: the failing fields, else ``CODE: detail``."""
        errors = self.extra.get("errors")
        if errors:
            return "; ".join(f"{e['field'].lstrip('/') or 'body'}: {e['message']}" for e in errors)
        return f"{self.code}: {self.detail}"


class BadRequest(ApiError):
    status, default_code, title = 400, "BAD_REQUEST", "Bad Request"


class InvalidJson(BadRequest):
    default_code, title = "INVALID_JSON", "Malformed JSON"


class ValidationFailed(BadRequest):
    """Input failed validation; ``errors`` lists ``{"field", "message"}`` per problem."""

    default_code, title = "VALIDATION_ERROR", "Validation Failed"

    def __init__(
        self,
        errors: Iterable[Mapping[str, str]],
        detail: str = "The request is not valid.",
        **kwargs: Any,
    ) -> None:
        self.errors = [{"field": e["field"], "message": e["message"]} for e in errors]
        super().__init__(detail, **kwargs)
        self.extra["errors"] = self.errors


class Unauthorized(ApiError):
    status, default_code, title = 401, "AUTH_REQUIRED", "Unauthorized"


class Forbidden(ApiError):
    status, default_code, title = 403, "FORBIDDEN", "Forbidden"


class NotFound(ApiError):
    status, default_code, title = 404, "NOT_FOUND", "Not Found"


class MethodNotAllowed(ApiError):
    status, default_code, title = 405, "METHOD_NOT_ALLOWED", "Method Not Allowed"


class NotInRoom(Forbidden):
    """A Socket.IO event about a room the socket has not joined."""

    default_code, title = "NOT_IN_ROOM", "Not In Room"


class Conflict(ApiError):
    status, default_code, title = 409, "CONFLICT", "Conflict"


class StateConflict(Conflict):
    """A state changed since it was read: the compare-and-set on its version failed."""

    default_code, title = "STATE_CONFLICT", "State Conflict"


class IllegalTransition(Conflict):
    """The state machine does not allow this transition from the current state."""

    default_code, title = "ILLEGAL_TRANSITION", "Illegal Transition"


class QuotaExceeded(Conflict):
    """An owner's quota is used up (:class:`core.managers.database.quotas.Quota`)."""

    default_code, title = "QUOTA_EXCEEDED", "Quota Exceeded"


class PayloadTooLarge(ApiError):
    status, default_code, title = 413, "PAYLOAD_TOO_LARGE", "Payload Too Large"


class UnprocessableContent(ApiError):
    """Well-formed, but not a request this server can carry out (a reused idempotency key)."""

    status, default_code, title = 422, "UNPROCESSABLE_CONTENT", "Unprocessable Content"


class UnsupportedMediaType(ApiError):
    status, default_code, title = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported Media Type"


class TooManyRequests(ApiError):
    """429; ``retry_after`` (seconds, at least 1) becomes the ``Retry-After`` header."""

    status, default_code, title = 429, "RATE_LIMITED", "Too Many Requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = max(1, int(retry_after))
        self.headers.setdefault("Retry-After", str(self.retry_after))


class HttpError(ApiError):
    """An HTTP error Werkzeug raised (routing, body limits), with its own status and title."""

    def __init__(self, status: int, title: str, detail: str, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.status = status
        self.title = title


class InternalError(ApiError):
    status, default_code, title = 500, "INTERNAL_ERROR", "Internal Server Error"


class ServiceUnavailable(ApiError):
    status, default_code, title = 503, "SERVICE_UNAVAILABLE", "Service Unavailable"


class DependencyUnavailable(ServiceUnavailable):
    """A backing store (``dependency``) cannot be reached; the request may be retried."""

    default_code = "DEPENDENCY_UNAVAILABLE"

    def __init__(self, dependency: str, **kwargs: Any) -> None:
        self.dependency = dependency
        kwargs.setdefault("headers", {"Retry-After": "1"})
        super().__init__(f"{dependency} is unavailable; retry shortly.", **kwargs)


class Maintenance(ServiceUnavailable):
    default_code, title = "MAINTENANCE", "Down for Maintenance"


class ShuttingDown(ServiceUnavailable):
    default_code, title = "SHUTTING_DOWN", "Shutting Down"
