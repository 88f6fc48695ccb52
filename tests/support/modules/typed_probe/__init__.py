"""A test module of typed routes (:class:`core.http.routes.Routes`): body, query, answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.errors import Conflict
from core.http.routes import Routes
from core.managers.websocket import SocketEvents, SocketSession
from core.module import BaseModule

bp = Routes("typed_probe", __name__)


class Tag(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=20)


class NewWidget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=10)
    size: int = Field(ge=1, le=100)
    shape: Literal["round", "square"] = "round"
    tags: list[Tag] = Field(default_factory=list, max_length=3)


class Widget(BaseModel):
    name: str
    size: int
    shape: str
    tags: list[Tag]
    created_at: datetime


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(10, ge=1, le=50)
    color: list[str] = Field(default_factory=list)
    exact: bool = False


class Found(BaseModel):
    limit: int
    color: list[str]
    exact: bool


class Private(BaseModel):
    public: str


@bp.post(
    "/public/typed/widgets",
    body=NewWidget,
    response=Widget,
    status=201,
    errors={"WIDGET_EXISTS": 409},
)
def create_widget(body: NewWidget) -> Widget:
    """Create a widget (echoed back with a timestamp)."""
    if body.name == "taken":
        raise Conflict("There is a widget of that name.", code="WIDGET_EXISTS")
    return Widget(**body.model_dump(), created_at=datetime(2024, 5, 1, 12, tzinfo=UTC))


@bp.get("/public/typed/widgets", query=Filters, response=Found)
def find_widgets(query: Filters) -> Found:
    """Echo the query as parsed."""
    return Found(**query.model_dump())


@bp.delete("/public/typed/widgets/<name>")
def delete_widget(name: str) -> None:
    """An empty 204."""


@bp.get("/public/typed/private", response=Private)
def private() -> dict[str, str]:
    """A dict with a field the model does not declare: it must not leak."""
    return {"public": "yes", "secret": "never sent"}


@bp.get("/public/typed/undocumented", response=Private)
def undocumented() -> tuple[dict[str, str], int]:
    """Answers a status it does not declare: a bug, answered 500."""
    return {"public": "yes"}, 202


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=100)
    tags: list[Tag] = Field(default_factory=list)


class Echoed(BaseModel):
    text: str
    tags: list[Tag]


class Tick(BaseModel):
    n: int


#: A payload given as a JSON Schema with definitions of its own.
POINT = {
    "type": "object",
    "required": ["at"],
    "properties": {"at": {"$ref": "#/$defs/point"}},
    "$defs": {
        "point": {
            "type": "object",
            "required": ["x", "y"],
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
        }
    },
}


class TypedProbeModule(BaseModule):
    blueprint = bp

    def register_socket_handlers(self, events: SocketEvents) -> None:
        @events.on("typed_probe.echo", payload=Echo, ack=Echoed, errors={"ECHO_REFUSED": 409})
        def echo(session: SocketSession, payload: Echo) -> Echoed:
            """Echo the text and tags back."""
            return Echoed(text=payload.text, tags=payload.tags)

        @events.on("typed_probe.point", payload=POINT)
        def point(session: SocketSession, payload: dict[str, Any]) -> None:
            """Take a point (a JSON Schema payload with $defs)."""

        events.emits("typed_probe.tick", Tick, summary="A tick, now and then.")
