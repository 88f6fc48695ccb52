"""JWTManager: issues and verifies access and refresh tokens; revocation and rotation.

Keys are parsed once at start-up. The signing key has a ``kid`` (a digest of the key, so it
needs no extra setting); earlier keys stay in the verification set while tokens signed with
them are alive, so keys rotate without logging anyone out (see docs/auth.md, "Rotating keys").
An earlier key carries the time it was retired: it verifies only tokens issued before then
and no longer-lived than their type's TTL, so it can never sign anything new, and whoever
holds a leaked retired key can forge nothing that outlives ``retired_at`` + the TTL.
Only the configured algorithm is accepted, which rejects ``alg: none`` and HS/RS confusion.

Every login starts a token *family* (``fam`` claim). Refresh tokens work once: presenting a
used one revokes the whole family (``REFRESH_TOKEN_REUSED``). Revocation marks live in Redis
with a TTL equal to the remaining life of what they revoke: ``jwt:revoked:jti:<jti>`` and
``jwt:revoked:fam:<family>``. There is no allowlist of issued tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar, cast

import jwt
from cryptography.hazmat.primitives import serialization

from config.settings import Settings, parse_previous_public_keys
from core.errors import DependencyUnavailable, Unauthorized
from core.managers.base import Manager
from core.managers.redis import RedisManager

ACCESS = "access"
REFRESH = "refresh"


def token_revoked() -> Unauthorized:
    """The error of a token whose login was revoked (logout, a reused refresh token, an ended
    session): the one definition, for requests, socket connects and the socket sweep."""
    return Unauthorized("The token has been revoked.", code="TOKEN_REVOKED")


_REQUIRED = ["exp", "iat", "nbf", "sub", "jti", "type", "iss", "aud", "fam"]
_VERIFIED_MAX = 4096  # tokens remembered as verified, per process
Made = TypeVar("Made")


class _Verified:
    """A token whose signature was verified: its read-only claims, and what callers made of
    them (:meth:`JWTManager.decode_as`), which live and go with it."""

    __slots__ = ("claims", "made")

    def __init__(self, claims: Mapping[str, Any]) -> None:
        self.claims = claims
        self.made: dict[Callable[[Mapping[str, Any]], Any], Any] = {}


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    family: str


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    key: Any
    #: Unix time the key stopped signing; None for the current key.
    retired_at: float | None = None


def _kid(material: bytes) -> str:
    return hashlib.sha256(material).hexdigest()[:16]


def _load_keys(settings: Settings) -> tuple[VerificationKey, Any, list[VerificationKey]]:
    """(signing kid + key, verification keys by kid), parsed once."""
    if settings.jwt_algorithm.startswith("HS"):
        signing = settings.jwt_secret.encode()
        current = VerificationKey(_kid(signing), signing)
        previous = [
            VerificationKey(_kid(old.key.encode()), old.key.encode(), old.retired_at.timestamp())
            for old in settings.jwt_previous_secrets
        ]
        return current, signing, [current, *previous]
    if not settings.jwt_private_key:
        raise ValueError(f"JWT_PRIVATE_KEY is required for JWT_ALGORITHM={settings.jwt_algorithm}")
    private = serialization.load_pem_private_key(settings.jwt_private_key.encode(), password=None)
    public = private.public_key()
    current = VerificationKey(_kid(_public_der(public)), public)
    previous = []
    for old in parse_previous_public_keys(settings.jwt_previous_public_keys or ""):
        key = serialization.load_pem_public_key(old.key.encode())
        previous.append(VerificationKey(_kid(_public_der(key)), key, old.retired_at.timestamp()))
    return current, private, [current, *previous]


def _read_only(claims: Mapping[str, Any]) -> Mapping[str, Any]:
    frozen = {k: tuple(v) if isinstance(v, list) else v for k, v in claims.items()}
    return MappingProxyType(frozen)


def _public_der(key: Any) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


class JWTManager(Manager):
    name = "jwt"

    def __init__(self, settings: Settings, redis_manager: RedisManager) -> None:
        self.settings = settings
        self.redis = redis_manager
        self.algorithm = settings.jwt_algorithm
        current, self._signing_key, keys = _load_keys(settings)
        self.kid = current.kid
        self._keys = {key.kid: key.key for key in keys}
        #: kid -> when it stopped signing, for the previous keys.
        self._retired = {key.kid: key.retired_at for key in keys if key.retired_at is not None}
        self._verified: dict[str, _Verified] = {}
        self.access_ttl = settings.jwt_access_ttl
        self.refresh_ttl = settings.jwt_refresh_ttl

    # -- issuing ------------------------------------------------------------------------

    def issue_pair(
        self, subject: str, roles: Sequence[str], family: str | None = None, **claims: Any
    ) -> TokenPair:
        """A new access + refresh token of ``family`` (a new login when None)."""
        family = family or secrets.token_urlsafe(16)
        now = int(time.time())
        access = self._encode(
            subject, ACCESS, family, now, self.access_ttl, {"roles": list(roles), **claims}
        )
        refresh = self._encode(subject, REFRESH, family, now, self.refresh_ttl, {})
        return TokenPair(access, refresh, self.access_ttl, self.refresh_ttl, family)

    def _encode(
        self, subject: str, kind: str, family: str, now: int, ttl: int, extra: Mapping[str, Any]
    ) -> str:
        payload = {
            "sub": str(subject),
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(16),
            "type": kind,
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "fam": family,
            **extra,
        }
        return jwt.encode(payload, self._signing_key, self.algorithm, headers={"kid": self.kid})

    # -- verifying ------------------------------------------------------------------------

    def decode(self, token: str, expected_type: str = ACCESS) -> Mapping[str, Any]:
        """Verify signature and claims (not revocation); raises Unauthorized with its code.

        A token whose signature was verified is remembered (bounded, per process), so a
        client's next requests with it skip the signature and parsing; the time claims and
        the type are checked again every time. The claims are shared by every request with
        that token, so they are read-only (lists become tuples): a view that changed them
        would change what the next request is allowed to do.
        """
        return self._verified_entry(token, expected_type).claims

    def decode_as(
        self,
        token: str,
        make: Callable[[Mapping[str, Any]], Made],
        expected_type: str = ACCESS,
    ) -> Made:
        """``make(claims)`` of a token :meth:`decode` accepts, checked as it checks on every
        call, but made once while the token stays remembered as verified: what a caller
        builds from a token's claims (admission: its Principal and revocation marks) is kept
        in the token's entry of the one bounded cache, and goes with it. ``make`` must be
        the same callable every time and its result read-only: later calls share it."""
        entry = self._verified_entry(token, expected_type)
        try:
            return cast(Made, entry.made[make])
        except KeyError:
            result = entry.made[make] = make(entry.claims)
            return result

    def _verified_entry(self, token: str, expected_type: str) -> _Verified:
        entry = self._verified.get(token)
        if entry is not None:
            self._check_times(entry.claims)
            if entry.claims["type"] != expected_type:
                raise Unauthorized("The token is invalid.", code="TOKEN_INVALID")
            return entry
        entry = _Verified(_read_only(self._decode(token, expected_type)))
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = entry
        return entry

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = time.time()
        leeway = self.settings.jwt_leeway
        if claims["exp"] <= now - leeway:
            raise Unauthorized("The token has expired.", code="TOKEN_EXPIRED")
        if claims["nbf"] > now + leeway:
            raise Unauthorized("The token is invalid.", code="TOKEN_INVALID")

    def _decode(self, token: str, expected_type: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            kid = str(header.get("kid", ""))
            key = self._keys.get(kid)
            if key is None:
                raise Unauthorized("The token is invalid.", code="TOKEN_INVALID")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired.", code="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise Unauthorized("The token is invalid.", code="TOKEN_INVALID") from None
        if claims["type"] != expected_type or not isinstance(claims["sub"], str):
            raise Unauthorized("The token is invalid.", code="TOKEN_INVALID")
        retired_at = self._retired.get(kid)
        if retired_at is not None and not self._signed_while_current(claims, retired_at):
            raise Unauthorized("The token is invalid.", code="TOKEN_INVALID")
        return claims

    def _signed_while_current(self, claims: Mapping[str, Any], retired_at: float) -> bool:
        """A retired key's token: issued before the key retired, and no longer-lived than
        its type allows (a forged 30-day token is not)."""
        ttl = self.access_ttl if claims["type"] == ACCESS else self.refresh_ttl
        issued, expires = claims["iat"], claims["exp"]
        if not isinstance(issued, int | float) or not isinstance(expires, int | float):
            return False
        return issued < retired_at and expires - issued <= ttl

    def revocation_keys(self, claims: Mapping[str, Any]) -> list[str]:
        """The Redis keys whose existence means these claims are revoked."""
        return [
            self.redis.key("jwt", "revoked", "jti", claims["jti"]),
            self.redis.key("jwt", "revoked", "fam", claims["fam"]),
        ]

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """One Redis round trip; Redis down follows REVOCATION_FAIL_OPEN."""
        try:
            return bool(self.redis.client.exists(*self.revocation_keys(claims)))
        except RedisManager.unavailable_errors:
            if self.settings.revocation_fail_open:
                return False
            raise DependencyUnavailable("redis") from None

    def verify(self, token: str, expected_type: str = ACCESS) -> Mapping[str, Any]:
        """Decode and check revocation: the whole check for an incoming token."""
        claims = self.decode(token, expected_type)
        if self.is_revoked(claims):
            raise token_revoked()
        return claims

    # -- revoking and rotating ------------------------------------------------------------

    def revoke_family(self, family: str) -> None:
        """Revoke every token of a login; lives as long as its longest token could."""
        self.revoke_families([family])

    def revoke_families(self, families: Sequence[str]) -> None:
        """Revoke every token of these logins, in one round trip."""
        ttl = self.refresh_ttl + self.settings.jwt_leeway + 1
        with self.redis.client.pipeline(transaction=False) as pipe:
            for family in families:
                pipe.set(self.redis.key("jwt", "revoked", "fam", family), 1, ex=ttl)
            pipe.execute()

    def revoke_token(self, claims: Mapping[str, Any]) -> None:
        remaining = int(claims["exp"]) - int(time.time()) + self.settings.jwt_leeway + 1
        if remaining > 0:
            self.redis.client.set(
                self.redis.key("jwt", "revoked", "jti", claims["jti"]), 1, ex=remaining
            )

    def rotate(self, refresh_token: str, **claims: Any) -> tuple[TokenPair, Mapping[str, Any]]:
        """Exchange a refresh token for a new pair of the same family; each works once.

        ``claims`` are added to the new access token (current roles, username...).
        """
        old = self.verify(refresh_token, REFRESH)
        remaining = max(1, int(old["exp"]) - int(time.time()) + self.settings.jwt_leeway + 1)
        first_use = self.redis.client.set(
            self.redis.key("jwt", "used", old["jti"]), 1, nx=True, ex=remaining
        )
        if not first_use:
            self.revoke_family(old["fam"])
            raise Unauthorized(
                "This refresh token was already used; the login has been revoked.",
                code="REFRESH_TOKEN_REUSED",
            )
        roles = claims.pop("roles", [])
        return self.issue_pair(old["sub"], roles, family=old["fam"], **claims), old

    def public_key_pem(self) -> str:
        """The PEM public key of the current signing key (asymmetric algorithms only)."""
        key = self._keys[self.kid]
        pem: bytes = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode()

    def close(self) -> None:
        """Nothing to release: keys are in memory and Redis belongs to the RedisManager."""
