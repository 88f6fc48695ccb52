"""``GET /asyncapi.json``: an AsyncAPI 3.0 document of every Socket.IO event of the app.

Built from the app's :class:`~core.managers.websocket.typed.SocketEvents` the first time it is
asked for (events are fixed by then), from the application's point of view:

- each client event (``events.on``) is a channel whose address is the event name and an
  operation ``on.<name>`` with action ``receive``: the payload as its message, the ack as its
  reply (``{"ok": true, ...}`` with the ack model's fields, or the shared ``Refused`` message
  ``{"ok": false, "error": {code, message, errors?}}``), the declared problems as ``x-errors``;
- each server event (``events.emits``) is a channel and an operation ``emit.<name>`` with
  action ``send``.

Schemas are JSON Schema (pydantic models as ``components/schemas``, closed like the ones the
server validates with). The server entry is the host the document was asked on.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, RootModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from core.app_manager import AppManager
from core.edge.principal import PUBLIC
from core.edge.validation import ClosedModels, Schema
from core.http.routes import Routes
from core.managers.websocket.typed import ClientEvent, ServerEvent, SocketEvents

bp = Routes("asyncapi", __name__)

TITLE = "Python Base 04 Socket.IO events"
VERSION = "1"
_SCHEMAS = "#/components/schemas/"
_REFUSED = "Refused"
DESCRIPTION = (
    "Socket.IO (protocol v5, Engine.IO v4) on path `/socket.io/`, default namespace. Connect "
    "with `auth: {token: <access token>}`; a refused connect gets `connect_error` "
    "`{code, message}`. Every client event is answered through its ack: `{ok: true, ...}` or "
    "`{ok: false, error: {code, message}}` (plus `errors` for `VALIDATION_ERROR`)."
)


def install(app: Flask, app_manager: AppManager) -> None:
    """Serve ``/asyncapi.json`` for the events of ``app_manager``'s WebSocketManager."""
    app.extensions["asyncapi"] = AsyncApi(app_manager.websocket.events)
    app.register_blueprint(bp)


class AsyncApi:
    """The document of one app's events, built once."""

    def __init__(self, events: SocketEvents) -> None:
        self.events = events
        self._document: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._document is None:
                self._document = build(self.events)
            return self._document


def build(events: SocketEvents) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``events`` (see the module docstring)."""
    schemas = _Schemas(events)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for name, client in sorted(events.client.items()):
        channel, operation = _client_event(client, schemas)
        channels.setdefault(name, {"address": name, "messages": {}})["messages"].update(channel)
        operations[f"on.{name}"] = operation
    for name, server in sorted(events.server.items()):
        message = _server_event(server, schemas)
        channels.setdefault(name, {"address": name, "messages": {}})["messages"].update(message)
        operations[f"emit.{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{_escape(name)}"},
            "summary": server.summary,
            **({"description": server.description} if server.description else {}),
            "messages": [{"$ref": f"#/channels/{_escape(name)}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {**schemas.definitions, _REFUSED: _refused_schema()},
            "messages": {
                _REFUSED: {
                    "name": _REFUSED,
                    "title": "Refused",
                    "summary": "The event was refused or failed: the problem code and why.",
                    "payload": {"$ref": _SCHEMAS + _REFUSED},
                }
            },
        },
    }


def _client_event(event: ClientEvent, schemas: _Schemas) -> tuple[dict[str, Any], dict[str, Any]]:
    endpoint = event.endpoint
    name = endpoint.name
    channel = f"#/channels/{_escape(name)}"
    request_message = f"{name}.request"
    ack_message = f"{name}.ack"
    messages = {
        request_message: {
            "name": request_message,
            "title": f"{name}",
            "summary": endpoint.summary,
            "payload": schemas.of(endpoint.input, "validation"),
        },
        ack_message: {
            "name": ack_message,
            "title": f"{name} ack",
            "summary": f"The ack of {name}, when it succeeded.",
            "payload": _ack_envelope(schemas.of(endpoint.output, "serialization"), schemas),
        },
        f"{name}.refused": {"$ref": f"#/components/messages/{_REFUSED}"},
    }
    operation: dict[str, Any] = {
        "action": "receive",
        "channel": {"$ref": channel},
        "summary": endpoint.summary,
        "messages": [{"$ref": f"{channel}/messages/{request_message}"}],
        "reply": {
            "channel": {"$ref": channel},
            "messages": [
                {"$ref": f"{channel}/messages/{ack_message}"},
                {"$ref": f"{channel}/messages/{name}.refused"},
            ],
        },
    }
    description = endpoint.description
    if endpoint.errors:
        listed = ", ".join(f"`{code}` ({status})" for code, status in endpoint.errors.items())
        description = f"{description}\n\nProblems: {listed}.".strip()
        operation["x-errors"] = dict(endpoint.errors)
    if endpoint.roles:
        operation["x-roles"] = sorted(endpoint.roles)
    if description:
        operation["description"] = description
    return messages, operation


def _server_event(event: ServerEvent, schemas: _Schemas) -> dict[str, Any]:
    message: dict[str, Any] = {"name": event.name, "title": event.name, "summary": event.summary}
    message["payload"] = schemas.of(event.payload, "serialization")
    return {event.name: message}


def _ack_envelope(answer: Mapping[str, Any], schemas: _Schemas) -> dict[str, Any]:
    """``{"ok": true}`` plus the ack's own fields."""
    fields = schemas.resolve(answer)
    properties = {"ok": {"const": True}, **copy.deepcopy(fields.get("properties", {}))}
    return {
        "type": "object",
        "required": ["ok", *fields.get("required", [])],
        "properties": properties,
        "additionalProperties": False,
    }


def _refused_schema() -> dict[str, Any]:
    error_item = {
        "type": "object",
        "required": ["field", "message"],
        "properties": {
            "field": {"type": "string", "description": "JSON pointer"},
            "message": {"type": "string"},
        },
    }
    return {
        "type": "object",
        "required": ["ok", "error"],
        "properties": {
            "ok": {"const": False},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                    "message": {"type": "string"},
                    "errors": {"type": "array", "maxItems": 20, "items": error_item},
                },
            },
        },
    }


class _Schemas:
    """The schemas of every event: models as components (one per model and mode), JSON
    Schemas given as dicts inline (their ``$defs`` moved to the components)."""

    def __init__(self, events: SocketEvents) -> None:
        pairs: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
        for client in events.client.values():
            payload = client.endpoint.input
            if payload is not None and payload.model is not None:
                pairs[(payload.model, "validation")] = None
            output = client.endpoint.output
            if output is not None and output.model is not None:
                pairs[(output.model, "serialization")] = None
        for server in events.server.values():
            if server.payload is not None and server.payload.model is not None:
                pairs[(server.payload.model, "serialization")] = None
        refs, top = models_json_schema(
            list(pairs), ref_template=_SCHEMAS + "{model}", schema_generator=ClosedModels
        )
        self._refs = refs
        self.definitions: dict[str, Any] = dict(top.get("$defs", {}))
        self._inline = 0

    def of(self, schema: Schema[Any] | None, mode: JsonSchemaMode) -> dict[str, Any]:
        if schema is None:
            return {"type": "object", "properties": {}, "additionalProperties": False}
        if schema.model is not None:
            return dict(self._refs[(schema.model, mode)])
        return self._hoisted(copy.deepcopy(schema.schema))

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """A component's definition for a ``$ref`` to it; any other schema as it is."""
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_SCHEMAS):
            found: Mapping[str, Any] = self.definitions[ref[len(_SCHEMAS) :]]
            return found
        return schema

    def _hoisted(self, schema: dict[str, Any]) -> dict[str, Any]:
        """A dict schema with its ``$defs`` as components and its local refs pointing there."""
        definitions = schema.pop("$defs", {})
        if not definitions:
            return schema
        self._inline += 1
        prefix = f"Inline{self._inline}_"
        renamed = {f"#/$defs/{name}": _SCHEMAS + prefix + name for name in definitions}

        def rewrite(node: Any) -> Any:
            if isinstance(node, dict):
                return {
                    key: renamed.get(value, value) if key == "$ref" else rewrite(value)
                    for key, value in node.items()
                }
            if isinstance(node, list):
                return [rewrite(item) for item in node]
            return node

        for name, definition in definitions.items():
            self.definitions[prefix + name] = rewrite(definition)
        rewritten: dict[str, Any] = rewrite(schema)
        return rewritten


def _escape(name: str) -> str:
    """A key inside a JSON pointer (RFC 6901)."""
    return name.replace("~", "~0").replace("/", "~1")


# -- the route ----------------------------------------------------------------------------


class AsyncApiDocument(RootModel[dict[str, Any]]):
    """An AsyncAPI 3.0 document."""


@bp.get("/asyncapi.json", auth=PUBLIC, response=AsyncApiDocument)
def document() -> ResponseReturnValue:
    """The AsyncAPI 3.0 document of this API's Socket.IO events."""
    asyncapi: AsyncApi = current_app.extensions["asyncapi"]
    scheme = "wss" if request.is_secure else "ws"
    servers = {
        "app": {
            "host": request.host,
            "protocol": scheme,
            "pathname": "/socket.io/",
            "description": "Socket.IO; auth: {token: <a JWT access token>}.",
        }
    }
    return jsonify({**asyncapi.document(), "servers": servers})
