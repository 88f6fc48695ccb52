"""The shapes of the users routes (docs/auth.md "Users"): what they take and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from modules.auth.users import (
    PASSWORD_MAX,
    PASSWORD_MIN,
    USERNAME,
    check_email,
    check_password,
    check_username,
)


class Request(BaseModel):
    """A request body: unknown fields are refused, like an action's params."""

    model_config = ConfigDict(extra="forbid")


class Registration(Request):
    email: Annotated[
        str,
        Field(json_schema_extra={"format": "email", "maxLength": 254}),
        AfterValidator(check_email),
    ]
    username: Annotated[
        str,
        Field(json_schema_extra={"pattern": f"^{USERNAME.pattern}$"}),
        AfterValidator(check_username),
    ]
    password: Annotated[
        str,
        Field(json_schema_extra={"minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX}),
        AfterValidator(check_password),
    ]


class Credentials(Request):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    #: The ``device_token`` an earlier login of this account answered on this device: the
    #: attempt is then judged by the device's own failure budget, so failures from elsewhere
    #: do not lock it out. Unknown, expired or another account's: an untrusted attempt.
    device_token: str | None = Field(None, max_length=128)


class Refresh(Request):
    refresh_token: str = Field(min_length=1, max_length=8192)


class Logout(Request):
    """The refresh token too, to end its login as well (optional)."""

    refresh_token: str | None = Field(None, max_length=8192)


class User(BaseModel):
    """A user as the API shows one: never a password hash."""

    id: str
    email: str
    username: str
    roles: list[str]
    created_at: datetime


class UserAnswer(BaseModel):
    user: User


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    #: Seconds until the access token expires.
    expires_in: int
    #: Seconds until the refresh token expires.
    refresh_expires_in: int
    user: User


class LoginAnswer(TokenPair):
    """A login's token pair, plus the device token to send with this device's next login."""

    #: Opaque; keep it on the device (it is not a credential: the password is still needed).
    #: Each login answers a new one and the one it presented stops working.
    device_token: str
    #: Seconds the device token stays valid (``LOGIN_DEVICE_TTL``).
    device_expires_in: int


class Session(BaseModel):
    """One of the caller's logins (a refresh-token family): never a token."""

    id: str
    created_at: datetime
    #: The last login or refresh of this session.
    last_used_at: datetime
    #: The client address of the last login or refresh (the trusted-proxy client IP).
    ip: str | None
    user_agent: str | None
    #: Whether this is the session of the access token making the request.
    current: bool


class EndedSessions(BaseModel):
    """How many sessions were ended."""

    ended: int
