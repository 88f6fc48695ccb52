"""Params validation: every error of a body at once, each with a JSON-pointer ``field``.

``{"field": "/items/2/title", "message": "must be a string"}``: the pointer names the value at
fault (RFC 6901), so a missing field points at where it should be and an unknown field at
itself, not at the object that contains them. Messages describe the rule, not the value sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from core.errors import ValidationFailed

_MESSAGE_MAX = 200


def validate(validator: Validator, instance: Any) -> None:
    """Raise :class:`ValidationFailed` listing every way ``instance`` breaks the schema."""
    errors = sorted(
        {
            (field, message)
            for error in validator.iter_errors(instance)
            for field, message in _describe(error)
        }
    )
    if errors:
        raise ValidationFailed([{"field": field, "message": message} for field, message in errors])


def pointer(path: Iterable[Any]) -> str:
    """RFC 6901 JSON pointer of ``path`` (``""`` is the whole body)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _describe(error: ValidationError) -> list[tuple[str, str]]:
    path = list(error.absolute_path)
    keyword, expected = error.validator, error.validator_value
    if keyword == "required":
        missing = [name for name in expected if _missing(error.instance, name, error.message)]
        if missing:
            return [(pointer([*path, missing[0]]), "is required")]
        return [(pointer(path), error.message[:_MESSAGE_MAX])]
    if keyword == "additionalProperties" and isinstance(error.instance, Mapping):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        extra = _unlisted(error.instance, schema)
        return [(pointer([*path, name]), "is not allowed") for name in extra]
    return [(pointer(path), rule_message(str(keyword), expected, error.message))]


def _missing(instance: Any, name: str, message: str) -> bool:
    # jsonschema reports one error per missing name; its message is the only place naming it.
    return isinstance(instance, Mapping) and name not in instance and message.startswith(repr(name))


def _unlisted(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    listed = schema.get("properties", {})
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    return [
        name
        for name in instance
        if name not in listed and not any(p.search(name) for p in patterns)
    ]


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
    "anyOf": lambda _: "does not match any of the allowed forms",
    "oneOf": lambda _: "must match exactly one of the allowed forms",
    "not": lambda _: "is not allowed",
}


def rule_message(keyword: str, expected: Any, fallback: str) -> str:
    """The message for a broken JSON Schema rule (``minLength`` 8 -> "must be at least 8
    characters long"); ``fallback`` (cut short) for a rule without one. Typed routes use the
    same words (:mod:`core.http.typed`)."""
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
