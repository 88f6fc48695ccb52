"""Client traffic for resilience tests: a few threads sending requests to a served app until
stopped, recording every answer (or the lack of one) with when it started and ended.

- :class:`Traffic`: one thread per user, each sending a fixed mix of requests over HTTP
  (``requests``, one connection pool per thread); see :data:`MIX`.
- :func:`raw_request` and :class:`Hammer`: requests over a fresh TCP connection each, which
  tell a connection refused at connect time apart from one that was accepted and then broken,
  for shutdown tests.
"""

from __future__ import annotations

import errno
import itertools
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self

import requests

from modules.auth.testing import PASSWORD

#: Every request gets an answer within this, or it counts as hung.
CLIENT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Outcome:
    """One request: ``status`` None means no HTTP answer at all (``error`` says why)."""

    kind: str
    started: float  # time.monotonic()
    ended: float
    status: int | None
    code: str | None = None  # the problem's code for error answers
    content_type: str | None = None
    error: str | None = None
    request_id: str | None = None
    note: str | None = None  # the title a notes.create sent
    user: str | None = None  # the email of the user whose thread sent it


@dataclass
class LoadUser:
    """A registered user driving one traffic thread."""

    email: str
    access_token: str
    titles: list[str] = field(default_factory=list)  # every title it tried to create


def register_user(base_url: str) -> LoadUser:
    uid = uuid.uuid4().hex[:10]
    body = {"email": f"l{uid}@example.com", "username": f"load_{uid}", "password": PASSWORD}
    created = requests.post(f"{base_url}/public/register", json=body, timeout=CLIENT_TIMEOUT)
    assert created.status_code == 201, created.text
    pair = requests.post(
        f"{base_url}/public/login",
        json={"email": body["email"], "password": PASSWORD},
        timeout=CLIENT_TIMEOUT,
    )
    assert pair.status_code == 200, pair.text
    return LoadUser(body["email"], pair.json()["access_token"])


#: The kinds of request each traffic thread cycles through, and the stores each one needs
#: (besides Redis for the JWT revocation check of authenticated requests).
MIX: dict[str, frozenset[str]] = {
    "notes.create": frozenset({"mongodb", "redis"}),  # audit row to PostgreSQL, queued
    "notes.list": frozenset({"mongodb", "redis"}),
    "me": frozenset({"mongodb", "redis"}),  # GET /userauth/me
    "login": frozenset({"mongodb", "redis"}),  # POST /public/login (failure counter)
    "ping": frozenset(),  # POST /actions/system.ping: public, limits fail open
    "sql": frozenset({"postgres"}),  # GET /public/probe/sql (test probe module)
}
#: notes.create is limited to 10/second per user (modules/notes/actions.yaml).
CREATE_INTERVAL = 0.15
#: notes.list shows at most 100 notes: stay below, so every note can be found afterwards.
MAX_NOTES_PER_USER = 90


class _ClientThreads:
    """Start client threads on enter; stop and join them (none may hang) on exit."""

    _stop: threading.Event
    _threads: list[threading.Thread]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a client thread hangs"


class Traffic(_ClientThreads):
    """One thread per user sending :data:`MIX` round-robin until :meth:`stop`."""

    def __init__(self, base_url: str, users: Iterable[LoadUser], pause: float = 0.005) -> None:
        self.base_url = base_url
        self.users = list(users)
        self.pause = pause
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(user, n), name=f"traffic-{n}", daemon=True)
            for n, user in enumerate(self.users)
        ]

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def wait_until(
        self, predicate: Callable[[list[Outcome]], bool], timeout: float, what: str
    ) -> None:
        """Wait until ``predicate(outcomes so far)``; fail the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate(self.snapshot()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)

    # -- the client threads ---------------------------------------------------------------

    def _run(self, user: LoadUser, offset: int) -> None:
        session = requests.Session()
        last_create = 0.0
        kinds = list(MIX)
        kinds = kinds[offset % len(kinds) :] + kinds[: offset % len(kinds)]  # not in lockstep
        try:
            for kind in itertools.cycle(kinds):
                if self._stop.is_set():
                    return
                if kind == "notes.create":
                    if (
                        time.monotonic() - last_create < CREATE_INTERVAL
                        or len(user.titles) >= MAX_NOTES_PER_USER
                    ):
                        continue
                    last_create = time.monotonic()
                self._record(self._send(session, user, kind))
                time.sleep(self.pause)
        finally:
            session.close()

    def _send(self, session: requests.Session, user: LoadUser, kind: str) -> Outcome:
        auth = {"Authorization": f"Bearer {user.access_token}"}
        title = None
        request: dict[str, Any]
        if kind == "notes.create":
            title = f"n-{uuid.uuid4().hex[:12]}"
            user.titles.append(title)
            request = {"method": "POST", "url": "/actions/notes.create", "headers": auth}
            request["json"] = {"title": title}
        elif kind == "notes.list":
            request = {"method": "POST", "url": "/actions/notes.list", "headers": auth}
            request["json"] = {"limit": 5}
        elif kind == "me":
            request = {"method": "GET", "url": "/userauth/me", "headers": auth}
        elif kind == "login":
            request = {"method": "POST", "url": "/public/login"}
            request["json"] = {"email": user.email, "password": PASSWORD}
        elif kind == "ping":
            request = {"method": "POST", "url": "/actions/system.ping"}
        else:
            request = {"method": "GET", "url": "/public/probe/sql"}
        request["url"] = self.base_url + request["url"]
        started = time.monotonic()
        try:
            response = session.request(**request, timeout=CLIENT_TIMEOUT)
        except Exception as exc:  # recorded as "no answer": the test fails on it
            return Outcome(
                kind, started, time.monotonic(), None, error=repr(exc), note=title, user=user.email
            )
        ended = time.monotonic()
        content_type = response.headers.get("Content-Type")
        code = None
        if response.status_code >= 400 and content_type == "application/problem+json":
            try:
                code = response.json().get("code")
            except ValueError:
                code = "<not JSON>"
        return Outcome(
            kind,
            started,
            ended,
            response.status_code,
            code,
            content_type,
            request_id=response.headers.get("X-Request-ID"),
            note=title,
            user=user.email,
        )

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)


# -- raw requests: refused at connect time vs accepted and broken ---------------------------


@dataclass(frozen=True)
class RawOutcome:
    """``refused``: connect() failed, nothing was sent. ``complete``: a whole HTTP response
    (status line, headers and exactly Content-Length body bytes). ``broken``: the connection
    was accepted and the request sent, but no complete response came (``detail`` says why)."""

    path: str
    started: float
    ended: float
    result: str  # "refused" | "complete" | "broken"
    status: int | None = None
    detail: str = ""


def raw_request(
    host: str, port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> RawOutcome:
    """Send one request on a fresh connection (``Connection: close``) and classify it."""
    started = time.monotonic()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if method in ("POST", "PUT", "PATCH"):
        lines += ["Content-Type: application/json", "Content-Length: 2"]
    payload = ("\r\n".join(lines) + "\r\n\r\n" + ("{}" if method == "POST" else "")).encode()
    try:
        sock = socket.create_connection((host, port), timeout=CLIENT_TIMEOUT)
    except OSError as exc:
        result = "refused" if exc.errno == errno.ECONNREFUSED else "broken"
        return RawOutcome(path, started, time.monotonic(), result, detail=f"connect: {exc!r}")
    with sock:
        try:
            sock.sendall(payload)
            data = _read_all(sock)
        except OSError as exc:
            return RawOutcome(path, started, time.monotonic(), "broken", detail=repr(exc))
    ended = time.monotonic()
    status, complete, detail = _parse_response(data)
    return RawOutcome(path, started, ended, "complete" if complete else "broken", status, detail)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _parse_response(data: bytes) -> tuple[int | None, bool, str]:
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return None, False, f"no complete header ({len(data)} bytes)"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        return None, False, f"bad status line {status_line!r}"
    status = int(parts[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    if "content-length" in headers:
        expected = int(headers["content-length"])
        if len(body) != expected:
            return status, False, f"body {len(body)} of {expected} bytes"
    elif headers.get("transfer-encoding", "").lower() == "chunked" and not body.endswith(
        b"0\r\n\r\n"
    ):
        return status, False, "chunked body without its last chunk"
    return status, True, ""


class Hammer(_ClientThreads):
    """Threads each sending raw requests (round-robin over ``requests``) back to back until
    stopped; every outcome is kept."""

    def __init__(
        self,
        host: str,
        port: int,
        requests_: list[tuple[str, str, dict[str, str]]],
        threads: int,
    ) -> None:
        self.host, self.port = host, port
        self.requests = requests_
        self.outcomes: list[RawOutcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"hammer-{n}", daemon=True)
            for n in range(threads)
        ]

    def snapshot(self) -> list[RawOutcome]:
        with self._lock:
            return list(self.outcomes)

    def _run(self, offset: int) -> None:
        for n in itertools.count(offset):
            if self._stop.is_set():
                return
            method, path, headers = self.requests[n % len(self.requests)]
            outcome = raw_request(self.host, self.port, method, path, headers)
            with self._lock:
                self.outcomes.append(outcome)
            if outcome.result == "refused":
                time.sleep(0.01)  # the listener is gone: no need to spin
