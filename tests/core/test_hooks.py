"""HooksManager: priorities, failure isolation, strict callbacks; ServicesManager registry."""

from __future__ import annotations

import logging

import pytest

from core.errors import ServiceError
from core.managers.hooks import HooksManager
from core.managers.services import ServicesManager


def test_callbacks_run_by_priority_then_registration_order() -> None:
    hooks = HooksManager()
    calls: list[str] = []
    hooks.register("order.placed", lambda **_: calls.append("late"), priority=200)
    hooks.register("order.placed", lambda **_: calls.append("first"), priority=10)
    hooks.register("order.placed", lambda **_: calls.append("default-a"))
    hooks.register("order.placed", lambda **_: calls.append("default-b"))

    hooks.emit("order.placed", order_id="o1")

    assert calls == ["first", "default-a", "default-b", "late"]


def test_payload_reaches_callbacks_and_results_come_back_in_order() -> None:
    hooks = HooksManager()

    @hooks.on("user.registered", priority=1)
    def greet(user: str) -> str:
        return f"hello {user}"

    hooks.register("user.registered", lambda user: len(user), priority=2)
    assert hooks.emit("user.registered", user="ada") == ["hello ada", 3]
    assert hooks.emit("nobody.listens") == []


def test_a_failing_callback_is_logged_with_the_event_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = HooksManager()
    calls: list[str] = []

    def broken(**_: object) -> None:
        raise ValueError("boom")

    hooks.register("room.created", broken, priority=1)
    hooks.register("room.created", lambda **_: calls.append("after"), priority=2)

    with caplog.at_level(logging.ERROR, logger="core.managers.hooks"):
        hooks.emit("room.created", room_id="r1")

    assert calls == ["after"]
    (record,) = caplog.records
    assert record.event == "room.created"  # type: ignore[attr-defined]
    assert record.callback.endswith("broken")  # type: ignore[attr-defined]
    assert record.exc_info is not None


def test_a_strict_callback_failure_reaches_the_emitter_and_stops_later_callbacks() -> None:
    hooks = HooksManager()
    calls: list[str] = []

    def veto(**_: object) -> None:
        raise PermissionError("not allowed")

    hooks.register("user.registering", veto, priority=1, strict=True)
    hooks.register("user.registering", lambda **_: calls.append("later"), priority=2)

    with pytest.raises(PermissionError):
        hooks.emit("user.registering")
    assert calls == []


def test_services_are_shared_by_name_and_names_are_unique() -> None:
    services = ServicesManager()
    mailer = object()
    services.register("mailer", mailer)
    assert services.get("mailer") is mailer
    assert "mailer" in services
    with pytest.raises(ServiceError, match="already registered"):
        services.register("mailer", object())
    with pytest.raises(ServiceError, match="no service named 'sms'"):
        services.get("sms")
    with pytest.raises(ServiceError, match="is not a int"):
        services.get("mailer", int)


def test_services_are_closed_in_reverse_order_even_when_one_fails() -> None:
    services = ServicesManager()
    closed: list[str] = []

    class Closer:
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name, self.fail = name, fail

        def close(self) -> None:
            closed.append(self.name)
            if self.fail:
                raise RuntimeError("close failed")

    services.register("a", Closer("a"))
    services.register("b", Closer("b", fail=True))
    services.register("c", Closer("c"))
    services.close()
    assert closed == ["c", "b", "a"]
    assert services.names() == []
