"""The JSON helper for stored values: ObjectId, datetimes and decimals, however nested."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from bson import Decimal128, ObjectId

from core.app_manager import AppManager
from core.managers.database.json import to_json_compatible
from core.testing import AppFactory, manager_of


def round_trip(value: object) -> object:
    return json.loads(json.dumps(to_json_compatible(value)))


def test_nested_object_ids_and_datetimes_round_trip() -> None:
    ids = [ObjectId(), ObjectId(), ObjectId()]
    at = datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC)
    document = {"_id": ids[0], "at": at, "nested": {"refs": [ids[1], {"id": ids[2], "at": at}]}}

    out = round_trip(document)

    assert out == {
        "_id": str(ids[0]),
        "at": "2024-05-01T12:30:45.123456Z",
        "nested": {"refs": [str(ids[1]), {"id": str(ids[2]), "at": "2024-05-01T12:30:45.123456Z"}]},
    }
    assert isinstance(out, dict)
    assert ObjectId(out["_id"]) == ids[0]
    assert datetime.fromisoformat(out["at"]) == at


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))), "2024-01-01T10:00:00Z"),
        (datetime(2024, 1, 1, 12), "2024-01-01T12:00:00Z"),  # naive = UTC, as pymongo gives
        (date(2024, 1, 31), "2024-01-31"),
        (Decimal128("1.10"), "1.10"),
        (Decimal("0.1000000000000000055511151231257827"), "0.1000000000000000055511151231257827"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ((1, "a", None, True, 2.5), [1, "a", None, True, 2.5]),
    ],
)
def test_each_stored_type_has_one_json_form(value: object, expected: object) -> None:
    assert round_trip(value) == expected


def test_values_json_cannot_encode_are_left_for_json_to_reject() -> None:
    marker = object()
    assert to_json_compatible({"x": [marker]}) == {"x": [marker]}
    with pytest.raises(TypeError):
        json.dumps(to_json_compatible({"x": marker}))


def test_a_document_read_back_from_mongodb_serialises(make_app: AppFactory) -> None:
    manager: AppManager = manager_of(make_app())
    notes = manager.database.mongo.collection("notes")
    at = datetime(2024, 5, 1, 12, 30, 45, 123000, tzinfo=UTC)  # MongoDB keeps milliseconds
    inserted = notes.insert_one({"at": at, "price": Decimal128("9.99"), "tags": [ObjectId()]})

    stored = notes.find_one({"_id": inserted.inserted_id})
    out = round_trip(stored)

    assert isinstance(out, dict)
    assert out["_id"] == str(inserted.inserted_id)
    assert out["at"] == "2024-05-01T12:30:45.123000Z"
    assert out["price"] == "9.99"
    assert len(out["tags"][0]) == 24
