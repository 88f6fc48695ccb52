"""The one place stored values become JSON: ObjectId, datetimes and decimals.

:func:`to_json_compatible` walks dicts, lists and tuples and converts:

- ``ObjectId`` -> its 24-character hex string;
- ``datetime`` -> ISO 8601 in UTC with a ``Z`` suffix (``2024-05-01T12:00:00.123000Z``);
  naive datetimes are taken as UTC (pymongo without ``tz_aware`` gives those); a
  ``date`` -> ``YYYY-MM-DD``;
- ``Decimal128`` / ``Decimal`` -> their exact decimal string (a float would lose digits);
- ``UUID`` -> its canonical string.

Everything else is returned unchanged, so ``json.dumps`` still rejects what it cannot encode.
The Flask JSON provider uses it for responses; call it directly for other JSON outputs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from bson import Decimal128, ObjectId

__all__ = ["to_json_compatible"]


def to_json_compatible(value: Any) -> Any:
    """``value`` with every nested ObjectId, datetime and decimal made JSON-compatible."""
    if isinstance(value, dict):
        return {key: to_json_compatible(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_compatible(item) for item in value]
    if isinstance(value, ObjectId | uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    if isinstance(value, Decimal):
        return str(value)
    return value
