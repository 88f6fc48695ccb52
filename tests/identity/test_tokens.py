"""JWT verification, revocation, refresh rotation and key rotation, through the HTTP API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask.testing import FlaskClient

from core.errors import ConfigurationError
from core.testing import TEST_JWT_SECRET, AppFactory, bearer, problem
from modules.auth.testing import login, register, set_roles, user_with_tokens
from tests.support.servers import stopped

ISSUER = AUDIENCE = "python-base-04"


def utc(seconds_from_now: float = 0) -> str:
    """A ``retired_at`` (UTC, to the second)."""
    moment = time.gmtime(time.time() + seconds_from_now)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)


def retired(secret: str, seconds_from_now: float = 0) -> str:
    """A JWT_PREVIOUS_SECRETS entry: ``secret``, retired now (or that far from now)."""
    return f"{utc(seconds_from_now)}:{secret}"


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def forge(
    claims: dict[str, Any],
    key: Any = TEST_JWT_SECRET,
    alg: str = "HS256",
    headers: dict[str, Any] | None = None,
) -> str:
    return jwt.encode(claims, key, alg, headers=headers)


def base_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "507f1f77bcf86cd799439011",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j1",
        "type": "access",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "fam": "f1",
        "roles": ["user"],
    }
    claims.update(overrides)
    return claims


def kid_of(client: FlaskClient) -> str:
    _user, pair = user_with_tokens(client)
    kid: str = jwt.get_unverified_header(pair["access_token"])["kid"]
    return kid


def test_access_tokens_carry_the_contract_claims(client: FlaskClient) -> None:
    user, pair = user_with_tokens(client)
    access = claims_of(pair["access_token"])
    assert {"sub", "iat", "nbf", "exp", "jti", "type", "iss", "aud", "roles"} <= set(access)
    assert access["sub"] == user["id"]
    assert access["type"] == "access"
    assert access["roles"] == ["user"]
    assert access["exp"] - access["iat"] == 900
    header = jwt.get_unverified_header(pair["access_token"])
    assert header["alg"] == "HS256"
    assert header["kid"]
    assert claims_of(pair["refresh_token"])["type"] == "refresh"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"exp": int(time.time()) - 10}, "TOKEN_EXPIRED"),
        ({"nbf": int(time.time()) + 600}, "TOKEN_INVALID"),
        ({"aud": "someone-else"}, "TOKEN_INVALID"),
        ({"iss": "someone-else"}, "TOKEN_INVALID"),
        ({"type": "refresh"}, "TOKEN_INVALID"),
        ({"sub": 12345}, "TOKEN_INVALID"),
    ],
)
def test_bad_claims_are_rejected_with_their_code(
    client: FlaskClient, overrides: dict[str, Any], code: str
) -> None:
    token = forge(base_claims(**overrides), headers={"kid": kid_of(client)})
    problem(client.get("/userauth/me", headers=bearer(token)), 401, code)


def test_missing_claims_are_rejected(client: FlaskClient) -> None:
    kid = kid_of(client)
    for claim in ("exp", "jti", "fam", "aud", "type"):
        claims = base_claims()
        del claims[claim]
        token = forge(claims, headers={"kid": kid})
        problem(client.get("/userauth/me", headers=bearer(token)), 401, "TOKEN_INVALID")


def test_alg_none_is_rejected(client: FlaskClient) -> None:
    kid = kid_of(client)

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{b64(base_claims())}."
    problem(client.get("/userauth/me", headers=bearer(token)), 401, "TOKEN_INVALID")


def test_a_token_signed_with_another_key_is_rejected(client: FlaskClient) -> None:
    token = forge(
        base_claims(), key="another-secret-0123456789abcdef-xyz", headers={"kid": kid_of(client)}
    )
    problem(client.get("/userauth/me", headers=bearer(token)), 401, "TOKEN_INVALID")


def test_a_refresh_token_is_not_an_access_token_and_vice_versa(client: FlaskClient) -> None:
    _user, pair = user_with_tokens(client)
    problem(client.get("/userauth/me", headers=bearer(pair["refresh_token"])), 401, "TOKEN_INVALID")
    swapped = client.post("/public/refresh", json={"refresh_token": pair["access_token"]})
    problem(swapped, 401, "TOKEN_INVALID")


def test_refresh_rotates_and_each_refresh_token_works_once(client: FlaskClient) -> None:
    user, first = user_with_tokens(client)
    response = client.post("/public/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    second = response.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["user"] == user
    assert claims_of(second["access_token"])["fam"] == claims_of(first["access_token"])["fam"]
    assert client.get("/userauth/me", headers=bearer(second["access_token"])).status_code == 200

    reused = client.post("/public/refresh", json={"refresh_token": first["refresh_token"]})
    problem(reused, 401, "REFRESH_TOKEN_REUSED")
    # The whole login is revoked: the tokens issued by the honest refresh too.
    for token in (first["access_token"], second["access_token"]):
        problem(client.get("/userauth/me", headers=bearer(token)), 401, "TOKEN_REVOKED")
    again = client.post("/public/refresh", json={"refresh_token": second["refresh_token"]})
    problem(again, 401, "TOKEN_REVOKED")


def test_reuse_revokes_only_that_login(client: FlaskClient) -> None:
    user, first_login = user_with_tokens(client)
    other_login = login(client, user["email"])
    client.post("/public/refresh", json={"refresh_token": first_login["refresh_token"]})
    client.post("/public/refresh", json={"refresh_token": first_login["refresh_token"]})
    assert (
        client.get("/userauth/me", headers=bearer(other_login["access_token"])).status_code == 200
    )


def test_refresh_picks_up_changed_roles(client: FlaskClient, app: Any) -> None:
    user, pair = user_with_tokens(client)
    set_roles(app, user["email"], ["editor"])
    refreshed = client.post("/public/refresh", json={"refresh_token": pair["refresh_token"]})
    assert claims_of(refreshed.get_json()["access_token"])["roles"] == ["editor"]


def test_logout_revokes_the_login_on_every_instance(make_app: AppFactory) -> None:
    first, second = make_app().test_client(), make_app().test_client()
    user, pair = user_with_tokens(first)
    assert second.get("/userauth/me", headers=bearer(pair["access_token"])).status_code == 200

    response = first.post(
        "/userauth/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers=bearer(pair["access_token"]),
    )
    assert response.status_code == 204
    assert response.data == b""
    problem(second.get("/userauth/me", headers=bearer(pair["access_token"])), 401, "TOKEN_REVOKED")
    problem(
        second.post("/public/refresh", json={"refresh_token": pair["refresh_token"]}),
        401,
        "TOKEN_REVOKED",
    )
    # Another login of the same user is unaffected.
    fresh = login(second, user["email"])
    assert first.get("/userauth/me", headers=bearer(fresh["access_token"])).status_code == 200


NEW_SECRET = "new-jwt-secret-after-rotation-0123456789abcd"


def rotation(make_app: AppFactory) -> tuple[dict[str, Any], dict[str, Any], FlaskClient]:
    """A user with tokens of the test key, and an app rotated to NEW_SECRET that keeps the
    test key as a previous one, retired in two seconds."""
    user, pair = user_with_tokens(make_app().test_client())
    rotated = make_app(
        {"JWT_SECRET": NEW_SECRET, "JWT_PREVIOUS_SECRETS": retired(TEST_JWT_SECRET, 2)}
    ).test_client()
    return user, pair, rotated


def test_a_rotated_out_key_still_verifies_and_a_removed_key_does_not(
    make_app: AppFactory,
) -> None:
    user, pair, rotated = rotation(make_app)
    assert rotated.get("/userauth/me", headers=bearer(pair["access_token"])).status_code == 200
    new_pair = login(rotated, user["email"])
    assert (
        jwt.get_unverified_header(new_pair["access_token"])["kid"]
        != (jwt.get_unverified_header(pair["access_token"])["kid"])
    )

    removed = make_app({"JWT_SECRET": NEW_SECRET}).test_client()
    problem(removed.get("/userauth/me", headers=bearer(pair["access_token"])), 401, "TOKEN_INVALID")
    assert removed.get("/userauth/me", headers=bearer(new_pair["access_token"])).status_code == 200


def test_a_retired_key_verifies_only_what_it_signed_before_it_retired(
    make_app: AppFactory,
) -> None:
    """The attack: a 30-day admin token signed with a key in JWT_PREVIOUS_SECRETS."""
    user, pair, rotated = rotation(make_app)
    kid = jwt.get_unverified_header(pair["access_token"])["kid"]
    now = int(time.time())

    def with_old_key(**claims: Any) -> int:
        token = forge(
            base_claims(sub=user["id"], roles=["admin", "user"], **claims),
            headers={"kid": kid},
        )
        return int(rotated.get("/userauth/me", headers=bearer(token)).status_code)

    # Issued before the key retired, with an access token's life: accepted (the rotation).
    assert with_old_key(iat=now - 10, nbf=now - 10, exp=now - 10 + 900) == 200
    assert rotated.get("/userauth/me", headers=bearer(pair["access_token"])).status_code == 200
    # A 30-day admin token: no access token lives that long.
    assert with_old_key(iat=now - 10, nbf=now - 10, exp=now + 30 * 86400) == 401
    # Issued after the key retired (the old key signing new tokens): refused.
    time.sleep(2.5)
    later = int(time.time())
    assert with_old_key(iat=later, nbf=later, exp=later + 600) == 401
    # A refresh token no longer-lived than JWT_REFRESH_TTL and issued before: still rotates.
    refreshed = rotated.post("/public/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.get_json()
    assert jwt.get_unverified_header(refreshed.get_json()["access_token"])["kid"] != kid


def test_previous_keys_without_a_retirement_time_are_refused(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        make_app({"JWT_PREVIOUS_SECRETS": "x" * 40}, start=False)
    assert excinfo.value.problems == [
        "JWT_PREVIOUS_SECRETS (from env): Value error, each entry must be <retired_at>:<secret>,"
        " retired_at the UTC time the key stopped signing, e.g. 2026-12-07T13:00:00Z"
    ]
    assert "x" * 40 not in str(excinfo.value)


def pem(private_key: Any) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_rs256_tokens_and_hs_rs_confusion(make_app: AppFactory) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    client = make_app({"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY": pem(private)}).test_client()
    user, pair = user_with_tokens(client)
    assert jwt.get_unverified_header(pair["access_token"])["alg"] == "RS256"
    assert client.get("/userauth/me", headers=bearer(pair["access_token"])).status_code == 200

    # The classic confusion attack: HS256 keyed with the public key.
    kid = jwt.get_unverified_header(pair["access_token"])["kid"]
    forged = _hs256_with_raw_key(base_claims(sub=user["id"]), public_pem, kid)
    problem(client.get("/userauth/me", headers=bearer(forged)), 401, "TOKEN_INVALID")


def _hs256_with_raw_key(claims: dict[str, Any], key: bytes, kid: str) -> str:
    """HS256 by hand: PyJWT itself refuses to HMAC with a PEM key."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def test_es256_keys_rotate_with_previous_public_keys(make_app: AppFactory) -> None:
    old_key = ec.generate_private_key(ec.SECP256R1())
    new_key = ec.generate_private_key(ec.SECP256R1())
    old_client = make_app({"JWT_ALGORITHM": "ES256", "JWT_PRIVATE_KEY": pem(old_key)}).test_client()
    _user, pair = user_with_tokens(old_client)
    old_public = (
        old_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    rotated = make_app(
        {
            "JWT_ALGORITHM": "ES256",
            "JWT_PRIVATE_KEY": pem(new_key),
            "JWT_PREVIOUS_PUBLIC_KEYS": f"{utc(2)}\n{old_public}",
        }
    ).test_client()
    assert rotated.get("/userauth/me", headers=bearer(pair["access_token"])).status_code == 200
    without_old = make_app(
        {"JWT_ALGORITHM": "ES256", "JWT_PRIVATE_KEY": pem(new_key)}
    ).test_client()
    problem(
        without_old.get("/userauth/me", headers=bearer(pair["access_token"])), 401, "TOKEN_INVALID"
    )


@pytest.mark.parametrize("fail_open", ["false", "true"])
def test_redis_down_fails_closed_by_default_or_open_when_configured(
    make_app: AppFactory, redis_server: Any, fail_open: str
) -> None:
    client = make_app({"REVOCATION_FAIL_OPEN": fail_open}).test_client()
    user, pair = user_with_tokens(client)
    with stopped(redis_server):
        response = client.get("/userauth/me", headers=bearer(pair["access_token"]))
    if fail_open == "true":
        assert response.status_code == 200
        assert response.get_json()["user"]["id"] == user["id"]
    else:
        problem(response, 503, "DEPENDENCY_UNAVAILABLE")


def test_register_then_login_with_fresh_app_instances(make_app: AppFactory) -> None:
    user = register(make_app().test_client())
    pair = login(make_app().test_client(), user["email"])
    assert (
        make_app()
        .test_client()
        .get("/userauth/me", headers=bearer(pair["access_token"]))
        .status_code
        == 200
    )


def test_flask_jwt_rotate_prints_a_working_procedure(make_app: AppFactory) -> None:
    app = make_app(start=False)
    result = app.test_cli_runner().invoke(args=["jwt", "rotate"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    new_secret = lines[lines.index("New secret (shown once):") + 1]
    assert len(new_secret) >= 48
    assert TEST_JWT_SECRET not in result.output
    assert "JWT_PREVIOUS_SECRETS" in result.output

    # Following the procedure keeps old tokens valid and signs new ones with the new key.
    client = make_app().test_client()
    _user, pair = user_with_tokens(client)
    rotated = make_app(
        {"JWT_SECRET": new_secret, "JWT_PREVIOUS_SECRETS": retired(TEST_JWT_SECRET, 2)}
    ).test_client()
    assert rotated.get("/userauth/me", headers=bearer(pair["access_token"])).status_code == 200


def test_flask_jwt_rotate_for_ed25519_prints_a_new_key_and_the_current_public_key(
    make_app: AppFactory,
) -> None:
    app = make_app(
        {"JWT_ALGORITHM": "EdDSA", "JWT_PRIVATE_KEY": pem(ed25519.Ed25519PrivateKey.generate())},
        start=False,
    )
    result = app.test_cli_runner().invoke(args=["jwt", "rotate"])
    assert result.exit_code == 0, result.output
    assert result.output.count("-----BEGIN PRIVATE KEY-----") == 1
    assert result.output.count("-----BEGIN PUBLIC KEY-----") == 1


def test_remembered_tokens_each_keep_their_own_user(client: FlaskClient) -> None:
    """Admission remembers each access token's principal (docs/decisions.md): requests
    alternating between logins each get their own user, and a revoked one is refused."""
    first_user, first = user_with_tokens(client)
    second_user, second = user_with_tokens(client)
    for _ in range(3):
        for user, pair in ((first_user, first), (second_user, second)):
            me = client.get("/userauth/me", headers=bearer(pair["access_token"]))
            assert me.status_code == 200
            assert me.get_json() == {"user": user}
    logout = client.post("/userauth/logout", headers=bearer(first["access_token"]), json={})
    assert logout.status_code == 204
    problem(client.get("/userauth/me", headers=bearer(first["access_token"])), 401, "TOKEN_REVOKED")
    assert client.get("/userauth/me", headers=bearer(second["access_token"])).status_code == 200


def test_a_remembered_token_still_expires_and_keeps_its_type(make_app: AppFactory) -> None:
    client = make_app({"JWT_ACCESS_TTL": "2"}).test_client()
    _, pair = user_with_tokens(client)
    assert client.get("/userauth/me", headers=bearer(pair["access_token"])).status_code == 200
    assert client.get("/userauth/me", headers=bearer(pair["access_token"])).status_code == 200
    time.sleep(2.1)
    problem(client.get("/userauth/me", headers=bearer(pair["access_token"])), 401, "TOKEN_EXPIRED")

    # A refresh token remembered by /public/refresh is still no access token.
    _, other = user_with_tokens(client)
    client.post("/public/refresh", json={"refresh_token": other["refresh_token"]})
    problem(
        client.get("/userauth/me", headers=bearer(other["refresh_token"])), 401, "TOKEN_INVALID"
    )


def test_a_view_cannot_change_the_verified_claims_later_requests_reuse(
    client: FlaskClient,
) -> None:
    _, pair = user_with_tokens(client)
    headers = bearer(pair["access_token"])
    tried = client.post("/userauth/probe/promote-myself", headers=headers)
    assert tried.get_json() == {"replace": "refused", "append": "refused"}
    # The same token again (its claims come from the per-process cache): still no admin.
    problem(client.get("/userauth/api-keys", headers=headers), 403, "FORBIDDEN")
    assert client.get("/userauth/me", headers=headers).get_json()["user"]["roles"] == ["user"]
