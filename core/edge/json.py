"""Strict JSON, for request bodies and Socket.IO payloads alike: no NaN/Infinity, finite
numbers, integral floats as ints, valid Unicode, bounded nesting (each was a 500 found by
fuzzing)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from core.errors import InvalidJson, ValidationFailed

_SURROGATE = re.compile("[\ud800-\udfff]")

MAX_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float | int:
    """Finite numbers only; an integral one (``2.0``, ``2e0``) becomes the int it equals, so
    a handler never gets a float where the schema says ``integer``."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def check_json_value(value: Any) -> None:
    """Refuse what parses but cannot be stored or sent back: nesting deeper than
    ``MAX_DEPTH``, strings with lone surrogates (``"\\ud800"``), non-finite floats."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValidationFailed(
                [{"field": "", "message": f"nesting deeper than {MAX_DEPTH} levels"}]
            )
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValidationFailed([{"field": "", "message": "numbers must be finite"}])


def _check_text(text: Any) -> None:
    if isinstance(text, str) and _SURROGATE.search(text):
        raise ValidationFailed([{"field": "", "message": "text must be valid Unicode"}])


def load_json(data: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, finite numbers, valid Unicode, bounded nesting."""
    try:
        value = json.loads(data, parse_constant=_reject_constant, parse_float=_parse_float)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidJson("The body is not valid JSON.") from None
    check_json_value(value)
    return value
