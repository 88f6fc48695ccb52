"""Socket.IO spoken by hand over a plain websocket: what the server sends, frame by frame, in
the order it sent it (an official client hands events and acks to callbacks in threads or
microtasks, which may reorder them)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import websocket


class RawSocket:
    """A plain websocket on the Engine.IO endpoint, speaking (or not) Socket.IO by hand."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(
            url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket", timeout=5
        )
        opened = self.ws.recv()
        assert isinstance(opened, str)
        assert opened.startswith("0"), opened  # Engine.IO "open"
        self.closed = False

    def send(self, frame: str | bytes) -> bool:
        """Send one frame; False when the server had already closed the connection."""
        try:
            if isinstance(frame, bytes):
                self.ws.send_binary(frame)
            else:
                self.ws.send(frame)
        except (websocket.WebSocketException, OSError):
            self.closed = True
            return False
        return True

    def receive(self, wait: float = 0.3, until: Callable[[str], bool] | None = None) -> list[str]:
        """Frames the server sent within ``wait`` s, or until one matches ``until`` (pings
        answered, not returned); sets ``closed`` when the server closed the connection (or
        wrote something that is not a websocket frame any more)."""
        frames: list[str] = []
        deadline = time.monotonic() + wait
        while not self.closed and (remaining := deadline - time.monotonic()) > 0:
            self.ws.settimeout(remaining)
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                break
            except (websocket.WebSocketException, OSError):
                self.closed = True
                break
            if frame in ("", b""):
                self.closed = True
            elif frame == "2":  # Engine.IO ping
                self.send("3")
            else:
                text = frame if isinstance(frame, str) else repr(frame)
                frames.append(text)
                if until is not None and until(text):
                    break
        return frames

    def connect(self, auth: Any) -> str:
        """Send the Socket.IO connect packet; the server's answer (``40...`` or ``44...``)."""
        self.send("40" + json.dumps(auth))
        answers = self.receive(5.0, until=lambda frame: frame.startswith(("40", "44")))
        assert answers, f"no answer to the connect packet with {auth!r:.40}"
        return answers[-1]

    def call(self, ack_id: int, event: str, data: Any, wait: float = 5.0) -> Any:
        """Emit with an ack id; the ack's first argument, or None if none came in ``wait``."""
        prefix = f"43{ack_id}["
        self.send(f"42{ack_id}" + json.dumps([event, data]))
        acks = [
            f
            for f in self.receive(wait, until=lambda f: f.startswith(prefix))
            if f.startswith(prefix)
        ]
        return json.loads(acks[0][len(prefix) - 1 :])[0] if acks else None

    def close(self) -> None:
        """Close without waiting for the close handshake."""
        with suppress(websocket.WebSocketException, OSError):
            self.ws.send_close()
        with suppress(OSError):
            self.ws.shutdown()


def parse(frame: str) -> tuple[str, Any, Any]:
    """``("event", name, data)`` for ``42[name, data]``, ``("ack", id, data)`` for
    ``43<id>[data]``, else ``("other", frame, None)``."""
    if frame.startswith("42["):
        name, *rest = json.loads(frame[2:])
        return "event", name, rest[0] if rest else None
    if frame.startswith("43"):
        end = 2
        while frame[end].isdigit():
            end += 1
        args = json.loads(frame[end:])
        return "ack", int(frame[2:end]), args[0] if args else None
    return "other", frame, None
