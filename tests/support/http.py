"""Real HTTP shaped like Flask's test client, for apps served by gunicorn."""

from __future__ import annotations

from typing import Any

import requests


class RemoteResponse:
    """A requests response with Flask's test-response reading (``get_json``)."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.response = response

    def get_json(self, force: bool = False) -> Any:
        return self.response.json() if self.response.content else None


class RemoteClient:
    """Real HTTP to a served app, shaped like Flask's test client (``post(path, json=...)``),
    so the helpers of core.testing work against gunicorn too."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> RemoteResponse:
        return RemoteResponse(
            self.session.request(method, self.base_url + path, timeout=10, **kwargs)
        )

    def get(self, path: str, **kwargs: Any) -> RemoteResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> RemoteResponse:
        return self.request("POST", path, **kwargs)
