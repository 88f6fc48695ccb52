"""Strict JSON, for request bodies and Socket.IO payloads alike: no NaN/Infinity, finite
numbers, integral floats as ints, valid Unicode, bounded nesting (each was a 500 found by
fuzzing)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from core.errors import InvalidJson, ValidationFailed

MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


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


def check_json_value(value: Any, *, text: bool = True) -> None:
    """Refuse what parses but cannot be stored or sent back: nesting deeper than
    ``MAX_DEPTH``, non-finite floats, and (unless ``text`` is False: the caller knows there
    is none) strings with lone surrogates (``"\\ud800"``).

    One pass in which only containers are pushed; a string is searched only when it is not
    ASCII (which CPython knows without looking at it)."""
    _check_scalar(value, text)
    stack = [(value, 1)] if type(value) is dict or type(value) is list else []
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValidationFailed(
                [{"field": "", "message": f"nesting deeper than {MAX_DEPTH} levels"}]
            )
        children: Iterable[Any]
        if type(item) is dict:
            if text:
                for key in item:
                    if not key.isascii() and _SURROGATE.search(key):
                        raise _not_unicode()
            children = item.values()
        else:
            children = item
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is not int and kind is not bool:
                _check_scalar(child, text)


def _check_scalar(value: Any, text: bool) -> None:
    if type(value) is float and not math.isfinite(value):
        raise ValidationFailed([{"field": "", "message": "numbers must be finite"}])
    if text and type(value) is str and not value.isascii() and _SURROGATE.search(value):
        raise _not_unicode()


def _not_unicode() -> ValidationFailed:
    return ValidationFailed([{"field": "", "message": "text must be valid Unicode"}])


def load_json(data: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, finite numbers, valid Unicode, bounded nesting."""
    try:
        value = json.loads(data, parse_constant=_reject_constant, parse_float=_parse_float)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidJson("The body is not valid JSON.") from None
    # A lone surrogate comes from a \u escape or from its UTF-8 bytes (which start with 0xED);
    # non-finite numbers were refused by the parse itself; and fewer brackets than MAX_DEPTH
    # (counted in C, strings included) cannot nest deeper: then nothing is left to walk.
    text = b"\\u" in data or b"\xed" in data
    if text or data.count(b"[") + data.count(b"{") > MAX_DEPTH:
        check_json_value(value, text=text)
    return value
