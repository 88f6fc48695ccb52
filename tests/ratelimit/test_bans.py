"""Bans: after repeated limit hits, escalation for repeat offenders, unban from the CLI."""

from __future__ import annotations

from flask.testing import FlaskClient

from core.testing import AppFactory, problem

BAN_SETTINGS = {
    "RATE_LIMIT_IP": "1/minute",
    "RATE_LIMIT_BAN_AFTER": "2",
    "RATE_LIMIT_BAN_WINDOW": "60",
    "RATE_LIMIT_BAN_SECONDS": "30",
}


def get(client: FlaskClient) -> tuple[int, str | None, str | None]:
    response = client.get("/public/probe/ip")
    body = response.get_json()
    return response.status_code, body.get("code"), response.headers.get("Retry-After")


def provoke_ban(client: FlaskClient) -> list[tuple[int, str | None, str | None]]:
    return [get(client) for _ in range(5)]


def test_repeated_limit_hits_lead_to_a_ban(make_app: AppFactory) -> None:
    client = make_app(BAN_SETTINGS).test_client()
    results = provoke_ban(client)
    assert [code for _, code, _ in results] == [
        None,  # allowed
        "RATE_LIMITED",  # hit 1
        "RATE_LIMITED",  # hit 2
        "BANNED",  # hit 3 > RATE_LIMIT_BAN_AFTER
        "BANNED",  # the ban holds
    ]
    assert results[3][2] == "30"
    assert 1 <= int(results[4][2] or 0) <= 30
    body = problem(client.get("/public/probe/ip"), 429, "BANNED")
    assert body["level"] == "ip"


def test_exempt_routes_stay_reachable_while_banned(make_app: AppFactory) -> None:
    client = make_app(BAN_SETTINGS).test_client()
    provoke_ban(client)
    assert client.get("/health/ready").status_code == 200


def test_cli_lists_and_lifts_a_ban_for_every_instance(make_app: AppFactory) -> None:
    first = make_app(BAN_SETTINGS)
    second = make_app(BAN_SETTINGS)
    provoke_ban(first.test_client())
    assert get(second.test_client())[1] == "BANNED"  # a ban is shared

    runner = first.test_cli_runner()
    listed = runner.invoke(args=["ratelimit", "bans"])
    assert listed.exit_code == 0
    assert "ip       127.0.0.1  offenses=1  seconds_left=" in listed.output

    lifted = runner.invoke(args=["ratelimit", "unban", "ip", "127.0.0.1"])
    assert lifted.exit_code == 0, lifted.output
    assert runner.invoke(args=["ratelimit", "bans"]).output.strip() == "no active bans"
    # Unbanned everywhere at once; the per-minute limit itself still applies.
    assert get(second.test_client())[1] == "RATE_LIMITED"

    again = runner.invoke(args=["ratelimit", "unban", "ip", "127.0.0.1"])
    assert again.exit_code != 0
    assert "no ban for ip 127.0.0.1" in again.output
    assert runner.invoke(args=["ratelimit", "unban", "planet", "x"]).exit_code != 0


def test_repeat_offenders_are_banned_longer(make_app: AppFactory) -> None:
    app = make_app(BAN_SETTINGS)
    client, runner = app.test_client(), app.test_cli_runner()
    assert provoke_ban(client)[3][2] == "30"
    runner.invoke(args=["ratelimit", "unban", "ip", "127.0.0.1"])
    second_ban = [get(client) for _ in range(3)]
    assert second_ban[-1][1] == "BANNED"
    assert second_ban[-1][2] == "60"  # doubled
    assert "offenses=2" in runner.invoke(args=["ratelimit", "bans"]).output


def test_escalation_is_capped(make_app: AppFactory) -> None:
    app = make_app({**BAN_SETTINGS, "RATE_LIMIT_BAN_MAX_FACTOR": "2"})
    client, runner = app.test_client(), app.test_cli_runner()
    lengths = []
    for _ in range(3):
        results = [get(client) for _ in range(5)]
        lengths.append(next(after for _, code, after in results if code == "BANNED"))
        runner.invoke(args=["ratelimit", "unban", "ip", "127.0.0.1"])
    assert lengths == ["30", "60", "60"]


def test_limits_and_bans_are_counted_in_metrics(make_app: AppFactory) -> None:
    client = make_app(BAN_SETTINGS).test_client()
    provoke_ban(client)  # 1 allowed, 2 limited, 1 ban issued, 1 refused while banned
    prometheus = {"REMOTE_ADDR": "10.0.0.9"}  # /metrics is limited too: from its own address
    scrape = client.get("/metrics", environ_base=prometheus).get_data(as_text=True)
    assert 'rate_limit_rejections_total{level="ip",reason="limit"} 2.0' in scrape
    assert 'rate_limit_rejections_total{level="ip",reason="ban"} 2.0' in scrape
    assert 'rate_limit_bans_total{level="ip"} 1.0' in scrape
