"""``GET /openapi.json`` (OpenAPI 3.1) and the Swagger UI page at ``/docs``.

The document is built from the app itself the first time it is asked for: every rule of
``app.url_map`` with its endpoint's auth policy (``Routing.endpoints``) as a security
requirement, and every action as ``POST /actions/<name>`` with its params schema as the
request body and ``{"result": ...}`` as the response. Errors are problem documents
(``application/problem+json``). The route ``/actions/{name}`` itself stays listed too.

``/docs`` serves Swagger UI from the installed ``swagger-ui-py`` package (no CDN), is on outside
``prod`` unless ``DOCS_ENABLED`` says otherwise, and sends its own Content-Security-Policy
(scripts and styles from this origin only), which the pipeline's default leaves alone.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, jsonify, send_from_directory, url_for
from flask.typing import ResponseReturnValue
from markupsafe import escape
from pydantic import RootModel
from werkzeug.routing import Rule

from core.edge.docstrings import markdown
from core.edge.endpoint import Endpoint, summary_of
from core.edge.principal import API_KEY, JWT, JWT_OR_API_KEY, OPERATOR, OPTIONAL, PUBLIC
from core.errors import NotFound, StartupError
from core.http import idempotency
from core.http.pipeline import content_security_policy
from core.http.routes import ENDPOINTS, Routes
from core.http.typed import ModelSchemas, problem_answers, typed_operation
from core.managers.actions import Action

if TYPE_CHECKING:
    from core.app_manager import AppManager
    from core.http.routing import Routing

bp = Routes("openapi", __name__)
docs_bp = Routes("docs", __name__)

TITLE = "Python Base 04 API"
API_VERSION = "1"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
#: The Swagger UI files /docs needs, out of everything the package ships.
DOCS_ASSETS = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "index.css",
        "favicon-16x16.png",
        "favicon-32x32.png",
    }
)
#: What the Swagger UI files are served as (``.js`` differs between Python versions).
_ASSET_TYPES = ("text/css", "text/javascript", "application/javascript", "image/png")
_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}
_PROBLEM = {"$ref": "#/components/responses/Problem"}
_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})


def install(app: Flask, app_manager: AppManager, routing: Routing) -> None:
    """Serve ``/openapi.json`` always and ``/docs`` when enabled (default: outside prod)."""
    app.extensions["openapi"] = OpenApi(app, app_manager, routing)
    app.register_blueprint(bp)
    settings = app_manager.settings
    enabled = settings.docs_enabled if settings.docs_enabled is not None else not settings.is_prod
    if enabled:
        app.extensions["swagger_ui_assets"] = swagger_ui_assets()
        app.register_blueprint(docs_bp)


def swagger_ui_assets() -> Path:
    """The directory of the Swagger UI files shipped by ``swagger-ui-py``."""
    spec = importlib.util.find_spec("swagger_ui")
    locations = list(spec.submodule_search_locations or []) if spec else []
    directory = Path(locations[0]) / "static" if locations else None
    if directory is None or not all((directory / name).is_file() for name in DOCS_ASSETS):
        raise StartupError(
            "/docs needs the swagger-ui-py package (pip install -r requirements.txt), "
            "or set DOCS_ENABLED=false"
        )
    return directory


class OpenApi:
    """The app's OpenAPI document, built once on first use (routes are fixed by then)."""

    def __init__(self, app: Flask, app_manager: AppManager, routing: Routing) -> None:
        self.app = app
        self.app_manager = app_manager
        self.routing = routing
        self._document: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._document is None:
                self._document = self.build()
            return self._document

    def build(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        rules = sorted(self.app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))
        declared: Mapping[str, Endpoint] = self.app.extensions.get(ENDPOINTS, {})
        endpoints = self.routing.endpoints
        models = ModelSchemas(endpoints[name] for name in declared if name in endpoints)
        for rule in rules:
            path, parameters = openapi_path(rule)
            endpoint = endpoints[rule.endpoint]
            typed = rule.endpoint in declared
            view = self.app.view_functions.get(rule.endpoint)
            for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
                operation = self._route_operation(rule, method.lower(), view, endpoint, typed)
                if typed:
                    more = idempotency.ERRORS if endpoint.idempotent else None
                    responses = operation["responses"]
                    operation.update(typed_operation(endpoint, models, responses, more))
                    if endpoint.idempotent:
                        operation.setdefault("parameters", []).append(idempotency.PARAMETER)
                parameters = parameters + operation.pop("parameters", [])
                if parameters:
                    operation["parameters"] = parameters
                paths.setdefault(path, {})[method.lower()] = operation
        for action in self.app_manager.actions.all():
            paths.setdefault(f"/actions/{action.name}", {})["post"] = action_operation(action)
        return {
            "openapi": "3.1.0",
            "info": {
                "title": TITLE,
                "version": API_VERSION,
                "description": "Errors are RFC 9457 problem documents with a stable `code`.",
            },
            "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
            "paths": paths,
            "components": _components(models.definitions),
        }

    def _route_operation(
        self, rule: Rule, method: str, view: Any, endpoint: Endpoint, typed: bool
    ) -> dict[str, Any]:
        policy = endpoint.auth or PUBLIC
        if typed:
            summary = endpoint.summary
        else:
            summary = summary_of(getattr(view, "__doc__", None), rule.endpoint)[0]
        operation: dict[str, Any] = {
            "operationId": f"{rule.endpoint}.{method}",
            "summary": markdown(summary),
            "tags": [rule.endpoint.partition(".")[0] if "." in rule.endpoint else "app"],
            "security": self._security(policy),
            "responses": {"2XX": {"description": "Success."}, "default": _PROBLEM},
        }
        if policy != PUBLIC:
            operation["responses"]["401"] = _PROBLEM
        if endpoint.roles or endpoint.scopes:
            operation["responses"]["403"] = _PROBLEM
        if method in ("post", "put", "patch") and not typed:
            operation["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        return operation

    def _security(self, policy: str) -> list[dict[str, list[str]]]:
        if policy == OPERATOR:
            return [{"operatorToken": []}] if self.app_manager.settings.metrics_token else []
        return security_of(policy)


_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    PUBLIC: [],
    # Anyone; a credential, when sent, names the caller (an empty requirement: none needed).
    OPTIONAL: [{}, {"bearerAuth": []}, {"apiKeyAuth": []}],
    JWT: [{"bearerAuth": []}],
    API_KEY: [{"apiKeyAuth": []}],
    JWT_OR_API_KEY: [{"bearerAuth": []}, {"apiKeyAuth": []}],
}


def security_of(auth: str) -> list[dict[str, list[str]]]:
    """The security requirement of an auth policy (alternatives are separate entries)."""
    return _SECURITY[auth]


def openapi_path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    """``/userauth/api-keys/<key_id>`` -> ``/userauth/api-keys/{key_id}`` and its parameters."""
    parameters = [
        {
            "name": match["name"],
            "in": "path",
            "required": True,
            "schema": _CONVERTER_SCHEMAS.get(match["converter"] or "", {"type": "string"}),
        }
        for match in _ARGUMENT.finditer(rule.rule)
    ]
    return _ARGUMENT.sub(lambda m: "{" + m["name"] + "}", rule.rule), parameters


def refusal_codes(auth: str, roles: frozenset[str], scopes: frozenset[str]) -> list[str]:
    """The 403 codes a caller can meet (``core.edge.principal.refusal``): FORBIDDEN for a
    missing role or the wrong kind of caller, INSUFFICIENT_SCOPE for an API key's scopes."""
    codes = []
    if roles or auth in (JWT, API_KEY):
        codes.append("FORBIDDEN")
    if scopes and auth in (API_KEY, JWT_OR_API_KEY):
        codes.append("INSUFFICIENT_SCOPE")
    return codes


def action_operation(action: Action) -> dict[str, Any]:
    """``POST /actions/<name>``: the params schema in, ``{"result": ...}`` out."""
    responses: dict[str, Any] = {
        "200": {
            "description": "The action ran; its result.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["result"],
                        "properties": {"result": {} if action.result is None else action.result},
                    }
                }
            },
        },
        "400": _PROBLEM,
        "default": _PROBLEM,
    }
    if action.auth != PUBLIC:
        responses["401"] = _PROBLEM
        responses["403"] = _PROBLEM
    if action.rate_limit:
        responses["429"] = _PROBLEM
    declared: dict[int, list[str]] = {}
    refused = refusal_codes(action.auth, action.roles, action.scopes)
    if refused:
        declared[403] = refused
    parameters: list[dict[str, Any]] = []
    if action.idempotent:
        parameters.append(idempotency.PARAMETER)
        declared[400] = ["VALIDATION_ERROR", "INVALID_JSON"]  # listed with the key's own
        for status, codes in idempotency.ERRORS.items():
            declared.setdefault(status, []).extend(codes)
    for code, status in action.errors.items():
        declared.setdefault(status, []).append(code)
    responses.update(problem_answers(declared))
    requirements = [f"{name}: {value}" for name, value in action.requirements()]
    return {
        "operationId": f"action.{action.name}",
        "summary": markdown(action.description.strip().splitlines()[0]),
        "description": markdown(action.description.strip()) + "\n\n" + "; ".join(requirements),
        "tags": ["actions"],
        "security": security_of(action.auth),
        "requestBody": {
            "required": bool(action.params.get("required")),
            "content": {"application/json": {"schema": _standalone(action.params, action.name)}},
        },
        "responses": responses,
        **({"parameters": parameters} if parameters else {}),
        "x-action": {
            "auth": action.auth,
            "roles": sorted(action.roles),
            "scopes": sorted(action.scopes),
            "rate_limit": action.rate_limit,
        },
    }


def _standalone(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """Local ``$ref``s (``#/$defs/x``) resolve against the schema itself only with an ``$id``."""
    if "$defs" in schema and "$id" not in schema:
        return {"$id": f"urn:python-base-04:action:{name}:params", **schema}
    return schema


def _components(schemas: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A JWT access token, issued by the module that logs users in.",
            },
            "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "operatorToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "METRICS_TOKEN (operator endpoints).",
            },
        },
        "schemas": {
            **schemas,
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail", "code", "request_id"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                    "request_id": {"type": ["string", "null"]},
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["field", "message"],
                            "properties": {
                                "field": {"type": "string", "description": "JSON pointer"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
        "responses": {
            "Problem": {
                "description": "An RFC 9457 problem document.",
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            }
        },
    }


# -- routes -------------------------------------------------------------------------------


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""


@bp.get("/openapi.json", auth=PUBLIC, response=OpenApiDocument)
def document() -> ResponseReturnValue:
    """The OpenAPI 3.1 document of this API."""
    openapi: OpenApi = current_app.extensions["openapi"]
    return jsonify(openapi.document())


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{css}">
<link rel="stylesheet" href="{index_css}">
<link rel="icon" type="image/png" href="{icon}">
</head>
<body>
<div id="swagger-ui" data-url="{spec}"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"""

_INIT_JS = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.url,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""


content_security_policy(docs_bp, DOCS_CSP)


@docs_bp.get("/docs", auth=PUBLIC, media_type="text/html")
def page() -> ResponseReturnValue:
    """Swagger UI for this API."""

    def asset(name: str) -> str:
        return str(escape(url_for("docs.asset", filename=name)))

    html = _PAGE.format(
        title=escape(TITLE),
        css=asset("swagger-ui.css"),
        index_css=asset("index.css"),
        icon=asset("favicon-32x32.png"),
        spec=escape(url_for("openapi.document")),
        bundle=asset("swagger-ui-bundle.js"),
        init=escape(url_for("docs.initializer")),
    )
    return Response(html, mimetype="text/html")


@docs_bp.get("/docs/swagger-initializer.js", auth=PUBLIC, media_type="text/javascript")
def initializer() -> ResponseReturnValue:
    """Starts Swagger UI on /openapi.json (a file, so the CSP needs no inline script)."""
    return Response(_INIT_JS, mimetype="text/javascript")


@docs_bp.get(
    "/docs/assets/<filename>", auth=PUBLIC, media_type=_ASSET_TYPES, errors={"NOT_FOUND": 404}
)
def asset(filename: str) -> ResponseReturnValue:
    """A Swagger UI file from the installed package."""
    if filename not in DOCS_ASSETS:
        raise NotFound("No such file.")
    directory: Path = current_app.extensions["swagger_ui_assets"]
    return send_from_directory(directory, filename, max_age=86400)
