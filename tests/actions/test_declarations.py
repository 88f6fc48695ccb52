"""Start-up checks of the declarations: every problem stops start-up, named by file, line and
action, and all of them are reported at once."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.errors import StartupError
from core.managers.actions import ActionManager
from core.testing import AppFactory, manager_of
from tests.actions.conftest import write_modules

HANDLERS = textwrap.dedent(
    """
    def good(params, context):
        return params

    def one_argument(params):
        return params

    async def coroutine(params, context):
        return params

    def flexible(*args, **kwargs):
        return {}

    NOT_CALLABLE = 42
    """
)

Load = Callable[..., str]


@pytest.fixture
def handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module of handlers; returns its name."""
    name = f"handlers_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(HANDLERS)
    (tmp_path / f"broken_{name}.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    return name


@pytest.fixture
def load(make_app: AppFactory, tmp_path: Path, handlers: str) -> Load:
    """Load YAML files (``{file name: text}``, ``{h}`` = the handlers module) into a fresh
    ActionManager; returns the StartupError message ("" when loading succeeded)."""
    manager_of_app = manager_of(make_app(start=False))

    def run(files: dict[str, str]) -> str:
        directory = tmp_path / f"actions_{uuid.uuid4().hex[:6]}"
        directory.mkdir()
        for name, text in files.items():
            (directory / name).write_text(textwrap.dedent(text).replace("{h}", handlers))
        manager = ActionManager(
            manager_of_app.settings, manager_of_app.database.postgres, actions_dirs=[directory]
        )
        try:
            manager.load([])
        except StartupError as exc:
            return str(exc)
        finally:
            manager.close()
        return ""

    return run


def declaration(**fields: Any) -> str:
    base = {"name": "t.one", "description": "A test.", "handler": "{h}:good", "auth": "public"}
    base.update(fields)
    lines = ["actions:", "  - name: " + str(base.pop("name"))]
    lines += [f"    {key}: {value}" for key, value in base.items() if value is not None]
    return "\n".join(lines) + "\n"


def test_valid_declarations_load(load: Load) -> None:
    assert load({"ok.yaml": declaration()}) == ""


def test_invalid_yaml_names_the_file_and_line(load: Load) -> None:
    message = load({"bad.yaml": "actions:\n  - name: t.one\n    description: [unclosed\n"})
    assert "bad.yaml:4: invalid YAML" in message or "bad.yaml:3: invalid YAML" in message


def test_a_missing_key_names_the_action_and_its_line(load: Load) -> None:
    message = load({"a.yaml": declaration(handler=None)})
    assert "a.yaml:2: action 't.one': 'handler' is a required property" in message


def test_an_unknown_key_is_refused(load: Load) -> None:
    message = load({"a.yaml": declaration(role="[admin]")})
    assert "a.yaml:2: action 't.one'" in message
    assert "'role' was unexpected" in message


def test_an_unknown_auth_points_at_its_line(load: Load) -> None:
    message = load({"a.yaml": declaration(auth="session")})
    assert "a.yaml:5: action 't.one': auth: 'session' is not one of" in message


def test_a_name_must_be_dotted_lowercase(load: Load) -> None:
    assert "name: 'Notes.Create' does not match" in load(
        {"a.yaml": declaration(name="Notes.Create")}
    )
    assert "name: 'plain' does not match" in load({"a.yaml": declaration(name="plain")})


def test_an_unknown_handler_module_is_reported(load: Load) -> None:
    message = load({"a.yaml": declaration(handler="no_such_module_xyz:good")})
    assert "a.yaml:4: action 't.one': handler 'no_such_module_xyz:good'" in message
    assert "not found" in message


def test_a_missing_handler_function_is_reported(load: Load) -> None:
    message = load({"a.yaml": declaration(handler="{h}:missing")})
    assert "action 't.one': handler" in message
    assert "has no attribute 'missing'" in message


def test_a_handler_module_that_fails_to_import_is_reported(load: Load, handlers: str) -> None:
    message = load({"a.yaml": declaration(handler=f"broken_{handlers}:good")})
    assert "importing" in message
    assert "RuntimeError: boom at import" in message


def test_a_handler_that_cannot_take_params_and_context_is_refused(load: Load) -> None:
    message = load({"a.yaml": declaration(handler="{h}:one_argument")})
    assert "a.yaml:4: action 't.one': handler one_argument(params)" in message
    assert "cannot be called as handler(params, context)" in message
    assert "async handlers are not supported" in load(
        {"a.yaml": declaration(handler="{h}:coroutine")}
    )
    assert "is not callable" in load({"a.yaml": declaration(handler="{h}:NOT_CALLABLE")})
    assert load({"a.yaml": declaration(handler="{h}:flexible")}) == ""


def test_a_duplicate_name_names_both_places(load: Load) -> None:
    message = load({"a.yaml": declaration(), "b.yaml": declaration()})
    assert "b.yaml:2: action 't.one': duplicate action name: also declared at" in message
    assert "a.yaml:2" in message


def test_an_invalid_params_schema_points_into_the_schema(load: Load) -> None:
    text = """
    actions:
      - name: t.one
        description: A test.
        handler: "{h}:good"
        auth: public
        params:
          type: object
          properties:
            title: {type: strng}
    """
    message = load({"a.yaml": text})
    assert "a.yaml:10: action 't.one': params is not a valid JSON Schema" in message


def test_params_must_describe_an_object(load: Load) -> None:
    message = load({"a.yaml": declaration(params="{type: array}")})
    assert "params must describe a JSON object" in message


def test_a_dangling_ref_is_refused(load: Load) -> None:
    message = load(
        {"a.yaml": declaration(params="{type: object, properties: {a: {$ref: '#/$defs/nope'}}}")}
    )
    assert "$ref '#/$defs/nope' points to nothing" in message


def test_a_bad_rate_limit_is_refused(load: Load) -> None:
    message = load({"a.yaml": declaration(rate_limit="'5 per second'")})
    assert "a.yaml:6: action 't.one': rate_limit:" in message


def test_declared_errors_need_upper_snake_codes_and_problem_statuses(load: Load) -> None:
    assert load({"a.yaml": declaration(errors="{NOT_FOUND: 404, NOTE_LOCKED: 409}")}) == ""
    for bad in ("{not_found: 404}", "{NOT_FOUND: 200}", "{NOT_FOUND: '404'}", "[NOT_FOUND]"):
        message = load({"a.yaml": declaration(errors=bad)})
        assert "a.yaml:" in message, bad
        assert "action 't.one'" in message, bad


def test_roles_or_scopes_that_can_never_apply_are_refused(load: Load) -> None:
    assert "a public action cannot require roles" in load({"a.yaml": declaration(roles="[admin]")})
    assert "scopes limit API keys" in load(
        {"a.yaml": declaration(auth="jwt", scopes="[notes:read]")}
    )
    assert "roles govern users" in load({"a.yaml": declaration(auth="api_key", roles="[admin]")})


def test_an_empty_file_and_duplicate_keys_are_refused(load: Load) -> None:
    assert "the file is empty" in load({"a.yaml": ""})
    message = load({"a.yaml": declaration() + "    auth: jwt\n"})
    assert "a.yaml:6: duplicate key 'auth'" in message


def test_every_problem_is_reported_at_once(load: Load) -> None:
    message = load(
        {"a.yaml": declaration(auth="nope"), "b.yaml": declaration(name="t.two", handler="{h}:x")}
    )
    assert message.startswith("invalid action declarations:")
    assert "a.yaml" in message
    assert "b.yaml" in message


# -- through the app: module actions.yaml and register_actions -------------------------------


def test_a_bad_module_actions_yaml_stops_start_up(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = "from core.module import BaseModule\n\n\nclass M(BaseModule):\n    pass\n"
    package = write_modules(
        tmp_path, monkeypatch, {"bad": (module, declaration(handler=".:nothing"))}
    )
    with pytest.raises(StartupError) as caught:
        make_app({"MODULES_PACKAGES": f"modules,{package}"}, start=False)
    assert f"{package}/bad/actions.yaml:4: action 't.one'" in str(caught.value)
    assert "has no attribute 'nothing'" in str(caught.value)


def test_a_module_cannot_take_a_system_action_name(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = "from core.module import BaseModule\n\n\nclass M(BaseModule):\n    pass\n"
    package = write_modules(
        tmp_path,
        monkeypatch,
        {"dup": (module, declaration(name="system.ping", handler="core.system_actions:ping"))},
    )
    with pytest.raises(StartupError) as caught:
        make_app({"MODULES_PACKAGES": f"modules,{package}"}, start=False)
    assert "action 'system.ping': duplicate action name: also declared at actions/system.yaml" in (
        str(caught.value)
    )


REGISTERING = textwrap.dedent(
    """
    from core.module import BaseModule


    def shout(params, context):
        return params["text"].upper()


    class Loud(BaseModule):
        def register_actions(self, actions):
            actions.register(
                {
                    "name": "loud.shout",
                    "description": "Upper-case a text.",
                    "handler": shout,
                    "auth": "public",
                    "params": {"type": "object", "required": ["text"],
                               "properties": {"text": {"type": "string"}}},
                }
            )
    """
)


def test_a_module_can_declare_actions_in_code(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = write_modules(tmp_path, monkeypatch, {"loud": (REGISTERING, None)})
    client = make_app({"MODULES_PACKAGES": f"modules,{package}"}).test_client()
    response = client.post("/actions/loud.shout", json={"text": "hi"})
    assert response.get_json() == {"result": "HI"}
    assert client.post("/actions/loud.shout", json={}).status_code == 400


def test_a_bad_declaration_in_code_stops_start_up(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = REGISTERING.replace('"auth": "public"', '"auth": "anyone"')
    package = write_modules(tmp_path, monkeypatch, {"loud": (source, None)})
    with pytest.raises(StartupError) as caught:
        make_app({"MODULES_PACKAGES": f"modules,{package}"}, start=False)
    assert "module loud: action 'loud.shout': auth: 'anyone' is not one of" in str(caught.value)
