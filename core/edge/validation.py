"""The one validation path: JSON Schema 2020-12 for routes, actions and socket events.

A :class:`Schema` is a JSON Schema compiled once, and optionally the pydantic model it was
written as: a model is one way to write a schema in Python. :meth:`Schema.load` validates data
with :func:`validate` (the same function for an action's params, a route's body and query and
an event's payload), then builds the model from the valid data; a custom validator's
``ValueError`` keeps its own words.

- Objects refuse unknown fields unless the schema says otherwise (:func:`close_objects`; a
  model with ``extra="allow"`` or a ``dict`` field says so).
- Every error at once, each ``{"field": <JSON pointer>, "message"}``: the pointer names the
  value at fault (RFC 6901), so a missing field points at where it should be and an unknown
  field at itself. Messages describe the rule, not the value sent.
- At most :data:`MAX_ERRORS` errors are reported, and scanning stops there: a body of 79,000
  unknown fields costs 20 errors, not 79,000 (the unknown and the missing fields are found
  one at a time, never listed all at once).
- A query string is text: :meth:`Schema.load_query` converts each value by the types the
  schema allows (``?limit=5`` is 5, ``?exact=true`` is true) before the same validation.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend
from pydantic import BaseModel
from pydantic import ValidationError as ModelError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from core.edge.docstrings import field_docs, markdown
from core.errors import ValidationFailed

__all__ = [
    "MAX_ERRORS",
    "Schema",
    "close_objects",
    "compile_schema",
    "errors_of",
    "load_model",
    "model_schema",
    "pointer",
    "rule_message",
    "validate",
]

#: The most errors one answer lists; validation stops once it has found them.
MAX_ERRORS = 20
_MESSAGE_MAX = 200
_REQUIRED = "is required"
_NOT_ALLOWED = "is not allowed"

M = TypeVar("M", bound=BaseModel)


# -- the validator --------------------------------------------------------------------------


def _required(
    validator: Validator, required: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """One error per missing field, at the field's own pointer."""
    if not validator.is_type(instance, "object"):
        return
    for name in required:
        if name not in instance:
            yield ValidationError(_REQUIRED, path=[name])


def _additional_properties(
    validator: Validator, allowed: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """Each unknown field, one at a time (never all of them in one message), at its own
    pointer; a subschema is applied to each as usual."""
    descend = validator.is_type(allowed, "object") and allowed != {}
    if (not descend and allowed is not False) or not validator.is_type(instance, "object"):
        return  # any other field is allowed: nothing to look at
    listed = schema.get("properties", {})
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    for name in instance:
        if name in listed or any(p.search(name) for p in patterns):
            continue
        if descend:
            yield from validator.descend(instance[name], allowed, path=name)
        else:
            yield ValidationError(_NOT_ALLOWED, path=[name])


#: Draft 2020-12, with ``required`` and ``additionalProperties`` reporting lazily, one field at
#: a time, so :func:`validate` can stop at :data:`MAX_ERRORS`.
_Validator = extend(
    Draft202012Validator,
    {"required": _required, "additionalProperties": _additional_properties},
)


def compile_schema(schema: Mapping[str, Any] | bool) -> Validator:
    """A validator of ``schema`` for :func:`validate` (checked as a 2020-12 schema: SchemaError
    says what is wrong)."""
    Draft202012Validator.check_schema(schema)
    return cast(Validator, _Validator(schema))


def validate(validator: Validator, instance: Any) -> None:
    """Raise :class:`ValidationFailed` listing the ways ``instance`` breaks the schema: every
    one up to :data:`MAX_ERRORS`, sorted by field, and no scanning past that."""
    found = errors_of(validator, instance)
    if found:
        raise ValidationFailed(_as_errors(found))


def errors_of(validator: Validator, instance: Any) -> dict[str, str]:
    """``{pointer: message}`` of the ways ``instance`` breaks the schema, at most
    :data:`MAX_ERRORS` fields (one message each), found without scanning further."""
    found: dict[str, str] = {}
    for error in validator.iter_errors(instance):
        for where, message in _describe(error):
            found.setdefault(where, message)
        if len(found) >= MAX_ERRORS:
            break
    return found


def _as_errors(found: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"field": f, "message": m} for f, m in sorted(found.items())[:MAX_ERRORS]]


def pointer(path: Iterable[Any]) -> str:
    """RFC 6901 JSON pointer of ``path`` (``""`` is the whole body)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _describe(error: ValidationError) -> list[tuple[str, str]]:
    where = pointer(error.absolute_path)
    keyword, expected = error.validator, error.validator_value
    if keyword in ("required", "additionalProperties") and error.message in (
        _REQUIRED,
        _NOT_ALLOWED,
    ):
        return [(where, error.message)]
    if keyword in ("anyOf", "oneOf") and error.context:
        return _alternatives(error, where)
    return [(where, rule_message(str(keyword), expected, error.message))]


def _alternatives(error: ValidationError, where: str) -> list[tuple[str, str]]:
    """``anyOf``/``oneOf`` where nothing matched: the errors of the first form whose type the
    value has (``Optional[str]`` given ``""``: "must not be empty"); when the value has the
    type of none of them, the types it may have ("must be a string or null")."""
    branches: dict[Any, list[ValidationError]] = {}
    for branch_error in error.context or []:
        index = branch_error.relative_schema_path[0] if branch_error.relative_schema_path else 0
        branches.setdefault(index, []).append(branch_error)
    for errors in branches.values():
        if not any(_wrong_type(e) for e in errors):
            return [found for e in errors for found in _describe(e)]
    kinds: list[str] = []
    for errors in branches.values():
        for type_error in filter(_wrong_type, errors):
            value = type_error.validator_value
            for kind in value if isinstance(value, list) else [value]:
                if kind not in kinds:
                    kinds.append(kind)
    return [(where, rule_message("type", kinds, error.message))]


def _wrong_type(error: ValidationError) -> bool:
    return error.validator == "type" and not error.relative_path


_MESSAGES: dict[str, Callable[[Any], str]] = {
    "minLength": lambda n: (
        "must not be empty" if n == 1 else f"must be at least {n} characters long"
    ),
    "maxLength": lambda n: f"must be at most {n} characters long",
    "minimum": lambda n: f"must be at least {n}",
    "maximum": lambda n: f"must be at most {n}",
    "exclusiveMinimum": lambda n: f"must be greater than {n}",
    "exclusiveMaximum": lambda n: f"must be less than {n}",
    "multipleOf": lambda n: f"must be a multiple of {n}",
    "minItems": lambda n: f"must have at least {n} items",
    "maxItems": lambda n: f"must have at most {n} items",
    "minProperties": lambda n: f"must have at least {n} fields",
    "maxProperties": lambda n: f"must have at most {n} fields",
    "uniqueItems": lambda _: "must not contain duplicates",
    "pattern": lambda p: f"must match the pattern {p}",
    "format": lambda f: f"must be a valid {f}",
    "const": lambda v: f"must be {json.dumps(v)}",
    "enum": lambda values: "must be one of " + ", ".join(json.dumps(v) for v in values),
    "type": lambda kinds: (
        "must be "
        + " or ".join(_article(k) for k in (kinds if isinstance(kinds, list) else [kinds]))
    ),
    "unevaluatedProperties": lambda _: "has fields that are not allowed",
    "oneOf": lambda _: "must match exactly one of the allowed forms",
    "not": lambda _: _NOT_ALLOWED,
}


def rule_message(keyword: str, expected: Any, fallback: str) -> str:
    """The message for a broken JSON Schema rule (``minLength`` 8 -> "must be at least 8
    characters long"); ``fallback`` (cut short) for a rule without one."""
    describe = _MESSAGES.get(keyword)
    return describe(expected) if describe is not None else fallback[:_MESSAGE_MAX]


def _article(kind: str) -> str:
    names = {
        "object": "an object",
        "array": "an array",
        "integer": "an integer",
        "null": "null",
        "boolean": "true or false",
    }
    return names.get(kind, f"a {kind}")


# -- closed objects -------------------------------------------------------------------------

#: Keywords that already say what happens to properties not listed.
_OPEN_OR_EXPLICIT = ("additionalProperties", "unevaluatedProperties", "patternProperties")
#: Subschemas here combine with others; closing them would refuse their siblings' fields.
_COMPOSED = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$ref", "$dynamicRef")


def close_objects(schema: Any) -> Any:
    """A copy of ``schema`` where every object schema refuses unknown fields unless it says
    otherwise (``additionalProperties``, ``unevaluatedProperties``, ``patternProperties``).
    Schemas that combine others (``allOf``, ``$ref``, ...) and the subschemas inside them are
    left as written: the author of a composition decides.
    """
    schema = copy.deepcopy(schema)
    _close(schema)
    return schema


def _close(node: Any) -> None:
    if not isinstance(node, dict):
        return
    if any(key in node for key in _COMPOSED):
        return
    types = node.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types)
    if (is_object or "properties" in node) and not any(k in node for k in _OPEN_OR_EXPLICIT):
        node["additionalProperties"] = False
    for key in ("properties", "$defs"):
        for child in (node.get(key) or {}).values():
            _close(child)
    for key in ("items", "additionalProperties", "contains"):
        _close(node.get(key))
    for child in node.get("prefixItems") or []:
        _close(child)


# -- models ---------------------------------------------------------------------------------


class ClosedModels(GenerateJsonSchema):
    """pydantic's JSON Schema, with every model closed unless it says ``extra="allow"``: the
    schema a model is validated by, and the one OpenAPI and AsyncAPI show."""

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        config = schema.get("config") or {}
        if config.get("extra_fields_behavior") != "allow":
            json_schema.setdefault("additionalProperties", False)
        _describe_fields(schema["cls"], json_schema)
        return json_schema


def _describe_fields(model: type, json_schema: JsonSchemaValue) -> None:
    """The model's docstring and its fields' ``#:`` comments and attribute docstrings
    (:func:`~core.edge.docstrings.field_docs`) as descriptions, in Markdown; a
    ``Field(description=...)`` wins."""
    if isinstance(json_schema.get("description"), str):
        json_schema["description"] = markdown(json_schema["description"])
    properties = json_schema.get("properties")
    if not isinstance(properties, dict):
        return
    documented = [base for base in model.__mro__ if base is not BaseModel and base is not object]
    for base in reversed(documented):  # a subclass's documentation wins
        for name, text in field_docs(base).items():
            field = properties.get(name)
            if isinstance(field, dict) and "description" not in field:
                field["description"] = text


def model_schema(model: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    """The JSON Schema of ``model`` (definitions under ``$defs``), closed like
    :class:`ClosedModels` says."""
    return model.model_json_schema(mode=mode, schema_generator=ClosedModels)


class Schema(Generic[M]):
    """A JSON Schema compiled once, and the model valid data is built into (if any).

    ``Schema.of(Model)`` or ``Schema.of({"type": "object", ...})``; objects of a schema given
    as a dict are closed unless they say otherwise (:func:`close_objects`).
    """

    def __init__(
        self,
        schema: Mapping[str, Any],
        model: type[M] | None = None,
        *,
        validator: Validator | None = None,
    ) -> None:
        self.schema: dict[str, Any] = dict(schema)
        self.model = model
        #: Compiled once (``validator``: compiled already, by :func:`compile_schema`).
        self.validator = validator if validator is not None else compile_schema(self.schema)

    @staticmethod
    def of(source: type[BaseModel] | Mapping[str, Any]) -> Schema[Any]:
        """The schema of a model (one per model, made once), or a JSON Schema's, closed."""
        if isinstance(source, type) and issubclass(source, BaseModel):
            return _of_model(source)
        return Schema(close_objects(dict(source)))

    def load(self, data: Any) -> Any:
        """``data`` validated (:func:`validate`), as the model when there is one.

        The model is built from the data the schema accepts; what only the model can say (a
        validator, a format) is reported with the schema's errors, every field once, a
        validator's ``ValueError`` in its own words."""
        found = errors_of(self.validator, data)
        if self.model is not None and len(found) < MAX_ERRORS:
            try:
                built = self.model.model_validate(data)
            except ModelError as exc:
                found = _merge(found, exc)
            else:
                if not found:
                    return built
        if found:
            raise ValidationFailed(_as_errors(found))
        return data

    def load_query(self, args: Mapping[str, list[str]]) -> Any:
        """A query string (each name with its values) converted from text by the types this
        schema allows, then :meth:`load`."""
        properties = self.schema.get("properties", {})
        data: dict[str, Any] = {}
        for name, values in args.items():
            node = self._resolve(properties.get(name, {}))
            types = self._types(node)
            if "array" in types:
                items = self._types(self._resolve(node.get("items", {})))
                data[name] = [_from_text(value, items) for value in values]
            elif values:
                data[name] = _from_text(values[0], types)
        return self.load(data)

    def _resolve(self, node: Any) -> dict[str, Any]:
        """``node`` itself, or what its local ``$ref`` points at."""
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 32:
            target: Any = self.schema
            for part in node["$ref"].lstrip("#").strip("/").split("/"):
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
            node, seen = target, seen + 1
        return node if isinstance(node, dict) else {}

    def _types(self, node: Mapping[str, Any]) -> set[str]:
        kinds = node.get("type")
        found = set(kinds if isinstance(kinds, list) else [kinds] if kinds else [])
        for key in ("anyOf", "oneOf"):
            for branch in node.get(key, []):
                found |= self._types(self._resolve(branch))
        return found


def load_model(model: type[M], data: Any) -> M:
    """``data`` as ``model`` through :meth:`Schema.load` (a CLI command's input, say): the same
    validation and the same 400 ``VALIDATION_ERROR`` as a route's body."""
    return cast(M, Schema.of(model).load(data))


@functools.cache
def _of_model(model: type[BaseModel]) -> Schema[Any]:
    return Schema(model_schema(model), model)


def _from_text(text: str, types: set[str]) -> Any:
    """A query value as the JSON value it stands for, when the schema does not take text."""
    if "string" in types or not types:
        return text
    if "integer" in types and re.fullmatch(r"-?\d{1,18}", text):
        return int(text)
    if "number" in types:
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return int(number) if number.is_integer() and abs(number) <= 2**53 else number
    if "boolean" in types and text in ("true", "false"):
        return text == "true"
    if "null" in types and text in ("", "null"):
        return None
    return text


def _merge(found: dict[str, str], exc: ModelError) -> dict[str, str]:
    """The schema's errors plus the model's: a validator's ``ValueError`` in its own words
    (it says more than the schema rule it enforces), anything else only where the schema
    found nothing, in pydantic's words."""
    merged = dict(found)
    for detail in exc.errors(include_url=False)[:MAX_ERRORS]:
        where = pointer(detail["loc"])
        message = str(detail["msg"])
        if detail["type"] == "value_error":
            merged[where] = message.removeprefix("Value error, ")[:_MESSAGE_MAX]
        elif not any(where == f or where.startswith(f + "/") for f in found):
            merged.setdefault(where, (message[:1].lower() + message[1:])[:_MESSAGE_MAX])
    return merged
