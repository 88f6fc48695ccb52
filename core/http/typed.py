"""Typed routes: a view's body, query and answer declared with pydantic models.

::

    class NewThing(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str = Field(min_length=1, max_length=100)

    @bp.post("/userauth/things")
    @typed(body=NewThing, response=Thing, status=201, errors={409: ["THING_EXISTS"]})
    def create_thing(body: NewThing) -> Thing:
        ...

:func:`typed` validates at the edge, before the view runs, with the one validation path
(:class:`core.edge.validation.Schema`): the model's JSON Schema (objects closed unless the
model says ``extra="allow"``) is validated like an action's params, then the model is built
from the valid data. The JSON body keeps its JSON types (``"5"`` is not an integer, ``"true"``
not a boolean); the query string is text, converted by the types the schema allows
(``?limit=5`` is the integer 5). A failure is the same 400 ``VALIDATION_ERROR`` problem as an
action's, at most 20 errors, each ``{"field": <JSON pointer>, "message"}``. The view gets the
models as the keyword arguments ``body`` and ``query`` (next to the path's).

The view returns its answer: a model instance, or anything the ``response`` model validates
(a dict); it is serialised through the model, so a field the model lacks never leaks. Return
``(answer, status)`` for another documented status (``responses``), ``None`` when ``response``
is ``None`` (an empty answer, 204 by default), or a ``Response``, sent as it is (a non-JSON
answer, ``media_type``). Returning a status that is not documented is a bug: 500, logged.

:mod:`core.http.openapi` reads the same declaration (:class:`RouteSpec`, on the view as
``route_spec``): request body, query parameters, every documented status with its schema and
the problem answers (``errors``: status -> the codes a client can expect) by reference.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flask import Response, request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from core.edge.validation import ClosedModels, Schema
from core.errors import InternalError
from core.http.pipeline import json_body
from core.managers.database.pages import CURSOR_MAX, LIMIT_DEFAULT, LIMIT_MAX

__all__ = ["PageQuery", "Paged", "RouteSpec", "typed"]


logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Model = type[BaseModel]
View = Callable[..., Any]
_CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@dataclass(frozen=True)
class RouteSpec:
    """What :func:`typed` declares about a view; the OpenAPI document is built from it."""

    body: Model | None = None
    query: Model | None = None
    #: The success status and the model of its body (None: no body).
    status: int = 200
    response: Model | None = None
    #: Other statuses answered with a body that is not a problem (e.g. 503 of readiness).
    responses: Mapping[int, Model | None] = field(default_factory=dict)
    #: Problem answers: status -> the ``code`` values a client can expect.
    errors: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    #: Media types of a non-JSON answer (the view returns a ``Response``).
    media_types: tuple[str, ...] = ()
    #: Honours ``Idempotency-Key`` (core.http.idempotency).
    idempotent: bool = False

    def documented(self, status: int) -> bool:
        return status == self.status or status in self.responses


class PageQuery(BaseModel):
    """The query of a paginated list (``?limit=&cursor=``); see
    :func:`core.managers.database.pages.paginate`."""

    model_config = ConfigDict(extra="forbid")
    limit: int = Field(LIMIT_DEFAULT, ge=1, le=LIMIT_MAX)
    #: ``next_cursor`` of the previous page; leave it out for the first page.
    cursor: str | None = Field(None, min_length=1, max_length=CURSOR_MAX)


class Paged(BaseModel, Generic[Item]):
    """A page of a list: ``response=Paged[Thing]``."""

    items: list[Item]
    #: Pass it back as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None


class NoBody(BaseModel):
    """No body: send none, or ``{}``. What a typed route that declares no ``body`` takes: any
    field is refused (400 ``VALIDATION_ERROR``, ``"is not allowed"``), and ``/openapi.json``
    shows no request body."""

    model_config = ConfigDict(extra="forbid")


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def typed(
    *,
    body: Model | None = None,
    query: Model | None = None,
    response: Model | None = None,
    status: int | None = None,
    responses: Mapping[int, Model | None] | None = None,
    errors: Mapping[int, Iterable[str]] | None = None,
    media_type: str | Sequence[str] | None = None,
    idempotent: bool = False,
) -> Callable[[View], View]:
    """Declare a route's body, query and answers; validate and serialise through them.

    ``status`` defaults to 200, or 204 when there is neither a ``response`` model nor a
    ``media_type``. ``errors`` maps a 4xx/5xx status to the problem codes it can carry (the
    framework's own 400/401/403/429/503 are documented without being listed). With
    ``idempotent`` a request carrying ``Idempotency-Key`` runs once per key and caller and its
    retries get the first answer (:mod:`core.http.idempotency`).
    """
    media_types = (media_type,) if isinstance(media_type, str) else tuple(media_type or ())
    spec = RouteSpec(
        body=body,
        query=query,
        status=status or (200 if response is not None or media_types else 204),
        response=response,
        responses=dict(responses or {}),
        errors={code: _codes(code, listed) for code, listed in (errors or {}).items()},
        media_types=media_types,
        idempotent=idempotent,
    )
    if response is not None and media_types:
        raise ValueError("typed(): a response model is JSON; drop media_type or the model")

    query_schema = None if query is None else Schema.of(query)
    body_schema = Schema.of(NoBody if body is None else body)

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if query_schema is not None:
                kwargs["query"] = query_schema.load_query(_query_values())
            if body is not None:
                kwargs["body"] = body_schema.load(json_body())
            elif request.method in _BODY_METHODS:
                body_schema.load(json_body())  # NoBody: nothing, or {}
            return _answer(spec, view, view(*args, **kwargs))

        wrapper.route_spec = spec  # type: ignore[attr-defined]
        return wrapper

    return decorator


def _query_values() -> dict[str, list[str]]:
    """The query string: every name with its values (a list field takes them all)."""
    return request.args.to_dict(flat=False)


def _answer(spec: RouteSpec, view: View, value: Any) -> Any:
    if isinstance(value, Response):  # the view answered itself (a file, a 304...)
        return value
    headers: Any = None
    status = spec.status
    if isinstance(value, tuple):
        value, status, *rest = value
        headers = rest[0] if rest else None
        if not spec.documented(status):
            _undocumented(view, status)
    model = spec.response if status == spec.status else spec.responses.get(status)
    if model is None:
        if value is not None:
            _undocumented(view, status, "a body where none is documented")
        return Response(status=status, headers=headers)
    answer = value if isinstance(value, model) else model.model_validate(value)
    return Response(
        answer.model_dump_json(by_alias=True), status, headers, mimetype="application/json"
    )


def _undocumented(view: View, status: int, what: str = "") -> None:
    logger.error(
        "typed route answered outside its declaration",
        extra={"view": getattr(view, "__qualname__", str(view)), "status": status, "what": what},
    )
    raise InternalError("An unexpected error occurred.")


def _codes(status: int, codes: Iterable[str]) -> tuple[str, ...]:
    listed = tuple(codes)
    if isinstance(codes, str) or not 400 <= status <= 599:
        raise ValueError(f"typed(errors=...): {status}: a 4xx/5xx status and a list of codes")
    bad = [code for code in listed if not code or not set(code) <= _CODE_CHARS]
    if bad:
        raise ValueError(f"typed(errors=...): {status}: codes are UPPER_SNAKE, not {bad}")
    return listed


# -- the declaration in /openapi.json -------------------------------------------------------

_REF = "#/components/schemas/{model}"
_PROBLEM_REF = "#/components/responses/Problem"
_VALIDATION_CODES = {"body": ("VALIDATION_ERROR", "INVALID_JSON"), "query": ("VALIDATION_ERROR",)}


def route_spec(view: Any) -> RouteSpec | None:
    """The :class:`RouteSpec` of a view (through other decorators), if it is typed."""
    spec = getattr(view, "route_spec", None)
    return spec if isinstance(spec, RouteSpec) else None


class ModelSchemas:
    """The JSON Schemas of every model of the typed routes, as one set of components: a model
    used by two routes is one schema, and pydantic tells same-named models apart."""

    def __init__(self, specs: Iterable[RouteSpec]) -> None:
        pairs: dict[tuple[Model, JsonSchemaMode], None] = {}
        for spec in specs:
            for model in (spec.body, spec.query):
                if model is not None:
                    pairs[(model, "validation")] = None
            for model in (spec.response, *spec.responses.values()):
                if model is not None:
                    pairs[(model, "serialization")] = None
        refs, top = models_json_schema(
            list(pairs), ref_template=_REF, schema_generator=ClosedModels
        )
        self._refs = refs
        self.definitions: dict[str, Any] = dict(top.get("$defs", {}))

    def ref(self, model: Model, mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(self._refs[(model, mode)])

    def definition(self, model: Model, mode: JsonSchemaMode) -> dict[str, Any]:
        name = self._refs[(model, mode)]["$ref"].rpartition("/")[2]
        schema: dict[str, Any] = self.definitions[name]
        return schema


def typed_operation(
    spec: RouteSpec,
    models: ModelSchemas,
    responses: Mapping[str, Any],
    more_errors: Mapping[int, Iterable[str]] | None = None,
) -> dict[str, Any]:
    """The parts of an OpenAPI operation a typed route declares: ``requestBody``, the query
    ``parameters`` and ``responses`` (``responses`` holds the auth problems already)."""
    operation: dict[str, Any] = {}
    answers = {status: value for status, value in responses.items() if status != "2XX"}
    answers[str(spec.status)] = _success(spec.status, spec.response, spec.media_types, models)
    for status, model in spec.responses.items():
        answers[str(status)] = _success(status, model, (), models)
    errors: dict[int, list[str]] = {}
    if spec.body is not None:
        operation["requestBody"] = {
            "required": any(f.is_required() for f in spec.body.model_fields.values()),
            "content": {"application/json": {"schema": models.ref(spec.body, "validation")}},
        }
        errors.setdefault(400, []).extend(_VALIDATION_CODES["body"])
    if spec.query is not None:
        operation["parameters"] = _query_parameters(models.definition(spec.query, "validation"))
        errors.setdefault(400, []).extend(_VALIDATION_CODES["query"])
    for status, codes in [*spec.errors.items(), *(more_errors or {}).items()]:
        errors.setdefault(status, []).extend(codes)
    answers.update(problem_answers(errors))
    operation["responses"] = dict(sorted(answers.items()))
    return operation


def problem_answers(errors: Mapping[int, Iterable[str]]) -> dict[str, Any]:
    """OpenAPI responses for problem answers, ``status -> codes``: the problem by reference,
    described by the codes a client can expect."""
    answers = {}
    for status, codes in sorted(errors.items()):
        listed = ", ".join(f"`{code}`" for code in dict.fromkeys(codes))
        answers[str(status)] = {"$ref": _PROBLEM_REF, "description": f"A problem: {listed}."}
    return answers


def _success(
    status: int, model: Model | None, media_types: Sequence[str], models: ModelSchemas
) -> dict[str, Any]:
    if model is not None:
        schema = models.ref(model, "serialization")
        return {"description": "Success.", "content": {"application/json": {"schema": schema}}}
    if media_types:
        content = {media: {"schema": {"type": "string"}} for media in media_types}
        return {"description": "Success.", "content": content}
    return {"description": "Success, no content."}


def _query_parameters(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    parameters = []
    for name, property_schema in schema.get("properties", {}).items():
        parameter = {"name": name, "in": "query", "required": name in required}
        if "description" in property_schema:  # where documentation viewers show it
            parameter["description"] = property_schema["description"]
        parameters.append({**parameter, "schema": property_schema})
    return parameters
