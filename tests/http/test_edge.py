"""Client IP through trusted proxies only, and CORS from CORS_ORIGINS."""

from __future__ import annotations

from core.testing import AppFactory

SPOOF = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


def test_forwarded_headers_are_ignored_without_trusted_proxies(make_app: AppFactory) -> None:
    client = make_app().test_client()
    response = client.get(
        "/public/probe/ip", headers=SPOOF, environ_base={"REMOTE_ADDR": "10.0.0.7"}
    )
    assert response.get_json() == {"ip": "10.0.0.7", "scheme": "http"}
    assert "Strict-Transport-Security" not in response.headers


def test_one_trusted_proxy_hop_is_honoured(make_app: AppFactory) -> None:
    client = make_app({"TRUSTED_PROXIES": "1"}).test_client()
    response = client.get(
        "/public/probe/ip",
        headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9", "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": "10.0.0.7"},
    )
    # Only the hop the proxy added is trusted; the client-supplied first entry is not.
    assert response.get_json() == {"ip": "203.0.113.9", "scheme": "https"}
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_cors_allows_only_configured_origins(make_app: AppFactory) -> None:
    client = make_app({"CORS_ORIGINS": "https://app.example.com"}).test_client()
    preflight = client.options(
        "/userauth/me",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()

    actual = client.get("/health/live", headers={"Origin": "https://app.example.com"})
    assert actual.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "X-Request-ID" in actual.headers["Access-Control-Expose-Headers"]

    other = client.get("/health/live", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_no_cors_headers_without_configured_origins(make_app: AppFactory) -> None:
    client = make_app().test_client()
    response = client.get("/health/live", headers={"Origin": "https://app.example.com"})
    assert "Access-Control-Allow-Origin" not in response.headers
