"""An app with a throw-away module ``acts`` whose ``actions.yaml`` covers every auth kind, roles,
scopes, a params schema with every kind of field, handler failures and an unaudited action."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.testing import AppFactory, manager_of
from modules.api_keys.testing import create_api_key
from tests.support.packages import make_modules_package

ACTS_MODULE = textwrap.dedent(
    """
    import gevent

    from core.errors import Conflict
    from core.module import BaseModule


    class Acts(BaseModule):
        pass


    def whoami(params, context):
        principal = context.principal
        return {
            "type": principal.type if principal else None,
            "id": principal.id if principal else None,
            "request_id": context.request_id,
            "action": context.action,
        }


    def echo(params, context):
        return params


    def conflict(params, context):
        raise Conflict("That name is taken.", code="NAME_TAKEN")


    def crash(params, context):
        raise RuntimeError("database password is hunter2")


    def bad_result(params, context):
        return {"count": "not a number"}


    def nap(params, context):
        gevent.sleep(params["seconds"])
        return {"slept": params["seconds"]}
    """
)

ACTS_YAML = textwrap.dedent(
    """
    actions:
      - name: acts.public
        description: Who is calling, for anyone.
        handler: .:whoami
        auth: public
      - name: acts.jwt
        description: Who is calling, for users.
        handler: .:whoami
        auth: jwt
      - name: acts.key
        description: Who is calling, for API keys.
        handler: .:whoami
        auth: api_key
      - name: acts.either
        description: Who is calling, for users and API keys.
        handler: .:whoami
        auth: jwt_or_api_key
      - name: acts.admin
        description: For admins only.
        handler: .:whoami
        auth: jwt
        roles: [admin]
      - name: acts.scoped
        description: For keys with acts:write.
        handler: .:whoami
        auth: api_key
        scopes: [acts:write]
      - name: acts.mixed
        description: Admin users, or keys with acts:write.
        handler: .:whoami
        auth: jwt_or_api_key
        roles: [admin]
        scopes: [acts:write]
      - name: acts.validate
        description: Echo params that follow a strict schema.
        handler: .:echo
        auth: public
        params:
          type: object
          required: [title, count]
          properties:
            title: {type: string, minLength: 1, maxLength: 20}
            count: {type: integer, minimum: 1}
            kind: {enum: [a, b], default: a}
            meta:
              type: object
              required: [level]
              properties:
                level: {type: integer}
            tags:
              type: array
              items: {type: string}
            "a/b": {type: string}
      - name: acts.open
        description: Echo any object.
        handler: .:echo
        auth: public
        params: {type: object, additionalProperties: true}
      - name: acts.conflict
        description: Always refuses with a 409.
        handler: .:conflict
        auth: jwt
      - name: acts.crash
        description: Always fails unexpectedly.
        handler: .:crash
        auth: jwt
      - name: acts.bad-result
        description: Breaks its own result schema.
        handler: .:bad_result
        auth: public
        result:
          type: object
          properties:
            count: {type: integer}
      - name: acts.quiet
        description: Not audited.
        handler: .:echo
        auth: jwt
        audit: false
        params: {type: object, additionalProperties: true}
      - name: acts.nap
        description: Sleeps (cooperatively) for a while.
        handler: .:nap
        auth: public
        timeout: 0.05
        audit: false
        params:
          type: object
          required: [seconds]
          properties:
            seconds: {type: number, maximum: 1}
      - name: acts.limited
        description: Declares a rate limit.
        handler: .:whoami
        auth: public
        rate_limit: "1000/second"
    """
)


def write_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: dict[str, tuple[str, str | None]]
) -> str:
    """A modules package: ``{name: (__init__ source, actions.yaml text or None)}``."""
    package = make_modules_package(
        tmp_path, monkeypatch, {name: source for name, (source, _) in modules.items()}
    )
    for name, (_, yaml_text) in modules.items():
        if yaml_text is not None:
            (tmp_path / package / name / "actions.yaml").write_text(yaml_text)
    return package


@pytest.fixture
def acts_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return write_modules(tmp_path, monkeypatch, {"acts": (ACTS_MODULE, ACTS_YAML)})


@pytest.fixture
def app(make_app: AppFactory, acts_package: str) -> Flask:
    return make_app({"MODULES_PACKAGES": f"modules,{acts_package}"})


def key_header(client: FlaskClient, admin: dict[str, Any], scopes: list[str]) -> dict[str, str]:
    created = create_api_key(client, admin["access_token"], scopes)
    return {"X-API-Key": created["key"]}


def audit_rows(app: Flask, where: str = "TRUE", args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """The audit rows written so far (after the background writer flushed)."""
    manager = manager_of(app)
    assert manager.actions.audit.flush(10.0)
    sql = f"SELECT * FROM audit_log WHERE {where} ORDER BY id"  # noqa: S608 - tests' own SQL
    rows: list[dict[str, Any]] = manager.database.postgres.execute(sql, args)
    return rows
