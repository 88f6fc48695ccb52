"""The shapes of the API-key routes (docs/auth.md "API keys")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: What a scope may be made of ("notes:read"), and the bounds of a new key's fields.
SCOPE_PATTERN = r"^[a-z0-9:._-]{1,64}$"
NAME_MAX, SCOPES_MAX, EXPIRES_MAX_DAYS = 100, 50, 3650

Scope = Annotated[str, Field(pattern=SCOPE_PATTERN, examples=["notes:read"])]


class NewKey(BaseModel):
    """A key to create, from ``POST /userauth/api-keys`` or ``flask api-keys create`` (both
    validate it with the one validation path)."""

    model_config = ConfigDict(extra="forbid")
    #: Stripped of surrounding blanks; never blank.
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        max_length=NAME_MAX
    )
    scopes: list[Scope] = Field(max_length=SCOPES_MAX)
    #: Days until the key expires; null or left out: never.
    expires_in_days: int | None = Field(None, ge=1, le=EXPIRES_MAX_DAYS)


class _Key(BaseModel):
    id: str
    name: str
    #: Identifies the key in lists and logs; the key itself starts with ``<prefix>.``.
    prefix: str
    scopes: list[str]
    created_at: datetime
    #: null: the key does not expire.
    expires_at: datetime | None


class ApiKey(_Key):
    """A key as lists show it: never the key itself."""

    last_used_at: datetime | None
    #: ``user:<id>`` or ``cli``.
    created_by: str | None


class CreatedKey(_Key):
    """The answer of create, the only one with the full ``key`` (``<prefix>.<secret>``)."""

    key: str


class Caller(BaseModel):
    """The API key making the call."""

    key_id: str
    name: str
    scopes: list[str]
