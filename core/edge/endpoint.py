"""One endpoint spec for the three doors: a typed route, a YAML action, a Socket.IO event.

An :class:`Endpoint` is pure data: what the endpoint is called, who may call it, how often,
what it takes and answers, which problems it declares, and the flags the pipeline reads. The
route decorator, the action loader and ``events.on`` each compile their declaration to one;
admission, validation, OpenAPI and AsyncAPI read it, so a fact is written once.

Errors are declared in one form everywhere, ``{"CODE": status}`` (as YAML actions do). A limit
is a limit string (``"5/minute"``) or :class:`Setting` naming the setting it is read from at
start-up (``Setting("RATE_LIMIT_LOGIN")``, core's or a module's, by its public name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from core.edge.docstrings import markdown
from core.edge.principal import ANONYMOUS, JWT, POLICIES
from core.edge.validation import Schema

__all__ = [
    "LIMIT_LEVELS",
    "Endpoint",
    "Kind",
    "LimitSource",
    "Setting",
    "declared_errors",
    "frozen",
    "summary_of",
]

Kind = Literal["route", "action", "event"]
#: The levels whose default limits an endpoint may replace (``limits={"ip": "5/minute"}``).
LIMIT_LEVELS = ("ip", "user", "api_key", "socket")
_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Setting:
    """A limit read from a setting at start-up, by its public name (``RATE_LIMIT_LOGIN``)."""

    name: str


#: A limit string (``"20/second;600/minute"``) or the setting holding one.
LimitSource: TypeAlias = str | Setting


@dataclass(frozen=True)
class Endpoint:
    """Everything the framework knows about one endpoint; see the module docstring."""

    kind: Kind
    #: The Flask endpoint (``auth.login``), the action (``notes.create``) or the event name.
    name: str
    summary: str = ""
    description: str = ""
    #: The auth policy (``core.edge.principal``); None for a route under a prefix that decides
    #: (``/public/``, ``/userauth/``, ``/keyauth/``), resolved when the app is built.
    auth: str | None = None
    #: Users must have every role; API keys every scope.
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    #: Level -> the limits replacing that level's defaults for this endpoint, counted in a
    #: bucket of the endpoint.
    limits: Mapping[str, LimitSource] = field(default_factory=dict)
    #: The endpoint's own limit, counted per caller on top of the levels' (an action's
    #: ``rate_limit``, an event's ``rate_limit``).
    rate_limit: LimitSource | None = None
    #: The body (route), params (action) or payload (event).
    input: Schema[Any] | None = None
    #: The query string (routes).
    query: Schema[Any] | None = None
    #: The success answer: a route's response, an action's result, an event's ack.
    output: Schema[Any] | None = None
    #: The success status (routes).
    status: int = 200
    #: Other statuses answered with a body that is not a problem (routes: 503 of readiness).
    responses: Mapping[int, Schema[Any] | None] = field(default_factory=dict)
    #: Media types of a non-JSON answer (routes).
    media_types: tuple[str, ...] = ()
    #: The problems it answers with besides the framework's own: ``{"CODE": status}``.
    errors: Mapping[str, int] = field(default_factory=dict)
    #: Out of rate limiting (and bans).
    rate_limit_exempt: bool = False
    #: Served while maintenance mode is on (health, metrics, the switch itself).
    open_in_maintenance: bool = False
    #: Safe to retry with the same input (an idempotency key may be honoured).
    idempotent: bool = False

    def __post_init__(self) -> None:
        if self.auth is not None and self.auth not in POLICIES:
            raise ValueError(
                f"{self.name}: unknown auth policy {self.auth!r}; use one of {sorted(POLICIES)}"
            )
        unknown = set(self.limits) - set(LIMIT_LEVELS)
        if unknown:
            raise ValueError(
                f"{self.name}: limits for unknown levels {sorted(unknown)}; "
                f"use {', '.join(LIMIT_LEVELS)}"
            )
        if self.kind == "event" and self.auth not in (None, JWT):
            raise ValueError(f"{self.name}: socket events are called by users (auth jwt)")
        if (self.roles or self.scopes) and self.auth in ANONYMOUS:
            raise ValueError(f"{self.name}: an endpoint open to anyone cannot require roles")

    def errors_by_status(self) -> dict[int, list[str]]:
        """``{status: [codes]}`` of the declared problems, for documents."""
        by_status: dict[int, list[str]] = {}
        for code, status in self.errors.items():
            by_status.setdefault(status, []).append(code)
        return by_status


def declared_errors(owner: str, errors: Mapping[str, int] | None) -> dict[str, int]:
    """``errors`` checked: UPPER_SNAKE codes, each with a 4xx or 5xx status."""
    checked: dict[str, int] = {}
    for code, status in (errors or {}).items():
        if not isinstance(code, str) or not _CODE.match(code):
            raise ValueError(f"{owner}: errors: codes are UPPER_SNAKE, not {code!r}")
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise ValueError(f"{owner}: errors: {code} needs a 4xx or 5xx status, not {status!r}")
        checked[code] = status
    return checked


def summary_of(
    doc: str | None, fallback: str, summary: str | None = None, description: str | None = None
) -> tuple[str, str]:
    """``(summary, description)``: those given, else from a docstring (its first line, and the
    whole text, with reST markup written as Markdown: :func:`~core.edge.docstrings.markdown`),
    else ``fallback`` and nothing."""
    text = markdown((doc or "").strip())
    first, whole = (text.splitlines()[0].strip(), _dedent(text)) if text else (fallback, "")
    return summary or first, whole if description is None else description


def frozen(values: Iterable[str] | str | None) -> frozenset[str]:
    """Roles or scopes given as a string or any iterable of strings."""
    if values is None:
        return frozenset()
    return frozenset([values] if isinstance(values, str) else values)


def _dedent(text: str) -> str:
    lines = text.splitlines()
    rest = [line for line in lines[1:] if line.strip()]
    indent = min((len(line) - len(line.lstrip()) for line in rest), default=0)
    return "\n".join([lines[0].strip(), *(line[indent:] for line in lines[1:])]).strip()
