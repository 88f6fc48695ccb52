"""API keys through the HTTP API (API.md "API keys"): the admin routes, /keyauth/whoami, how
keys are stored and cached, and that revocation and expiry hold on every instance."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from flask import Flask
from flask.testing import FlaskClient
from pymongo.collection import Collection

import core.managers.api_keys as api_keys_module
from core.testing import AppFactory, bearer, manager_of, problem
from modules.api_keys.testing import create_api_key
from modules.auth.testing import admin_tokens, user_with_tokens

CREATED_FIELDS = {"id", "name", "prefix", "scopes", "created_at", "expires_at", "key"}
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


@pytest.fixture
def admin(app: Flask, client: FlaskClient) -> str:
    """An admin's access token."""
    token: str = admin_tokens(app, client)["access_token"]
    return token


def key_header(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def secret_of(key: str) -> str:
    return key.partition(".")[2]


def keys_collection(app: Flask) -> Collection[dict[str, Any]]:
    collection: Collection[dict[str, Any]] = manager_of(app).database.mongo.collection("api_keys")
    return collection


def whoami(client: FlaskClient, key: str) -> Any:
    return client.get("/keyauth/whoami", headers=key_header(key))


def parse_iso(value: str) -> datetime:
    assert ISO_UTC.fullmatch(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- create -----------------------------------------------------------------------------------


def test_create_returns_exactly_the_documented_fields_with_the_key_once(
    client: FlaskClient, admin: str
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    response = client.post(
        "/userauth/api-keys",
        json={"name": "billing-sync", "scopes": ["notes:read", "billing:write"]},
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == CREATED_FIELDS
    assert body["name"] == "billing-sync"
    assert body["scopes"] == ["billing:write", "notes:read"]
    assert re.fullmatch(r"pbk_[A-Za-z0-9]{12}", body["prefix"])
    assert body["key"].startswith(body["prefix"] + ".")
    assert len(secret_of(body["key"])) >= 32
    assert ObjectId.is_valid(body["id"])
    assert before <= parse_iso(body["created_at"]) <= datetime.now(UTC)
    assert body["expires_at"] is None


def test_create_with_expires_in_days_sets_an_iso_expiry_that_many_days_ahead(
    client: FlaskClient, admin: str
) -> None:
    created = create_api_key(client, admin, ["notes:read"], expires_in_days=30)
    expires_at = parse_iso(created["expires_at"])
    assert expires_at - parse_iso(created["created_at"]) == timedelta(days=30)


def test_create_normalises_name_and_scopes(client: FlaskClient, admin: str) -> None:
    response = client.post(
        "/userauth/api-keys",
        json={"name": "  reporting  ", "scopes": ["b:read", "a:read", "b:read"]},
        headers=bearer(admin),
    )
    assert response.status_code == 201
    assert response.get_json()["name"] == "reporting"
    assert response.get_json()["scopes"] == ["a:read", "b:read"]


def test_every_created_key_is_different(client: FlaskClient, admin: str) -> None:
    first = create_api_key(client, admin, [])
    second = create_api_key(client, admin, [])
    assert first["id"] != second["id"]
    assert first["prefix"] != second["prefix"]
    assert secret_of(first["key"]) != secret_of(second["key"])


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"scopes": []}, ["/name"]),
        ({"name": "", "scopes": []}, ["/name"]),
        ({"name": "   ", "scopes": []}, ["/name"]),
        ({"name": "x" * 101, "scopes": []}, ["/name"]),
        ({"name": 42, "scopes": []}, ["/name"]),
        ({"name": "svc"}, ["/scopes"]),
        ({"name": "svc", "scopes": "notes:read"}, ["/scopes"]),
        ({"name": "svc", "scopes": ["Notes:Read"]}, ["/scopes/0"]),
        ({"name": "svc", "scopes": ["notes read"]}, ["/scopes/0"]),
        ({"name": "svc", "scopes": [""]}, ["/scopes/0"]),
        ({"name": "svc", "scopes": [7]}, ["/scopes/0"]),
        ({"name": "svc", "scopes": ["a" * 65]}, ["/scopes/0"]),
        ({"name": "svc", "scopes": [f"s{i}" for i in range(51)]}, ["/scopes"]),
        ({"name": "svc", "scopes": [], "expires_in_days": 0}, ["/expires_in_days"]),
        ({"name": "svc", "scopes": [], "expires_in_days": -1}, ["/expires_in_days"]),
        ({"name": "svc", "scopes": [], "expires_in_days": 3651}, ["/expires_in_days"]),
        ({"name": "svc", "scopes": [], "expires_in_days": "30"}, ["/expires_in_days"]),
        ({"name": "svc", "scopes": [], "expires_in_days": 1.5}, ["/expires_in_days"]),
        ({"name": "svc", "scopes": [], "expires_in_days": True}, ["/expires_in_days"]),
        (
            {"name": None, "scopes": None, "expires_in_days": 0},
            ["/name", "/scopes", "/expires_in_days"],
        ),
    ],
)
def test_create_rejects_invalid_input_naming_each_field(
    client: FlaskClient, admin: str, app: Flask, body: dict[str, Any], fields: list[str]
) -> None:
    response = client.post("/userauth/api-keys", json=body, headers=bearer(admin))
    problem_body = problem(response, 400, "VALIDATION_ERROR")
    assert sorted(error["field"] for error in problem_body["errors"]) == sorted(fields)
    assert all(error["message"] for error in problem_body["errors"])
    assert keys_collection(app).count_documents({}) == 0


def test_create_rejects_a_body_that_is_not_an_object(client: FlaskClient, admin: str) -> None:
    response = client.post("/userauth/api-keys", json=["svc"], headers=bearer(admin))
    problem(response, 400, "VALIDATION_ERROR")
    response = client.post(
        "/userauth/api-keys",
        data="{not json",
        content_type="application/json",
        headers=bearer(admin),
    )
    problem(response, 400, "INVALID_JSON")


# -- list ----------------------------------------------------------------------------------------


def test_list_shows_every_active_key_but_never_the_key_or_its_hash(
    client: FlaskClient, admin: str
) -> None:
    first = create_api_key(client, admin, ["notes:read"])
    second = create_api_key(client, admin, ["billing:write"], expires_in_days=7)

    response = client.get("/userauth/api-keys", headers=bearer(admin))
    assert response.status_code == 200
    items = {item["id"]: item for item in response.get_json()["items"]}
    assert set(items) == {first["id"], second["id"]}
    for created in (first, second):
        item = items[created["id"]]
        for field in ("name", "prefix", "scopes", "created_at", "expires_at"):
            assert item[field] == created[field], field
        assert "key" not in item
        assert not any(k for k in item if "hash" in k or "secret" in k)

    text = response.get_data(as_text=True)
    for created in (first, second):
        secret = secret_of(created["key"])
        assert secret not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text


def test_list_is_empty_without_keys_and_omits_revoked_keys(client: FlaskClient, admin: str) -> None:
    empty = client.get("/userauth/api-keys", headers=bearer(admin)).get_json()
    assert empty == {"items": [], "next_cursor": None}
    kept = create_api_key(client, admin, [])
    gone = create_api_key(client, admin, [])
    assert (
        client.delete(f"/userauth/api-keys/{gone['id']}", headers=bearer(admin)).status_code == 204
    )
    items = client.get("/userauth/api-keys", headers=bearer(admin)).get_json()["items"]
    assert [item["id"] for item in items] == [kept["id"]]


# -- whoami --------------------------------------------------------------------------------------


def test_whoami_answers_the_key_id_name_and_scopes(client: FlaskClient, admin: str) -> None:
    created = create_api_key(client, admin, ["notes:read", "billing:write"], name="reporter")
    response = whoami(client, created["key"])
    assert response.status_code == 200
    assert response.get_json() == {
        "key_id": created["id"],
        "name": "reporter",
        "scopes": ["billing:write", "notes:read"],
    }


def test_whoami_without_a_key_is_401_api_key_required(client: FlaskClient) -> None:
    problem(client.get("/keyauth/whoami"), 401, "API_KEY_REQUIRED")
    problem(client.get("/keyauth/whoami", headers=key_header("   ")), 401, "API_KEY_REQUIRED")


def test_a_bearer_token_does_not_authenticate_a_keyauth_route(
    client: FlaskClient, admin: str
) -> None:
    problem(client.get("/keyauth/whoami", headers=bearer(admin)), 401, "API_KEY_REQUIRED")


def test_wrong_secret_unknown_prefix_and_garbage_are_401_api_key_invalid(
    client: FlaskClient, admin: str
) -> None:
    created = create_api_key(client, admin, ["notes:read"])
    prefix, secret = created["prefix"], secret_of(created["key"])
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    other_prefix = "pbk_" + ("Z" * 12 if prefix != "pbk_" + "Z" * 12 else "Y" * 12)
    candidates = [
        f"{prefix}.{flipped}",  # right prefix, wrong secret
        f"{prefix}.{secret[:-1]}",  # truncated secret
        f"{prefix}.",  # no secret
        prefix,  # the prefix alone (what lists show)
        f"{other_prefix}.{secret}",  # right secret, unknown prefix
        secret,  # the secret alone
        f"{prefix}.{secret}x",  # extra character
        "garbage",
        "pbk_.x",
        f"{prefix}.{secret}" + "a" * 300,  # oversized
        created["id"],
    ]
    for presented in candidates:
        problem(whoami(client, presented), 401, "API_KEY_INVALID")
    assert whoami(client, created["key"]).status_code == 200


def test_an_api_key_cannot_call_userauth_routes(client: FlaskClient, admin: str) -> None:
    created = create_api_key(client, admin, ["notes:read"])
    for method, path in (
        ("GET", "/userauth/me"),
        ("GET", "/userauth/api-keys"),
        ("POST", "/userauth/api-keys"),
        ("DELETE", f"/userauth/api-keys/{created['id']}"),
        ("POST", "/userauth/admin/maintenance"),
    ):
        response = client.open(path, method=method, headers=key_header(created["key"]))
        problem(response, 401, "AUTH_REQUIRED")
        # Nor presented as a bearer token.
        response = client.open(path, method=method, headers=bearer(created["key"]))
        problem(response, 401, "TOKEN_INVALID")
    assert whoami(client, created["key"]).status_code == 200  # not revoked by the attempts


# -- who may manage keys ------------------------------------------------------------------------


def test_a_user_without_the_admin_role_gets_403_on_every_admin_route(
    client: FlaskClient, admin: str, app: Flask
) -> None:
    created = create_api_key(client, admin, ["notes:read"])
    _, pair = user_with_tokens(client)
    headers = bearer(pair["access_token"])

    problem(
        client.post("/userauth/api-keys", json={"name": "x", "scopes": []}, headers=headers),
        403,
        "FORBIDDEN",
    )
    problem(client.get("/userauth/api-keys", headers=headers), 403, "FORBIDDEN")
    problem(client.delete(f"/userauth/api-keys/{created['id']}", headers=headers), 403, "FORBIDDEN")
    assert keys_collection(app).count_documents({}) == 1
    assert whoami(client, created["key"]).status_code == 200


def test_admin_routes_without_credentials_are_401_auth_required(
    client: FlaskClient, admin: str
) -> None:
    created = create_api_key(client, admin, [])
    problem(
        client.post("/userauth/api-keys", json={"name": "x", "scopes": []}), 401, "AUTH_REQUIRED"
    )
    problem(client.get("/userauth/api-keys"), 401, "AUTH_REQUIRED")
    problem(client.delete(f"/userauth/api-keys/{created['id']}"), 401, "AUTH_REQUIRED")
    assert whoami(client, created["key"]).status_code == 200


# -- delete --------------------------------------------------------------------------------------


def test_delete_answers_204_and_the_key_stops_working_at_once(
    client: FlaskClient, admin: str
) -> None:
    created = create_api_key(client, admin, ["notes:read"])
    assert whoami(client, created["key"]).status_code == 200

    response = client.delete(f"/userauth/api-keys/{created['id']}", headers=bearer(admin))
    assert response.status_code == 204
    assert response.get_data() == b""
    problem(whoami(client, created["key"]), 401, "API_KEY_INVALID")


def test_a_revoked_key_is_refused_by_another_instance_that_had_cached_it(
    make_app: AppFactory,
) -> None:
    app_a, app_b = make_app(), make_app()
    client_a, client_b = app_a.test_client(), app_b.test_client()
    admin = admin_tokens(app_a, client_a)["access_token"]
    created = create_api_key(client_a, admin, ["notes:read"])
    assert whoami(client_b, created["key"]).status_code == 200  # B has validated (cached) it
    assert whoami(client_b, created["key"]).status_code == 200

    assert (
        client_a.delete(f"/userauth/api-keys/{created['id']}", headers=bearer(admin)).status_code
        == 204
    )

    problem(whoami(client_b, created["key"]), 401, "API_KEY_INVALID")
    problem(whoami(client_a, created["key"]), 401, "API_KEY_INVALID")


class _RevokeAfterRead:
    """The real collection, with one interleaving forced: the key is revoked (through the other
    instance's HTTP API) right after this instance has read it from MongoDB and before it has
    cached it -- two requests racing on two instances."""

    def __init__(self, collection: Collection[dict[str, Any]], revoke: Any) -> None:
        self._collection = collection
        self._revoke = revoke

    def find_one(self, *args: Any, **kwargs: Any) -> Any:
        document = self._collection.find_one(*args, **kwargs)
        if self._revoke is not None:
            revoke, self._revoke = self._revoke, None
            revoke()
        return document

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


def test_a_key_revoked_while_another_instance_is_validating_it_is_not_left_cached_as_valid(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_a, app_b = make_app(), make_app()
    client_a, client_b = app_a.test_client(), app_b.test_client()
    admin = admin_tokens(app_a, client_a)["access_token"]
    created = create_api_key(client_a, admin, ["notes:read"])

    def revoke() -> None:
        response = client_a.delete(f"/userauth/api-keys/{created['id']}", headers=bearer(admin))
        assert response.status_code == 204

    keys_b = manager_of(app_b).api_keys
    monkeypatch.setattr(keys_b, "collection", _RevokeAfterRead(keys_b.collection, revoke))
    whoami(client_b, created["key"])  # races with the revocation; either answer is fine

    problem(whoami(client_b, created["key"]), 401, "API_KEY_INVALID")
    problem(whoami(client_a, created["key"]), 401, "API_KEY_INVALID")


def test_deleting_an_unknown_or_malformed_id_is_404_not_found(
    client: FlaskClient, admin: str
) -> None:
    created = create_api_key(client, admin, [])
    for key_id in (str(ObjectId()), "not-an-id", "123", created["prefix"]):
        problem(
            client.delete(f"/userauth/api-keys/{key_id}", headers=bearer(admin)), 404, "NOT_FOUND"
        )
    assert whoami(client, created["key"]).status_code == 200


def test_deleting_a_key_twice_is_404_the_second_time(client: FlaskClient, admin: str) -> None:
    created = create_api_key(client, admin, [])
    path = f"/userauth/api-keys/{created['id']}"
    assert client.delete(path, headers=bearer(admin)).status_code == 204
    problem(client.delete(path, headers=bearer(admin)), 404, "NOT_FOUND")


# -- expiry ----------------------------------------------------------------------------------------


def test_a_key_whose_expiry_has_passed_is_refused_on_every_instance(
    make_app: AppFactory,
) -> None:
    app_a, app_b = make_app(), make_app()
    client_a, client_b = app_a.test_client(), app_b.test_client()
    admin = admin_tokens(app_a, client_a)["access_token"]
    created = create_api_key(client_a, admin, ["notes:read"], expires_in_days=1)
    keys_collection(app_a).update_one(
        {"_id": ObjectId(created["id"])},
        {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}},
    )
    problem(whoami(client_b, created["key"]), 401, "API_KEY_INVALID")
    problem(whoami(client_a, created["key"]), 401, "API_KEY_INVALID")


class _Clock:
    """``datetime`` for the ApiKeyManager, ``offset`` ahead of the real clock."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self, tz: Any = None) -> datetime:
        return datetime.now(tz) + self.offset


def test_a_key_that_expires_while_cached_is_refused_on_every_instance(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_a, app_b = make_app(), make_app()
    client_a, client_b = app_a.test_client(), app_b.test_client()
    admin = admin_tokens(app_a, client_a)["access_token"]
    created = create_api_key(client_a, admin, ["notes:read"], expires_in_days=1)
    assert whoami(client_b, created["key"]).status_code == 200  # now cached, still valid

    # A day and a minute later, still well inside a long cache TTL.
    monkeypatch.setattr(api_keys_module, "datetime", _Clock(timedelta(days=1, minutes=1)))
    problem(whoami(client_b, created["key"]), 401, "API_KEY_INVALID")
    problem(whoami(client_a, created["key"]), 401, "API_KEY_INVALID")


def test_a_key_not_yet_expired_works(
    client: FlaskClient, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = create_api_key(client, admin, [], expires_in_days=1)
    assert whoami(client, created["key"]).status_code == 200
    monkeypatch.setattr(api_keys_module, "datetime", _Clock(timedelta(hours=23)))
    assert whoami(client, created["key"]).status_code == 200


# -- storage -------------------------------------------------------------------------------------


def test_the_secret_is_stored_only_as_its_sha256_digest(
    client: FlaskClient, admin: str, app: Flask
) -> None:
    created = create_api_key(client, admin, ["notes:read"])
    secret = secret_of(created["key"])
    document = keys_collection(app).find_one({"_id": ObjectId(created["id"])})
    assert document is not None

    values = [str(value) for value in document.values()]
    assert created["key"] not in " ".join(values)
    assert not any(secret in value for value in values)
    assert hashlib.sha256(secret.encode()).hexdigest() in values
    assert document["prefix"] == created["prefix"]


def test_the_creator_is_recorded(client: FlaskClient, app: Flask) -> None:
    pair = admin_tokens(app, client)
    created = create_api_key(client, pair["access_token"], [])
    document = keys_collection(app).find_one({"_id": ObjectId(created["id"])})
    assert document is not None
    assert document["created_by"] == f"user:{pair['user']['id']}"


def test_last_used_at_is_set_on_use_and_not_rewritten_within_a_minute(
    make_app: AppFactory,
) -> None:
    app_a, app_b = make_app(), make_app()
    client_a = app_a.test_client()
    admin = admin_tokens(app_a, client_a)["access_token"]
    created = create_api_key(client_a, admin, [])
    collection = keys_collection(app_a)

    def last_used() -> Any:
        document = collection.find_one({"_id": ObjectId(created["id"])})
        assert document is not None
        return document["last_used_at"]

    assert last_used() is None
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert whoami(client_a, created["key"]).status_code == 200
    first = last_used()
    assert first is not None
    assert before <= first <= datetime.now(UTC)

    for client in (client_a, client_a, app_b.test_client()):  # also another instance
        assert whoami(client, created["key"]).status_code == 200
    assert last_used() == first

    items = client_a.get("/userauth/api-keys", headers=bearer(admin)).get_json()["items"]
    assert parse_iso(items[0]["last_used_at"]) == first


def test_a_failed_attempt_does_not_mark_the_key_as_used(
    client: FlaskClient, admin: str, app: Flask
) -> None:
    created = create_api_key(client, admin, [])
    problem(
        whoami(client, f"{created['prefix']}.wrong-secret-wrong-secret"), 401, "API_KEY_INVALID"
    )
    document = keys_collection(app).find_one({"_id": ObjectId(created["id"])})
    assert document is not None
    assert document["last_used_at"] is None


def test_no_key_or_secret_reaches_the_logs(
    client: FlaskClient, admin: str, log_output: io.StringIO
) -> None:
    created = create_api_key(client, admin, ["notes:read"])
    secret = secret_of(created["key"])
    whoami(client, created["key"])
    whoami(client, f"{created['prefix']}.{secret[::-1]}")
    client.post("/public/probe/log", json={"message": f"calling with {created['key']}"})
    output = log_output.getvalue()
    assert "probe says calling with" in output  # the line was logged...
    assert secret not in output  # ...without the key
    assert secret[::-1] not in output
