"""The ``users`` collection: owned by the auth module, indexed on email and username."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from core.errors import Conflict, NotFound, ValidationFailed
from core.managers.database import MongoStore
from core.managers.database.json import to_json_compatible
from modules.auth.passwords import PasswordHasher

COLLECTION = "users"
EMAIL = re.compile(
    r"[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+"
)
USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
ROLE = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str) -> str:
    if len(email) > 254 or not EMAIL.fullmatch(email.strip()):
        raise ValueError("must be a valid email address")
    return email


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise ValueError("must be 3-32 characters of A-Z a-z 0-9 _ . -")
    return username


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValueError(f"must be {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    return password


def validate_roles(roles: Iterable[str]) -> list[str]:
    roles = sorted(set(roles))
    bad = [role for role in roles if not ROLE.fullmatch(role)]
    if bad:
        raise ValidationFailed([{"field": "/roles", "message": f"invalid role names: {bad}"}])
    return roles


def public(user: Mapping[str, Any]) -> dict[str, Any]:
    """The ``User`` of the API: never the password hash."""
    return {
        "id": str(user["_id"]),
        "email": user["email"],
        "username": user["username"],
        "roles": list(user.get("roles", [])),
        "created_at": to_json_compatible(user["created_at"]),
    }


class UserStore:
    def __init__(self, mongo: MongoStore, hasher: PasswordHasher) -> None:
        self.collection = mongo.collection(COLLECTION)
        self.hasher = hasher
        mongo.declare_indexes(
            COLLECTION,
            [
                IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),
                IndexModel([("username_lower", ASCENDING)], unique=True, name="username_unique"),
            ],
        )

    def create(
        self, email: str, username: str, password: str, roles: Iterable[str] = ("user",)
    ) -> dict[str, Any]:
        document = {
            "email": normalise_email(email),
            "username": username,
            "username_lower": username.lower(),
            "password_hash": self.hasher.hash(password),
            "roles": validate_roles(roles),
            "created_at": datetime.now(UTC).replace(microsecond=0),
        }
        try:
            result = self.collection.insert_one(document)
        except DuplicateKeyError as exc:
            key = (exc.details or {}).get("keyPattern", {})
            if "email" in key or "email_unique" in str(exc):
                raise Conflict("This email is already registered.", code="EMAIL_TAKEN") from None
            raise Conflict("This username is taken.", code="USERNAME_TAKEN") from None
        document["_id"] = result.inserted_id
        return document

    def ensure_available(self, email: str, username: str) -> None:
        """409 ``EMAIL_TAKEN`` / ``USERNAME_TAKEN`` before any hashing (two indexed lookups);
        the unique indexes still decide races in :meth:`create`."""
        if self.collection.find_one({"email": normalise_email(email)}, {"_id": 1}) is not None:
            raise Conflict("This email is already registered.", code="EMAIL_TAKEN")
        if self.collection.find_one({"username_lower": username.lower()}, {"_id": 1}) is not None:
            raise Conflict("This username is taken.", code="USERNAME_TAKEN")

    def by_email(self, email: str) -> dict[str, Any] | None:
        return self.collection.find_one({"email": normalise_email(email)})

    def by_id(self, user_id: str) -> dict[str, Any] | None:
        try:
            return self.collection.find_one({"_id": ObjectId(user_id)})
        except InvalidId:
            return None

    def set_password_hash(self, user_id: ObjectId, password_hash: str) -> None:
        self.collection.update_one({"_id": user_id}, {"$set": {"password_hash": password_hash}})

    def set_roles(self, email: str, roles: Iterable[str]) -> dict[str, Any]:
        user = self.collection.find_one_and_update(
            {"email": normalise_email(email)},
            {"$set": {"roles": validate_roles(roles)}},
            return_document=ReturnDocument.AFTER,
        )
        if user is None:
            raise NotFound(f"No user with email {normalise_email(email)}.")
        return user
