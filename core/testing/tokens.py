"""Tokens for tests: the bearer header, an expired access token, the tokens a connect refuses.

Users and API keys come from the modules that own them (their ``testing.py`` plugins)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt as pyjwt


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def expired_access_token(access_token: str, secret: str) -> str:
    """An access token like ``access_token`` (same subject and key id), signed with
    ``secret``, that expired ten seconds ago."""
    claims = pyjwt.decode(access_token, options={"verify_signature": False})
    kid = pyjwt.get_unverified_header(access_token)["kid"]
    now = int(time.time())
    claims.update(iat=now - 100, nbf=now - 100, exp=now - 10, jti=uuid.uuid4().hex)
    return pyjwt.encode(claims, secret, "HS256", headers={"kid": kid})


def refused_tokens(tokens: dict[str, Any], secret: str) -> dict[str | None, str]:
    """Tokens a socket connect must refuse, each with its code: none, garbage, expired (same
    subject, signed with ``secret``), and the login's refresh token in place of its access
    token."""
    return {
        None: "AUTH_REQUIRED",
        "garbage": "TOKEN_INVALID",
        expired_access_token(tokens["access_token"], secret): "TOKEN_EXPIRED",
        tokens["refresh_token"]: "TOKEN_INVALID",
    }
