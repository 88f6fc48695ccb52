"""An action's own rate_limit is counted per caller, on top of the defaults, in the same
round trip; a bad one stops start-up naming the action."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import StartupError
from core.testing import AppFactory, bearer, problem
from modules.auth.testing import user_with_tokens
from tests.support.packages import make_modules_package

HANDLER = "def hello(params, context):\n    return {'hi': context.principal.id}\n"


#: A module setting holding a limit: GREETER_HELLO_RATE_LIMIT.
SOURCE = """
from config.modules import ModuleSettings
from core.module import BaseModule


class GreeterSettings(ModuleSettings):
    hello_rate_limit: str = "2/minute"


class Greeter(BaseModule):
    settings_model = GreeterSettings
"""


def limited_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rate_limit: str
) -> dict[str, str]:
    """``rate_limit`` is the YAML value as written (quoted by the caller when a string)."""
    source = SOURCE
    package = make_modules_package(tmp_path, monkeypatch, {"greeter": source})
    module_dir = tmp_path / package / "greeter"
    (module_dir / "handlers.py").write_text(HANDLER)
    (module_dir / "actions.yaml").write_text(
        "actions:\n"
        "  - name: greeter.hello\n"
        "    description: Says hello.\n"
        "    handler: .handlers:hello\n"
        "    auth: jwt\n"
        f"    rate_limit: {rate_limit}\n"
        "    params: {type: object}\n"
    )
    return {"MODULES_PACKAGES": f"modules,tests.support.modules,{package}"}


def test_an_action_rate_limit_applies_per_user(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = limited_module(tmp_path, monkeypatch, "'2/minute'")
    client = make_app({**settings, "RATE_LIMIT_USER": "100/minute"}).test_client()
    _, ada = user_with_tokens(client)
    _, bob = user_with_tokens(client)

    def call(tokens: dict[str, str]) -> int:
        return client.post(
            "/actions/greeter.hello", json={}, headers=bearer(tokens["access_token"])
        ).status_code

    assert [call(ada) for _ in range(3)] == [200, 200, 429]
    assert [call(bob) for _ in range(2)] == [200, 200]  # bob's own bucket
    limited = client.post("/actions/greeter.hello", json={}, headers=bearer(ada["access_token"]))
    assert problem(limited, 429, "RATE_LIMITED")["level"] == "user"
    assert limited.headers["X-RateLimit-Limit"] == "2"
    # Other routes are still governed by the (generous) defaults.
    assert client.get("/userauth/me", headers=bearer(ada["access_token"])).status_code == 200


def test_a_bad_action_rate_limit_stops_start_up(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = limited_module(tmp_path, monkeypatch, "'lots/second'")
    with pytest.raises(StartupError, match=r"greeter.hello.*lots/second"):
        make_app(settings)


def test_an_action_rate_limit_can_come_from_a_setting(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = limited_module(tmp_path, monkeypatch, "{setting: GREETER_HELLO_RATE_LIMIT}")
    app = make_app({**settings, "GREETER_HELLO_RATE_LIMIT": "1/minute"})
    client = app.test_client()
    _, ada = user_with_tokens(client)
    headers = bearer(ada["access_token"])
    statuses = [client.post("/actions/greeter.hello", json={}, headers=headers) for _ in range(2)]
    assert [answer.status_code for answer in statuses] == [200, 429]
    assert statuses[1].headers["X-RateLimit-Limit"] == "1"
    listed = {item["name"]: item for item in client.get("/actions").get_json()["items"]}
    assert listed["greeter.hello"]["rate_limit"] == "1/minute"  # the value, as in effect


@pytest.mark.parametrize(
    ("rate_limit", "message"),
    [
        ("{setting: NO_SUCH_SETTING}", "no setting NO_SUCH_SETTING holds a limit"),
        ("{setting: GREETER_HELLO_RATE_LIMIT}", "lots/second"),  # the setting's bad value
        ("{setting: lower_case}", "rate_limit"),
    ],
)
def test_a_setting_that_holds_no_limit_stops_start_up(
    make_app: AppFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rate_limit: str,
    message: str,
) -> None:
    settings = limited_module(tmp_path, monkeypatch, rate_limit)
    with pytest.raises(StartupError, match=rf"greeter.hello.*{message}"):
        make_app({**settings, "GREETER_HELLO_RATE_LIMIT": "lots/second"})


def test_unauthenticated_action_calls_count_against_the_ip(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "2/minute"}).test_client()
    codes = [client.post("/actions/system.echo", json={}).get_json()["code"] for _ in range(3)]
    assert codes == ["AUTH_REQUIRED", "AUTH_REQUIRED", "RATE_LIMITED"]
