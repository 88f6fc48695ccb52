"""The AppManager as modules see it: ``get_app_manager()`` answers the current app's."""

from __future__ import annotations

from typing import Any

import pytest

from app import create_app
from core.app_manager import START_ORDER, get_app_manager
from core.testing import AppFactory, manager_of


def test_get_app_manager_answers_the_manager_of_the_current_app() -> None:
    first = create_app({"APP_ENV": "test"}, start=False)
    second = create_app({"APP_ENV": "test"}, start=False)
    try:
        with first.app_context():
            in_first = get_app_manager()
        with second.app_context():
            in_second = get_app_manager()
        assert in_first is manager_of(first)
        assert in_second is manager_of(second)
        assert in_first is not in_second
    finally:
        manager_of(first).close()
        manager_of(second).close()


def test_get_app_manager_outside_an_app_context_says_what_to_do() -> None:
    app = create_app({"APP_ENV": "test"}, start=False)
    try:
        with pytest.raises(RuntimeError, match=r"app context.*app\.app_context\(\)"):
            get_app_manager()
    finally:
        manager_of(app).close()


def test_managers_start_in_the_declared_order_and_close_in_reverse(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(start=False)
    manager = manager_of(app)
    calls: list[tuple[str, str]] = []
    for name in START_ORDER:
        instance = getattr(manager, name)
        if instance is None:  # Vault when VAULT_ADDR is not set
            continue
        for step in ("start", "close"):
            original = getattr(instance, step)

            def recorded(*args: Any, _o: Any = original, _n: str = name, _s: str = step) -> Any:
                calls.append((_s, _n))
                return _o(*args)

            monkeypatch.setattr(instance, step, recorded)

    manager.start()
    manager.close()

    expected = [name for name in START_ORDER if getattr(manager, name) is not None]
    assert [n for step, n in calls if step == "start"] == expected
    assert [n for step, n in calls if step == "close"] == expected[::-1]
    assert expected[:3] == ["database", "redis", "hooks"]  # no Vault configured here
    assert calls.index(("start", "websocket")) < calls.index(("close", "websocket"))
