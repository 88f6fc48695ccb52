"""Running one action: hooks, validate, call the handler, check the result, audit.

The order is the contract's: admission with the action's endpoint (gates, authentication 401,
the limits 429 with the action's own ``rate_limit``, roles/scopes 403: one function,
:mod:`core.managers.admission`, before the body is read) -> ``before_execute`` callbacks ->
params validation (400) -> handler.

Every execution of an audited action, whatever its outcome, hands one row to the audit writer
(a refusal by roles or scopes too: :meth:`ActionManager.refused`);
a failure is mapped by :func:`core.edge.problems.api_error` (the one error mapper), so the row's
status and code are the ones the caller gets.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.edge.problems import DependencyOf, api_error
from core.edge.validation import pointer, validate
from core.errors import ApiError, InternalError, ServiceUnavailable
from core.managers.actions.audit import AuditRecord, AuditWriter, Digest
from core.managers.actions.declaration import Action, ActionContext
from core.managers.database.json import to_json_compatible

logger = logging.getLogger(__name__)

_OUTCOMES = {400: "invalid", 401: "denied", 403: "denied", 429: "rate_limited"}


#: ``callback(action, context)``; raise an ApiError (e.g. TooManyRequests) to refuse the call.
BeforeExecute = Callable[[Action, ActionContext], None]


@dataclass(frozen=True)
class Execution:
    """One finished execution, as ``after_execute`` callbacks (metrics) see it."""

    action: Action
    context: ActionContext
    #: The HTTP status it ended with and the problem code (None when it succeeded).
    status: int
    code: str | None
    #: ``ok``, ``denied``, ``invalid``, ``rate_limited``, ``rejected``, ``timeout``, ``error``.
    outcome: str
    seconds: float


#: ``callback(execution)`` after every execution; a failing callback is logged, never raised.
AfterExecute = Callable[[Execution], None]


def execute(
    action: Action,
    params: dict[str, Any],
    context: ActionContext,
    *,
    before: Sequence[BeforeExecute],
    after: Sequence[AfterExecute],
    audit: AuditWriter,
    digest: Digest,
    dependency_of: DependencyOf,
) -> Any:
    """The JSON-compatible result of ``action``; raises ApiErrors for refusals and failures.
    The caller was admitted already (:mod:`core.managers.admission`: authentication, limits,
    roles and scopes, with the action's endpoint)."""
    occurred_at, started = datetime.now(UTC), time.perf_counter()
    status, code, params_digest = 200, None, None
    try:
        for callback in before:
            callback(action, context)
        validate(action.params_validator, params)
        # Params that were refused are not digested: a flood of them must not cost a pass.
        params_digest = digest(params) if action.audit else None
        result = to_json_compatible(call_handler(action, action.with_defaults(params), context))
        _check_result(action, result)
        return result
    except Exception as exc:
        error = api_error(exc, dependency_of, action=action.name)
        status, code = error.status, error.code
        if error is exc:
            raise
        raise error from exc
    finally:
        seconds = time.perf_counter() - started
        done = Execution(action, context, status, code, _outcome(status, code), seconds)
        finish(done, params_digest, occurred_at, after=after, audit=audit)


def finish(
    done: Execution,
    params_digest: str | None,
    occurred_at: datetime,
    *,
    after: Sequence[AfterExecute],
    audit: AuditWriter,
) -> None:
    """An execution's end, whatever it was: its audit row (audited actions) and the
    ``after`` callbacks (a failing one is logged)."""
    if done.action.audit:
        audit.write(_record(done, params_digest, occurred_at))
    for listener in after:
        try:
            listener(done)
        except Exception:
            logger.exception("after_execute callback failed", extra={"action": done.action.name})


def refused(action: Action, context: ActionContext, error: ApiError) -> Execution:
    """An execution that admission refused before it began (roles, scopes)."""
    return Execution(
        action, context, error.status, error.code, _outcome(error.status, error.code), 0.0
    )


def call_handler(action: Action, params: dict[str, Any], context: ActionContext) -> Any:
    """Run the handler under its ``timeout``: enforced under gevent, only logged in threads.

    A thread cannot be interrupted safely, so in threading mode (development, tests) a handler
    that outlives its timeout finishes and is logged. Under gevent a ``gevent.Timeout`` raises
    503 ``ACTION_TIMEOUT`` inside the handler at its next cooperative yield (any I/O).
    """
    if action.timeout is not None and gevent_active():
        import gevent

        timed_out = ServiceUnavailable("The action did not finish in time.", code="ACTION_TIMEOUT")
        with gevent.Timeout(action.timeout, timed_out):
            return action.handler(params, context)
    started = time.perf_counter()
    result = action.handler(params, context)
    elapsed = time.perf_counter() - started
    if action.timeout is not None and elapsed > action.timeout:
        logger.warning(
            "action exceeded its timeout",
            extra={"action": action.name, "timeout": action.timeout, "elapsed": elapsed},
        )
    return result


def gevent_active() -> bool:
    """Whether gevent has monkey-patched this process (gunicorn's gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def _check_result(action: Action, result: Any) -> None:
    if action.result_validator is None:
        return
    # Where and which rule, not the values: results can hold personal data.
    problems = [
        f"{pointer(e.absolute_path) or '/'}: {e.validator}"
        for e in action.result_validator.iter_errors(result)
    ]
    if problems:
        # The handler broke its own contract: a server bug, logged, never shown to the client.
        logger.error(
            "action result does not match its schema",
            extra={"action": action.name, "problems": problems[:10]},
        )
        raise InternalError("An unexpected error occurred.")


def _outcome(status: int, code: str | None) -> str:
    if code == "ACTION_TIMEOUT":
        return "timeout"
    if status < 400:
        return "ok"
    return _OUTCOMES.get(status, "rejected" if status < 500 else "error")


def _record(done: Execution, params_digest: str | None, occurred_at: datetime) -> AuditRecord:
    principal = done.context.principal
    return AuditRecord(
        occurred_at=occurred_at,
        kind="action",
        action=done.action.name,
        principal_type=principal.type if principal else None,
        principal_id=principal.id if principal else None,
        outcome=done.outcome,
        status=done.status,
        duration_ms=round(done.seconds * 1000, 3),
        request_id=done.context.request_id,
        params_digest=params_digest,
        details={"code": done.code} if done.code else {},
    )
