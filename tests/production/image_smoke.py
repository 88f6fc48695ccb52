"""What ``make image-smoke`` does against the running image, for this project's modules: what
a client does first (register, log in, connect a socket and use it) and what prod keeps off
(the webchat example). ``python -m core.devstack.image smoke`` runs the framework's part
(readiness, ``/docs`` off, SIGTERM) and calls :func:`exercise` in between."""

from __future__ import annotations

import uuid

import requests
import socketio

from core.devstack.image import ImageError


def exercise(url: str) -> None:
    answer = requests.get(f"{url}/public/webchat/", timeout=10)
    if answer.status_code != 404:
        raise ImageError(f"/public/webchat/ answered {answer.status_code} in prod (expected 404)")
    uid = uuid.uuid4().hex[:8]
    user = {"email": f"smoke{uid}@example.com", "username": f"smoke_{uid}", "password": uid * 2}
    registered = requests.post(f"{url}/public/register", json=user, timeout=10)
    if registered.status_code != 201:
        raise ImageError(f"register answered {registered.status_code}: {registered.text}")
    login = {"email": user["email"], "password": user["password"]}
    tokens = requests.post(f"{url}/public/login", json=login, timeout=10)
    if tokens.status_code != 200:
        raise ImageError(f"login answered {tokens.status_code}: {tokens.text}")
    client = socketio.Client(reconnection=False)
    client.connect(url, auth={"token": tokens.json()["access_token"]}, wait_timeout=10)
    try:
        ack = client.call("create_room", {"name": "smoke"}, timeout=10)
        if not ack.get("ok"):
            raise ImageError(f"create_room over the socket answered {ack}")
    finally:
        client.disconnect()
