"""The app's JSON provider: stored values (ObjectId, datetimes, decimals) serialise through
:func:`core.managers.database.json.to_json_compatible`, the one documented place for it;
keys keep their order."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from core.managers.database.json import to_json_compatible


class JsonProvider(DefaultJSONProvider):
    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        converted = to_json_compatible(o)
        if converted is o:
            return DefaultJSONProvider.default(o)
        return converted
