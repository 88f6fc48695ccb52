"""Typed routes at run time: a route's body and query validated, its answer serialised, as its
:class:`~core.edge.endpoint.Endpoint` says (declared with :class:`core.http.routes.Routes`).

The body and query are validated at the edge, before the view runs, with the one validation
path (:class:`core.edge.validation.Schema`): the model's JSON Schema (objects closed unless the
model says ``extra="allow"``) is validated like an action's params, then the model is built
from the valid data. The JSON body keeps its JSON types (``"5"`` is not an integer, ``"true"``
not a boolean); the query string is text, converted by the types the schema allows
(``?limit=5`` is the integer 5). A failure is the same 400 ``VALIDATION_ERROR`` problem as an
action's, at most 20 errors, each ``{"field": <JSON pointer>, "message"}``. The view gets the
models as the keyword arguments ``body`` and ``query`` (next to the path's). A write route
that declares no body takes none (:class:`NoBody`); one that hands its body on to what
validates it declares :class:`JsonObject` and gets the parsed object as sent.

The view returns its answer: a model instance, or anything the ``response`` model validates
(a dict); it is serialised through the model, so a field the model lacks never leaks. Return
``(answer, status)`` for another documented status (``responses``), ``None`` when ``response``
is ``None`` (an empty answer, 204 by default), or a ``Response``, sent as it is (a non-JSON
answer, ``media_type``). Returning a status that is not documented is a bug: 500, logged.

:mod:`core.http.openapi` documents the same endpoints: request body, query parameters, every
documented status with its schema and the problem answers (``errors``) by reference.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from flask import Response, request
from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from core.edge.endpoint import Endpoint
from core.edge.validation import ClosedModels, Schema
from core.errors import InternalError
from core.http.pipeline import json_body
from core.managers.database.pages import CURSOR_MAX, LIMIT_DEFAULT, LIMIT_MAX

__all__ = ["JsonObject", "NoBody", "PageQuery", "Paged", "typed_view"]


logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Model = type[BaseModel]
View = Callable[..., Any]


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


class JsonObject(RootModel[dict[str, Any]]):
    """Any JSON object, handed to the view as the ``dict`` the pipeline parsed (not rebuilt,
    not validated again here): for a route that hands its body on to what validates it, as
    ``POST /actions/<name>`` hands it to the action's params schema (one validation, in the
    executor). The pipeline has refused anything but an object already."""


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NO_BODY = Schema.of(NoBody)


def typed_view(endpoint: Endpoint, view: View) -> View:
    """``view`` validating its input and answering as ``endpoint`` declares."""
    query_schema, body_schema = endpoint.query, endpoint.input
    body_model = body_schema.model if body_schema is not None else None
    handed_on = body_model is not None and issubclass(body_model, JsonObject)

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if query_schema is not None:
            kwargs["query"] = query_schema.load_query(_query_values())
        if handed_on:
            kwargs["body"] = json_body()
        elif body_schema is not None:
            kwargs["body"] = body_schema.load(json_body())
        elif request.method in _BODY_METHODS:
            _NO_BODY.load(json_body())  # nothing, or {}
        return _answer(endpoint, view, view(*args, **kwargs))

    return wrapper


def _query_values() -> dict[str, list[str]]:
    """The query string: every name with its values (a list field takes them all)."""
    return request.args.to_dict(flat=False)


def _documented(endpoint: Endpoint, status: int) -> bool:
    return status == endpoint.status or status in endpoint.responses


def _answer(endpoint: Endpoint, view: View, value: Any) -> Any:
    if isinstance(value, Response):  # the view answered itself (a file, a 304...)
        return value
    headers: Any = None
    status = endpoint.status
    if isinstance(value, tuple):
        value, status, *rest = value
        headers = rest[0] if rest else None
        if not _documented(endpoint, status):
            _undocumented(view, status)
    schema = endpoint.output if status == endpoint.status else endpoint.responses.get(status)
    model = None if schema is None else schema.model
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


# -- the declaration in /openapi.json -------------------------------------------------------

_REF = "#/components/schemas/{model}"
_PROBLEM_REF = "#/components/responses/Problem"
_VALIDATION_CODES = {"body": ("VALIDATION_ERROR", "INVALID_JSON"), "query": ("VALIDATION_ERROR",)}


class ModelSchemas:
    """The JSON Schemas of every model of the typed routes, as one set of components: a model
    used by two routes is one schema, and pydantic tells same-named models apart."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        pairs: dict[tuple[Model, JsonSchemaMode], None] = {}
        for endpoint in endpoints:
            for model in (_model(endpoint.input), _model(endpoint.query)):
                if model is not None:
                    pairs[(model, "validation")] = None
            for model in map(_model, (endpoint.output, *endpoint.responses.values())):
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
    endpoint: Endpoint,
    models: ModelSchemas,
    responses: Mapping[str, Any],
    more_errors: Mapping[int, Iterable[str]] | None = None,
) -> dict[str, Any]:
    """The parts of an OpenAPI operation a route declares: ``requestBody``, the query
    ``parameters`` and ``responses`` (``responses`` holds the auth problems already)."""
    operation: dict[str, Any] = {}
    answers = {status: value for status, value in responses.items() if status != "2XX"}
    answers[str(endpoint.status)] = _success(
        endpoint.status, _model(endpoint.output), endpoint.media_types, models
    )
    for status, schema in endpoint.responses.items():
        answers[str(status)] = _success(status, _model(schema), (), models)
    errors: dict[int, list[str]] = {}
    body, query = _model(endpoint.input), _model(endpoint.query)
    if body is not None:
        operation["requestBody"] = {
            "required": any(f.is_required() for f in body.model_fields.values()),
            "content": {"application/json": {"schema": models.ref(body, "validation")}},
        }
        errors.setdefault(400, []).extend(_VALIDATION_CODES["body"])
    if query is not None:
        operation["parameters"] = _query_parameters(models.definition(query, "validation"))
        errors.setdefault(400, []).extend(_VALIDATION_CODES["query"])
    for status, codes in [*endpoint.errors_by_status().items(), *(more_errors or {}).items()]:
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


def _model(schema: Schema[Any] | None) -> Model | None:
    return None if schema is None else schema.model
