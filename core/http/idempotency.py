"""``Idempotency-Key``: a retried write runs once, and every retry gets the first answer.

An endpoint opts in (its spec's ``idempotent`` flag, :class:`~core.edge.endpoint.Endpoint`:
a route's ``idempotent=True``, an action's ``idempotent: true``). A request to it with the
header, from an authenticated caller, is matched against the first request with that key from
that caller
(:class:`~core.managers.idempotency.IdempotencyStore`):

- none: it runs, and its answer is kept for ``IDEMPOTENCY_TTL`` (24 h) unless it is one of
  those below that are not kept;
- the first answered: its status, body and content type again, with
  ``Idempotent-Replayed: true``, the view not called;
- the first still running: 409 ``IDEMPOTENCY_KEY_IN_USE`` (``Retry-After: 1``);
- another request (method, path, query or body differ): 422 ``IDEMPOTENCY_KEY_MISMATCH``.

What is replayed (docs/decisions.md): what the endpoint did, a success or a problem of its own
(404, 409 ``QUOTA_EXCEEDED``... stay the answer for that key). Not kept, so that a retry runs
again: a 5xx (the outcome is unknown or the failure transient), and the refusals that mean
nothing ran: 400 (a malformed or invalid request: fix it and send it with the same key), 401,
403 and 429. A request without the header, to an endpoint that did not opt in, or from an
anonymous caller runs as usual.
"""

from __future__ import annotations

import json

from flask import Response, g, request

from core.edge.endpoint import Endpoint
from core.errors import BadRequest, Conflict, UnprocessableContent
from core.http.pipeline import Layer
from core.managers.idempotency import (
    IdempotencyStore,
    InUse,
    Mismatch,
    Replay,
    Reserved,
    fingerprint,
)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEY_MAX = 255
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The answers kept for a key's retries: what the endpoint did (see the module docstring).
KEPT = frozenset(range(200, 500)) - {400, 401, 403, 429}


def _valid(key: str) -> bool:
    return 0 < len(key) <= KEY_MAX and all(" " <= char <= "~" for char in key)


def _request_fingerprint() -> str:
    body = g.get("json_body")
    canonical = "" if body is None else json.dumps(body, sort_keys=True, separators=(",", ":"))
    return fingerprint(request.method, request.path, request.query_string, canonical)


def layer(store: IdempotencyStore) -> Layer:
    """The ``idempotency`` layer: inside admission, which left the request's endpoint (a
    route's, or the action named by ``POST /actions/<name>``) in ``g.endpoint``."""

    def before() -> Response | None:
        if request.method not in _WRITES:  # g.idempotency stays unset: nothing reserved
            return None
        g.idempotency = None
        key = request.headers.get(HEADER)
        if key is None:
            return None
        principal = g.get("principal")
        endpoint: Endpoint | None = g.get("endpoint")
        if principal is None or endpoint is None or not endpoint.idempotent:
            return None
        if not _valid(key):
            raise BadRequest(
                f"The {HEADER} header must be 1-{KEY_MAX} printable ASCII characters.",
                code="IDEMPOTENCY_KEY_INVALID",
            )
        outcome = store.begin(f"{principal.type}:{principal.id}", key, _request_fingerprint())
        if isinstance(outcome, Reserved):
            g.idempotency = outcome
            return None
        if isinstance(outcome, Replay):
            replayed = Response(
                outcome.body, status=outcome.status, content_type=outcome.content_type
            )
            replayed.headers[REPLAYED] = "true"
            return replayed
        if isinstance(outcome, InUse):
            raise Conflict(
                "A request with this Idempotency-Key is still running; retry shortly.",
                code="IDEMPOTENCY_KEY_IN_USE",
                headers={"Retry-After": "1"},
            )
        assert isinstance(outcome, Mismatch)
        raise UnprocessableContent(
            "This Idempotency-Key was used with another request; use a new key.",
            code="IDEMPOTENCY_KEY_MISMATCH",
        )

    def after(response: Response) -> None:
        reserved: Reserved | None = g.pop("idempotency", None)
        if reserved is None:
            return
        if response.status_code not in KEPT or response.is_streamed:
            store.abandon(reserved)
        else:
            body = response.get_data(as_text=True)
            store.finish(reserved, response.status_code, body, response.content_type or "")

    def finished() -> None:
        # An exception that escaped every handler: nothing was answered, the key is free again.
        reserved: Reserved | None = g.pop("idempotency", None)
        if reserved is not None:
            store.abandon(reserved)

    return Layer("idempotency", before=before, after=after, finished=finished)


#: What an idempotent operation adds to its OpenAPI description.
PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Send a new random key (a UUID) with each write and the same key with its retries: "
        f"the first answer is replayed (with `{REPLAYED}: true`) for IDEMPOTENCY_TTL."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": KEY_MAX},
}
ERRORS: dict[int, list[str]] = {
    400: ["IDEMPOTENCY_KEY_INVALID"],
    409: ["IDEMPOTENCY_KEY_IN_USE"],
    422: ["IDEMPOTENCY_KEY_MISMATCH"],
}
