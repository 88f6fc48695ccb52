"""``POST /actions/<name>``: authentication by the action's ``auth``, then roles and scopes."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from core.testing import bearer, problem
from tests.actions.conftest import key_header


def call(client: FlaskClient, name: str, body: Any = None, **headers: str) -> Any:
    return client.post(f"/actions/{name}", json={} if body is None else body, headers=headers)


def test_a_public_action_needs_no_credential(client: FlaskClient) -> None:
    response = call(client, "acts.public", **{"X-Request-ID": "req-public-1"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "result": {"type": None, "id": None, "request_id": "req-public-1", "action": "acts.public"}
    }


def test_a_jwt_action_runs_for_the_user_of_the_token(
    client: FlaskClient, user: dict[str, Any]
) -> None:
    response = call(client, "acts.jwt", **bearer(user["access_token"]))
    assert response.status_code == 200, response.get_json()
    result = response.get_json()["result"]
    assert (result["type"], result["id"]) == ("user", user["user"]["id"])


def test_a_jwt_action_without_a_token_is_401(client: FlaskClient) -> None:
    problem(call(client, "acts.jwt"), 401, "AUTH_REQUIRED")


def test_a_jwt_action_with_a_bad_token_is_401_token_invalid(client: FlaskClient) -> None:
    problem(call(client, "acts.jwt", **bearer("not.a.jwt")), 401, "TOKEN_INVALID")


def test_a_jwt_action_refuses_an_api_key(client: FlaskClient, admin: dict[str, Any]) -> None:
    problem(call(client, "acts.jwt", **key_header(client, admin, [])), 401, "AUTH_REQUIRED")


def test_a_revoked_token_is_refused(client: FlaskClient, user: dict[str, Any]) -> None:
    logout = client.post("/userauth/logout", headers=bearer(user["access_token"]))
    assert logout.status_code == 204
    problem(call(client, "acts.jwt", **bearer(user["access_token"])), 401, "TOKEN_REVOKED")


def test_an_api_key_action_runs_for_the_key(client: FlaskClient, admin: dict[str, Any]) -> None:
    headers = key_header(client, admin, [])
    whoami = client.get("/keyauth/whoami", headers=headers).get_json()
    response = call(client, "acts.key", **headers)
    assert response.status_code == 200, response.get_json()
    result = response.get_json()["result"]
    assert (result["type"], result["id"]) == ("api_key", whoami["key_id"])


def test_an_api_key_action_without_a_key_is_401(client: FlaskClient, user: dict[str, Any]) -> None:
    problem(call(client, "acts.key"), 401, "API_KEY_REQUIRED")
    problem(call(client, "acts.key", **bearer(user["access_token"])), 401, "API_KEY_REQUIRED")
    problem(call(client, "acts.key", **{"X-API-Key": "pbk_nope.nope"}), 401, "API_KEY_INVALID")


def test_a_jwt_or_api_key_action_takes_either(
    client: FlaskClient, user: dict[str, Any], admin: dict[str, Any]
) -> None:
    as_user = call(client, "acts.either", **bearer(user["access_token"]))
    as_key = call(client, "acts.either", **key_header(client, admin, []))
    assert as_user.get_json()["result"]["type"] == "user"
    assert as_key.get_json()["result"]["type"] == "api_key"
    problem(call(client, "acts.either"), 401, "AUTH_REQUIRED")


def test_a_user_without_the_role_is_403_forbidden(
    client: FlaskClient, user: dict[str, Any], admin: dict[str, Any]
) -> None:
    problem(call(client, "acts.admin", **bearer(user["access_token"])), 403, "FORBIDDEN")
    assert call(client, "acts.admin", **bearer(admin["access_token"])).status_code == 200


def test_a_key_without_the_scope_is_403_insufficient_scope(
    client: FlaskClient, admin: dict[str, Any]
) -> None:
    unscoped = key_header(client, admin, ["other:read"])
    problem(call(client, "acts.scoped", **unscoped), 403, "INSUFFICIENT_SCOPE")
    scoped = key_header(client, admin, ["acts:write"])
    assert call(client, "acts.scoped", **scoped).status_code == 200


def test_roles_govern_users_and_scopes_limit_keys_on_a_mixed_action(
    client: FlaskClient, user: dict[str, Any], admin: dict[str, Any]
) -> None:
    assert call(client, "acts.mixed", **bearer(admin["access_token"])).status_code == 200
    problem(call(client, "acts.mixed", **bearer(user["access_token"])), 403, "FORBIDDEN")
    scoped = key_header(client, admin, ["acts:write"])
    assert call(client, "acts.mixed", **scoped).status_code == 200
    unscoped = key_header(client, admin, [])
    problem(call(client, "acts.mixed", **unscoped), 403, "INSUFFICIENT_SCOPE")


def test_authentication_comes_before_the_body_is_read(client: FlaskClient) -> None:
    response = client.post(
        "/actions/acts.jwt", data="{not json", headers={"Content-Type": "application/json"}
    )
    problem(response, 401, "AUTH_REQUIRED")


def test_an_unknown_action_is_404_action_not_found(client: FlaskClient) -> None:
    body = problem(call(client, "acts.nothing"), 404, "ACTION_NOT_FOUND")
    assert "acts.nothing" in body["detail"]


def test_an_action_answers_only_post(client: FlaskClient) -> None:
    response = client.get("/actions/acts.public")
    problem(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response.headers["Allow"]
