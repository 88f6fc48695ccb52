"""Strict JSON for values stored in Redis: what is written is exactly what is read back.

Plain ``json.dumps`` silently turns tuples into lists, non-string keys into strings and
accepts NaN (which is not JSON). Here those are rejected when writing, so a value that was
stored always round-trips with the same types: dict (string keys), list, str, int, float,
bool and None.
"""

from __future__ import annotations

import json
import math
from typing import Any

JsonValue = Any


def _check(value: object, path: str) -> None:
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: {value!r} is not a JSON number")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: key {key!r} is not a string")
            _check(item, f"{path}.{key}")
        return
    raise TypeError(f"{path}: {type(value).__name__} is not a JSON type")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def text(value: object) -> str:
    """A Redis reply as text: bytes decoded as UTF-8, anything else as ``str``. The clients
    do not decode responses (values may be binary), so a key, member or field read back as
    a string goes through here."""
    return value.decode() if isinstance(value, bytes) else str(value)


def dumps(value: JsonValue) -> str:
    """Compact JSON of ``value``; TypeError/ValueError for anything that would not round-trip."""
    _check(value, "$")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads(raw: str | bytes) -> JsonValue:
    """The value encoded by :func:`dumps`; ValueError for invalid JSON (NaN included)."""
    return json.loads(raw, parse_constant=_reject_constant)
