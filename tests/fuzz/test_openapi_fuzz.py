"""Schemathesis against the live app's ``/openapi.json``: every route and every action, with a
valid JWT (an admin) and an API key supplied, positive and negative data.

Checks on every response:

- no 5xx (``not_a_server_error``);
- the response conforms to what the document declares: status code, content type and body
  schema (``status_code_conformance``, ``content_type_conformance``,
  ``response_schema_conformance``); an operation that declares a credential refuses a call
  without it (``ignored_auth``); data that breaks the schema is refused
  (``negative_data_rejection``, negative mode);
- every 4xx/5xx is an RFC 9457 problem document (``problem_document``, below).

Every route is typed (``core.http.typed``) and every action declares its result, so every
answer is checked against a schema: the route's status and response model (``User``,
``TokenPair``, the API-key page, health, maintenance...), the action's ``result``.

The app is served in-process through Schemathesis' WSGI transport (the Flask test client, so
the whole WSGI stack runs: ProxyFix, in-flight accounting, the Socket.IO middleware). Only the
shipped modules are loaded: the test-only ``probe`` module fails on purpose.

Bounded for CI: ``MAX_EXAMPLES`` per operation and generation mode, derandomized (the same
examples on every run), no shrinking, no example database, and Hypothesis' caches in a temp
directory (nothing written to the work tree).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from core.testing import AppFactory, bearer, problem
from modules.api_keys.testing import create_api_key
from modules.auth.testing import admin_tokens, login

MAX_EXAMPLES = 25
FUZZ_SETTINGS = {
    "MODULES_PACKAGES": "modules",
    # A 429 would only hide the operation behind it. High RATE_LIMIT_* values are not enough:
    # actions carry their own limits (notes.create: 10/second), and Schemathesis' auth probes
    # (calls without or with a bad credential) count against them before the 401. Revocation
    # checks stay on with limits off (docs/ratelimit.md).
    "RATE_LIMIT_ENABLED": "false",
    "LOGIN_MAX_FAILURES": "1000000",
}
PROBLEM_FIELDS = ("type", "title", "status", "detail", "code", "request_id")
_CODE = re.compile(r"[A-Z][A-Z0-9_]*")
MAINTENANCE = "POST /userauth/admin/maintenance"
LOGOUT = "POST /userauth/logout"


def _header(response: Any, name: str) -> str | None:
    value = response.headers.get(name) or response.headers.get(name.lower())
    return value[0] if isinstance(value, list) else value


def problem_document(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx/5xx answer is ``application/problem+json`` with the problem fields."""
    if response.status_code < 400:
        return
    label = f"{case.operation.label} answered {response.status_code}"
    content_type = _header(response, "Content-Type")
    assert content_type == "application/problem+json", f"{label} as {content_type!r}"
    body = response.json()
    assert isinstance(body, dict), f"{label}: the body is not an object"
    missing = [field for field in PROBLEM_FIELDS if field not in body]
    assert not missing, f"{label}: a problem without {missing}"
    assert body["status"] == response.status_code, f"{label}: status {body['status']!r}"
    assert _CODE.fullmatch(str(body["code"])), f"{label}: code {body['code']!r}"
    for field in ("title", "detail"):
        assert isinstance(body[field], str), f"{label}: {field} {body[field]!r}"
        assert body[field], f"{label}: empty {field}"
    assert str(body["type"]).endswith(body["code"]), f"{label}: type {body['type']!r}"
    assert body["request_id"] == _header(response, "X-Request-ID"), f"{label}: request_id"


CHECKS: dict[GenerationMode, list[Callable[..., Any]]] = {
    GenerationMode.POSITIVE: [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        ignored_auth,
        problem_document,
    ],
    GenerationMode.NEGATIVE: [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        negative_data_rejection,
        problem_document,
    ],
}


@pytest.fixture(autouse=True, scope="module")
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis keeps caches under ./.hypothesis unless told otherwise."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


class Credentials:
    """What the fuzzer sends for each operation: the credential its security asks for."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.client = client
        self.admin = admin_tokens(app, client)
        self.api_key = create_api_key(client, self.admin["access_token"], ["fuzz"])["key"]
        self.logins = 0

    def headers(self, operation: Any) -> dict[str, str]:
        schemes = {name for entry in operation.definition.raw.get("security", []) for name in entry}
        headers = {}
        if "bearerAuth" in schemes:
            token = self.admin["access_token"]
            if operation.label == LOGOUT:
                # Logging out revokes the whole login: each logout gets a login of its own, so
                # the admin's token keeps working for the operations after it.
                token = login(self.client, self.admin["user"]["email"])["access_token"]
                self.logins += 1
            headers["Authorization"] = f"Bearer {token}"
        if "apiKeyAuth" in schemes:
            headers["X-API-Key"] = self.api_key
        return headers

    def after(self, operation: Any) -> None:
        if operation.label == MAINTENANCE:
            # The fuzzer may switch maintenance on; every other operation would then be 503.
            off = self.client.post(
                "/userauth/admin/maintenance",
                json={"enabled": False},
                headers=bearer(self.admin["access_token"]),
            )
            assert off.status_code == 200, off.get_data(as_text=True)


def fuzz_operation(
    operation: Any, mode: GenerationMode, credentials: Credentials, calls: dict[str, int]
) -> None:
    """Up to ``MAX_EXAMPLES`` generated calls of ``operation``; raises the first failure."""
    checks = CHECKS[mode]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    def run(case: Any) -> None:
        headers = credentials.headers(operation)
        try:
            response = case.call(headers=headers)
        finally:
            credentials.after(operation)
        calls[operation.label] = calls.get(operation.label, 0) + 1
        case.validate_response(response, checks=checks, headers=headers)

    run()


def fuzz(schema: Any, credentials: Credentials) -> tuple[dict[str, int], dict[str, str]]:
    """Every operation in both modes; the calls made and the failures, by operation."""
    calls: dict[str, int] = {}
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in CHECKS:
            try:
                fuzz_operation(operation, mode, credentials, calls)
            except Unsatisfiable:
                # Negative mode: nothing in the operation can be made invalid (no parameters,
                # or only unconstrained strings).
                assert mode == GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # FailureGroup is a BaseException
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:3000]
    return calls, failures


@pytest.mark.project_wide
@pytest.mark.timeout(360)  # ~35 operations x 2 modes x MAX_EXAMPLES calls; ~90 s on an idle CI box
def test_every_operation_answers_as_documented_and_errors_are_problems(
    make_app: AppFactory,
) -> None:
    app = make_app(FUZZ_SETTINGS)
    client = app.test_client()
    credentials = Credentials(app, client)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    document = client.get("/openapi.json").get_json()
    # Schemathesis leaves out the operation it loaded the schema from (GET /openapi.json).
    documented = {
        f"{method.upper()} {path}"
        for path, ops in document["paths"].items()
        for method in ops
        if path != "/openapi.json"
    }

    calls, failures = fuzz(schema, credentials)

    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
    assert set(calls) == documented  # every route and every action was called
    assert credentials.logins > 0
    # The admin's login survived the fuzzing, so the JWT operations were really authenticated.
    me = client.get("/userauth/me", headers=bearer(credentials.admin["access_token"]))
    assert me.status_code == 200, me.get_data(as_text=True)
    assert client.get("/health/ready").status_code == 200


def test_maintenance_switched_on_by_the_fuzzer_stays_inside_its_test(
    make_app: AppFactory,
) -> None:
    """The fuzzer can switch maintenance on. The state lives in Redis under the app's
    ``REDIS_KEY_PREFIX`` and, as its durable copy, in the app's MongoDB database (collection
    ``states``): both are per test (core/testing/plugin.py), so another test's app never sees it."""
    fuzzed = make_app(FUZZ_SETTINGS)
    uid = uuid.uuid4().hex[:8]
    other = make_app({**FUZZ_SETTINGS, "REDIS_KEY_PREFIX": f"o{uid}:", "MONGODB_DB": f"o_{uid}"})
    client = fuzzed.test_client()
    admin = admin_tokens(fuzzed, client)
    on = client.post(
        "/userauth/admin/maintenance",
        json={"enabled": True, "message": "fuzzing"},
        headers=bearer(admin["access_token"]),
    )
    assert on.status_code == 200

    assert problem(client.post("/actions/system.ping"), 503, "MAINTENANCE")["detail"] == "fuzzing"
    assert other.test_client().post("/actions/system.ping").status_code == 200
