"""Module discovery, ordering and start-up failures (no servers: apps built without start)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from core import factory
from core.errors import FrameworkError, ModuleError, StartupError
from core.managers import modules as modules_manager
from core.managers.modules import DiscoveredModule, discover
from core.testing import manager_of
from tests.support.packages import make_modules_package, module_source


def build(package: str, **environ: str) -> Flask:
    return create_app({"APP_ENV": "test", "MODULES_PACKAGES": package, **environ}, start=False)


def loaded_names(app: Flask) -> list[str]:
    return [module.name for module in manager_of(app).modules.loaded]


def test_modules_are_discovered_and_ordered_after_their_dependencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = make_modules_package(
        tmp_path,
        monkeypatch,
        {
            "alpha": module_source(("gamma",)),
            "beta": module_source(),
            "gamma": module_source(("beta",)),
            "_private": "raise RuntimeError('never imported')",
        },
    )
    assert loaded_names(build(package)) == ["beta", "gamma", "alpha"]


def test_modules_are_discovered_once_per_app_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings are resolved for the module classes the ModuleManager then loads: one
    discovery, whose result is passed on (no second import walk)."""
    package = make_modules_package(
        tmp_path, monkeypatch, {"alpha": module_source(("beta",)), "beta": module_source()}
    )
    walks: list[list[str]] = []

    def counted(packages: Iterable[str], disabled: Iterable[str] = ()) -> list[DiscoveredModule]:
        found = discover(packages, disabled)
        walks.append([module.name for module in found])
        return found

    monkeypatch.setattr(modules_manager, "discover", counted)
    monkeypatch.setattr(factory, "discover", counted)
    manager = manager_of(build(package))
    assert walks == [["beta", "alpha"]]
    assert [type(module) for module in manager.modules.loaded] == [
        found.cls for found in manager.discovered
    ]


def test_a_module_registers_its_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = textwrap.dedent(
        """
        from flask import Blueprint
        from core.module import BaseModule

        bp = Blueprint("hello", __name__)

        @bp.get("/public/hello")
        def hello():
            return {"hello": "world"}

        class Hello(BaseModule):
            blueprint = bp
        """
    )
    package = make_modules_package(tmp_path, monkeypatch, {"hello": source})
    response = build(package).test_client().get("/public/hello")
    assert response.status_code == 200
    assert response.get_json() == {"hello": "world"}


def test_a_dependency_cycle_stops_start_up_naming_the_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = make_modules_package(
        tmp_path,
        monkeypatch,
        {
            "one": module_source(("two",)),
            "two": module_source(("three",)),
            "three": module_source(("one",)),
        },
    )
    with pytest.raises(ModuleError, match=r"dependency cycle: one -> two -> three -> one"):
        build(package)


def test_a_missing_dependency_stops_start_up_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = make_modules_package(tmp_path, monkeypatch, {"shop": module_source(("payments",))})
    with pytest.raises(ModuleError, match="'shop': depends on 'payments', which does not exist"):
        build(package)


def test_an_import_error_stops_start_up_naming_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = make_modules_package(
        tmp_path,
        monkeypatch,
        {"good": module_source(), "broken": "import does_not_exist_anywhere\n"},
    )
    with pytest.raises(ModuleError, match="'broken': import failed: ModuleNotFoundError"):
        build(package)


def test_a_package_without_a_module_class_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = make_modules_package(tmp_path, monkeypatch, {"empty": "VALUE = 1\n"})
    with pytest.raises(ModuleError, match="'empty': must define exactly one BaseModule subclass"):
        build(package)


def test_a_disabled_module_is_not_imported_and_is_listed_as_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = make_modules_package(
        tmp_path,
        monkeypatch,
        {"broken": "raise RuntimeError('must not be imported')\n", "fine": module_source()},
    )
    app = build(package, MODULES_DISABLED="broken")
    assert loaded_names(app) == ["fine"]
    items = app.test_client().get("/modules/status").get_json()["items"]
    assert items == [
        {"name": "fine", "enabled": True, "dependencies": [], "health": {"status": "ok"}},
        {"name": "broken", "enabled": False, "dependencies": [], "health": None},
    ]


def test_depending_on_a_disabled_module_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = make_modules_package(
        tmp_path, monkeypatch, {"base": module_source(), "user": module_source(("base",))}
    )
    with pytest.raises(ModuleError, match="'user': depends on 'base', which is disabled"):
        build(package, MODULES_DISABLED="base")


def test_module_status_reports_a_failing_health_without_internals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = """
    def health(self):
        raise RuntimeError("password=hunter2 at db.internal")
    """
    package = make_modules_package(tmp_path, monkeypatch, {"sick": module_source(body=body)})
    response = build(package).test_client().get("/modules/status")
    assert response.status_code == 200
    (item,) = response.get_json()["items"]
    assert item["health"] == {"status": "error", "error": "RuntimeError"}
    assert b"hunter2" not in response.data


def test_module_status_needs_the_operator_token_when_one_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = make_modules_package(tmp_path, monkeypatch, {"one": module_source()})
    client = build(package, METRICS_TOKEN="operator-token-123").test_client()
    assert client.get("/modules/status").status_code == 401
    wrong = client.get("/modules/status", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = client.get("/modules/status", headers={"Authorization": "Bearer operator-token-123"})
    assert right.status_code == 200


def test_a_route_without_an_auth_policy_refuses_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = textwrap.dedent(
        """
        from flask import Blueprint
        from core.module import BaseModule

        bp = Blueprint("leaky", __name__)

        @bp.get("/internal/stats")
        def stats():
            return {}

        class Leaky(BaseModule):
            blueprint = bp
        """
    )
    package = make_modules_package(tmp_path, monkeypatch, {"leaky": source})
    with pytest.raises(StartupError, match=r"/internal/stats \(endpoint leaky.stats\)"):
        build(package)


def test_two_modules_registering_one_service_name_are_both_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = """
    def __init__(self, name, app_manager):
        super().__init__(name, app_manager)
        app_manager.services.register("shared", object())
    """
    package = make_modules_package(
        tmp_path,
        monkeypatch,
        {"first": module_source(body=body), "second": module_source(body=body)},
    )
    with pytest.raises(FrameworkError) as raised:
        build(package)
    assert str(raised.value) == (
        "service 'shared' is already registered by module 'first'; module 'second' registers "
        "it too (name a module's services after the module)"
    )


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("jwt", "the revocation marks' Redis keys"),
        ("states", "the state machines' MongoDB collection"),
        ("users", "module 'auth''s MongoDB collection"),
    ],
)
def test_a_module_named_after_storage_it_does_not_own_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, taken: str
) -> None:
    """``flask module new`` refuses these names; a module written by hand is refused at load,
    before its data lands in the framework's or another module's storage."""
    package = make_modules_package(tmp_path, monkeypatch, {name: module_source()})
    with pytest.raises(ModuleError) as refused:
        build(f"modules,{package}")
    assert str(refused.value) == (
        f"module {name!r}: the name is {taken}: a module of that name would write into it; "
        "rename the module (docs/modules.md, 'Names')"
    )
    # Its own collection, named after itself as the scaffold's is, is no collision.
    own = make_modules_package(tmp_path, monkeypatch, {"shelf": SHELF})
    assert "shelf" in loaded_names(build(f"modules,{own}"))


#: A module whose collection is its own name, as the scaffold's is.
SHELF = textwrap.dedent(
    """
    from pymongo import IndexModel

    from core.module import BaseModule


    class Module(BaseModule):
        def __init__(self, name, app_manager):
            super().__init__(name, app_manager)
            app_manager.database.mongo.declare_indexes(name, [IndexModel("title")])
    """
)
