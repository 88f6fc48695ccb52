"""Typed Socket.IO events: what ``register_socket_handlers(events)`` gets.

::

    class Count(BaseModel):
        count: int

    class ShelfModule(BaseModule):
        def register_socket_handlers(self, events: SocketEvents) -> None:
            @events.on("shelf.count", ack=Count, summary="How many items the user has.")
            def count(session: SocketSession, payload: None) -> Count:
                return Count(count=store().count_for(session.user_id))

            events.emits("shelf.changed", ShelfChanged, summary="An item was added or removed.")

A client event (:meth:`SocketEvents.on`) compiles to one :class:`~core.edge.endpoint.Endpoint`
(kind ``event``): the framework admits the caller (a connected user; the socket level's limit
and the event's own, roles), validates the payload against its schema through the one
validation path (400-style ``VALIDATION_ERROR`` in the ack, at most 20 errors), calls
``handler(session, payload)`` with the model (or the dict, for a JSON Schema given as a dict;
``None`` when the event takes no payload: any object without fields) and answers the ack:
``{"ok": true, **ack}``, the handler's return serialised through the ``ack`` model (a field the
model lacks never leaves). A raised ``ApiError`` is ``{"ok": false, "error": {code, message}}``.

A server event (:meth:`SocketEvents.emits`) is declared with the model of its data; the
WebSocketManager emits only declared events. ``GET /asyncapi.json`` lists both kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from core.edge.endpoint import (
    Endpoint,
    LimitSource,
    declared_errors,
    frozen,
    summary_of,
)
from core.edge.principal import JWT, Principal
from core.edge.validation import Schema

__all__ = ["ClientEvent", "EventHandler", "ServerEvent", "SocketEvents", "SocketSession"]


@dataclass(frozen=True)
class SocketSession:
    """Who is on a socket, from the token that opened it."""

    sid: str
    user_id: str
    username: str
    claims: Mapping[str, Any]
    #: The address it connected from, as the ``ip`` rate-limit level counts it (bans).
    ip: str = ""

    @property
    def user(self) -> dict[str, str]:
        return {"user_id": self.user_id, "username": self.username}

    @property
    def principal(self) -> Principal:
        """The user, as routes and actions see their caller (roles from the token)."""
        return Principal(
            "user",
            self.user_id,
            self.username,
            roles=frozenset(self.claims.get("roles", ())),
            claims=self.claims,
        )


#: ``handler(session, payload) -> ack`` (a model of ``ack``, a dict it validates, or None).
EventHandler = Callable[[SocketSession, Any], Any]
H = TypeVar("H", bound=EventHandler)
#: The payload of an event that takes none: an object without fields.
NO_PAYLOAD: Mapping[str, Any] = {"type": "object", "properties": {}}
#: Names Socket.IO uses itself; an event may not take them.
RESERVED = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


@dataclass(frozen=True)
class ClientEvent:
    """An event a client sends, answered through its ack."""

    endpoint: Endpoint
    handler: EventHandler
    #: Whether the handler is given a payload (False: the event takes none).
    takes_payload: bool


@dataclass(frozen=True)
class ServerEvent:
    """An event the server sends to clients."""

    name: str
    payload: Schema[Any] | None
    summary: str = ""
    description: str = ""


class SocketEvents:
    """The Socket.IO events of one app: client events (:meth:`on`) and server events
    (:meth:`emits`); ``on_declared(event)`` wires each client event into the server."""

    def __init__(self, on_declared: Callable[[ClientEvent], None]) -> None:
        self._on_declared = on_declared
        #: Client -> server events, by name.
        self.client: dict[str, ClientEvent] = {}
        #: Server -> client events, by name.
        self.server: dict[str, ServerEvent] = {}

    def on(
        self,
        name: str,
        *,
        payload: type[BaseModel] | Mapping[str, Any] | None = None,
        ack: type[BaseModel] | Mapping[str, Any] | None = None,
        errors: Mapping[str, int] | None = None,
        auth: str = JWT,
        roles: Iterable[str] | None = None,
        limits: Mapping[str, LimitSource] | None = None,
        rate_limit: LimitSource | None = None,
        summary: str | None = None,
        description: str | None = None,
        open_in_maintenance: bool = False,
    ) -> Callable[[H], H]:
        """Declare the client event ``name`` and its handler (see the module docstring).

        ``payload``/``ack``: a pydantic model or a JSON Schema (dict); ``errors``: the problem
        codes the handler answers with, ``{"CODE": status}``; ``limits``: ``{"socket": ...}``
        replaces the socket level's default for this event; ``rate_limit``: the event's own
        limit per user, on top of it; ``summary``: else the handler's first docstring line.
        """
        _check_name(name, self.client, "client")

        def decorator(handler: H) -> H:
            said = summary_of(handler.__doc__, name, summary, description)
            event = ClientEvent(
                Endpoint(
                    kind="event",
                    name=name,
                    summary=said[0],
                    description=said[1],
                    auth=auth,
                    roles=frozen(roles),
                    limits=dict(limits or {}),
                    rate_limit=rate_limit,
                    input=Schema.of(NO_PAYLOAD if payload is None else payload),
                    output=None if ack is None else Schema.of(ack),
                    errors=declared_errors(f"event {name}", errors),
                    open_in_maintenance=open_in_maintenance,
                ),
                handler,
                takes_payload=payload is not None,
            )
            self.client[name] = event
            self._on_declared(event)
            return handler

        return decorator

    def emits(
        self,
        name: str,
        payload: type[BaseModel] | Mapping[str, Any] | None = None,
        *,
        summary: str = "",
        description: str = "",
    ) -> None:
        """Declare that the server sends ``name`` with data of ``payload`` (a model or a JSON
        Schema; None: no data)."""
        _check_name(name, self.server, "server")
        self.server[name] = ServerEvent(
            name,
            None if payload is None else Schema.of(payload),
            summary or name,
            description,
        )

    def ack(self, event: ClientEvent, value: Any) -> dict[str, Any]:
        """The ack of a handler's return: ``{"ok": true}`` plus the ``ack`` model's fields."""
        schema = event.endpoint.output
        if schema is None or schema.model is None:
            fields = {} if value is None else dict(value)
        else:
            model = schema.model
            answer = value if isinstance(value, model) else model.model_validate(value)
            fields = answer.model_dump(mode="json", by_alias=True)
        return {"ok": True, **fields}


def _check_name(name: str, taken: Mapping[str, Any], kind: str) -> None:
    if not name or name in RESERVED:
        raise ValueError(f"{name!r} cannot name a socket event (Socket.IO uses it)")
    if name in taken:
        raise ValueError(f"{kind} socket event {name!r} is declared twice")
