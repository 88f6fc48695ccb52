"""HTTP from Python for setup and small samples (never the load): requests, users, keys."""

from __future__ import annotations

import http.client
import json
import subprocess
import uuid
from typing import Any
from urllib.parse import urlsplit

from bench.harness.common import PASSWORD, PYTHON, ROOT, base_env


def request(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, Any]:
    """One request; returns (status, decoded JSON body or text)."""
    parts = urlsplit(url)
    conn = connection or http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    sent_headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent_headers["Content-Type"] = "application/json"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, path, body=data, headers=sent_headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        if connection is None:
            conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode(errors="replace")


def register_and_login(base_url: str, label: str = "bench") -> dict[str, Any]:
    """A new user through the public API; returns the login answer (tokens)."""
    uid = uuid.uuid4().hex[:10]
    email = f"{label}-{uid}@example.com"
    body = {"email": email, "username": f"{label}_{uid}", "password": PASSWORD}
    status, answer = request("POST", base_url + "/public/register", body)
    if status != 201:
        raise RuntimeError(f"register failed: {status} {answer}")
    status, answer = request(
        "POST", base_url + "/public/login", {"email": email, "password": PASSWORD}
    )
    if status != 200:
        raise RuntimeError(f"login failed: {status} {answer}")
    return dict(answer)


def create_api_key(env: dict[str, str], name: str = "bench") -> str:
    """A new API key through the CLI (``flask --app app api-keys create``)."""
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "flask",
            "--app",
            "app",
            "api-keys",
            "create",
            "--name",
            name,
            "--scope",
            "bench",
        ],
        cwd=ROOT,
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or len(lines) < 2:
        raise RuntimeError(f"api-keys create failed: {result.stdout} {result.stderr[-800:]}")
    return lines[1].strip()
