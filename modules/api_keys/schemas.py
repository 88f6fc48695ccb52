"""The shapes of the API-key routes (docs/auth.md "API keys")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from core.managers.api_keys import EXPIRES_MAX_DAYS, NAME_MAX, SCOPE_PATTERN, SCOPES_MAX

Scope = Annotated[str, Field(pattern=SCOPE_PATTERN, examples=["notes:read"])]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=NAME_MAX)
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
