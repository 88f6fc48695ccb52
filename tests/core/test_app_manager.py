"""The AppManager as modules see it: ``get_app_manager()`` answers the current app's."""

from __future__ import annotations

import pytest

from app import create_app
from core.app_manager import get_app_manager


def test_get_app_manager_answers_the_manager_of_the_current_app() -> None:
    first = create_app({"APP_ENV": "test"}, start=False)
    second = create_app({"APP_ENV": "test"}, start=False)
    try:
        with first.app_context():
            in_first = get_app_manager()
        with second.app_context():
            in_second = get_app_manager()
        assert in_first is first.extensions["app_manager"]
        assert in_second is second.extensions["app_manager"]
        assert in_first is not in_second
    finally:
        first.extensions["app_manager"].close()
        second.extensions["app_manager"].close()


def test_get_app_manager_outside_an_app_context_says_what_to_do() -> None:
    app = create_app({"APP_ENV": "test"}, start=False)
    try:
        with pytest.raises(RuntimeError, match=r"app context.*app\.app_context\(\)"):
            get_app_manager()
    finally:
        app.extensions["app_manager"].close()
