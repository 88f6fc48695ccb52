"""The official JavaScript client (socket.io-client under node), remote-controlled from pytest.

``tests/clients/js`` holds a pinned ``socket.io-client`` (package.json + package-lock.json)
and ``driver.mjs``, which runs one socket per node process and speaks JSON lines on
stdin/stdout. :func:`install` runs ``npm ci`` once per lock file (the result is cached in
``tests/clients/js/node_modules``, git-ignored); a missing node or npm fails the test.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from core.testing.sockets import Recorder

JS_DIR = Path(__file__).resolve().parents[1] / "clients" / "js"
NODE_MODULES = JS_DIR / "node_modules"
BROWSER_BUNDLE = NODE_MODULES / "socket.io-client" / "dist" / "socket.io.min.js"
_STAMP = NODE_MODULES / ".installed-lock-sha256"


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: install node 20 and npm (.ci/run does)"
    return found


def install(directory: Path = JS_DIR) -> Path:
    """``npm ci`` in ``directory`` unless its node_modules already matches its
    package-lock.json; the node binary."""
    node = _tool("node")
    stamp = directory / "node_modules" / _STAMP.name
    lock = hashlib.sha256((directory / "package-lock.json").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != lock:
        subprocess.run(
            [_tool("npm"), "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=directory,
            check=True,
            capture_output=True,
            timeout=300,
        )
        stamp.write_text(lock)
    return Path(node)


class JsClient(Recorder):
    """One socket.io-client socket in a node process; mirrors core.testing.Client."""

    #: The node script in tests/clients/js, speaking JSON lines on stdin/stdout.
    script = "driver.mjs"

    def __init__(self, node: Path) -> None:
        super().__init__()
        self.proc = subprocess.Popen(
            [str(node), str(JS_DIR / self.script)],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._replies: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if "reply" not in message:
                self._record(message["event"], message["data"])
                continue
            with self._received:
                self._replies[message.pop("reply")] = message
                self._received.notify_all()

    def request(self, op: str, wait: float = 10.0, **args: Any) -> dict[str, Any]:
        """Run ``op`` in the driver; its reply within ``wait`` seconds. A driver failure
        fails the test."""
        ident = next(self._ids)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": ident, "op": op, **args}) + "\n")
        self.proc.stdin.flush()
        with self._received:
            self._received.wait_for(lambda: ident in self._replies, wait)
        assert ident in self._replies, f"no reply to {op} from node: {self._stderr()}"
        reply = self._replies.pop(ident)
        assert "failure" not in reply, reply["failure"]
        return reply

    def connect(
        self,
        url: str,
        token: str | None,
        transports: tuple[str, ...] = ("websocket",),
        upgrade: bool = False,
    ) -> dict[str, Any]:
        """``{ok: true, sid, transport}`` or ``{ok: false, message, data}`` (the refusal as
        JS code sees it: ``err.message`` and ``err.data``)."""
        return self.request(
            "connect", url=url, token=token, transports=list(transports), upgrade=upgrade
        )

    def call(self, event: str, data: Any = None, timeout: float = 5.0) -> Any:
        """Emit ``event`` and return its ack."""
        reply = self.request("emit", timeout + 1, event=event, data=data, timeout=timeout * 1000)
        assert "ack" in reply, f"no ack for {event}: {reply}"
        return reply["ack"]

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(node still running)"
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # the driver disconnects and exits
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class JsCrowd(JsClient):
    """Many socket.io-client sockets in one node process (``crowd.mjs``): storms of
    connects, every socket's emit, fan-out timing. Sockets are numbered in the order opened.
    Its chatting members, which follow the reconnect recipe (ops ``members``, ``join``,
    ``chat``, ``status``, ``report``), are driven with :meth:`request` by
    ``bench/harness/cluster.py``.
    """

    script = "crowd.mjs"

    def open(
        self,
        urls: list[str],
        tokens: list[str],
        pace: int = 0,
        timeout: float = 30.0,
        wait: float = 120.0,
    ) -> dict[str, Any]:
        """One websocket per token (``urls`` in turn), ``pace`` connects in flight at most
        (0: all at the same moment): ``{connected, refused: {code: n}, seconds, connect_ms}``.
        """
        return self.request(
            "open", wait, urls=urls, tokens=tokens, pace=pace, timeout=timeout * 1000
        )

    def emit_all(
        self, event: str, data: Any, pace: int = 0, timeout: float = 30.0, wait: float = 120.0
    ) -> dict[str, int]:
        """Every open socket emits ``event``; the acks counted by outcome (``ok`` or the
        error code, ``timeout``)."""
        reply = self.request(
            "emit_all", wait, event=event, data=data, pace=pace, timeout=timeout * 1000
        )
        return dict(reply["outcomes"])

    def emit(self, index: int, event: str, data: Any, timeout: float = 30.0) -> Any:
        """Socket ``index`` emits ``event``; its ack."""
        return self.request(
            "emit", timeout + 5, index=index, event=event, data=data, timeout=timeout * 1000
        )["ack"]

    def close_all(self, pace: int = 0, wait: float = 120.0) -> dict[str, Any]:
        """Disconnect every open socket (``pace`` at a time; 0: all at once)."""
        return self.request("close", wait, pace=pace)

    def stats(self) -> dict[str, Any]:
        """``{open, dropped: {reason: n}, rss}``: ``dropped`` counts the disconnects the
        client did not ask for."""
        return self.request("stats")
