"""The dev servers' base: port check, then a :class:`~core.devstack.process.ChildProcess`
waited on until the server answers its protocol, and stopped with its own signal."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from core.devstack.process import ChildProcess, NotReady

_POLL_INTERVAL = 0.05
_TAIL_LINES = 5
_TAIL_CHARS = 600


class DevServerError(RuntimeError):
    """A dev server failed to start; the message is one line ending with the log tail."""


class PortInUseError(DevServerError):
    """The server's port was already taken before anything was spawned."""


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to port 0, read it back, close)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    """Poll until ``predicate`` is truthy; OS errors (refused connections, timeouts, requests'
    errors included) count as "not yet". Raises TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(_POLL_INTERVAL)


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def one_line(text: object) -> str:
    return " ".join(str(text).split())


class DevServer(ABC):
    """One server run as a child process, logging to a file."""

    name: ClassVar[str]
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(self, host: str, port: int, log_file: Path) -> None:
        self.host = host
        self.port = port
        self.log_file = log_file
        self._child: ChildProcess | None = None
        self._lock = threading.RLock()

    # --- hooks for the concrete servers -------------------------------------------------

    @abstractmethod
    def _command(self) -> list[str]:
        """The argv of the server process."""

    @abstractmethod
    def _ping(self) -> None:
        """Raise unless the server answers a real protocol request."""

    @property
    @abstractmethod
    def address(self) -> str:
        """Where to reach the server, without any secret (for printing)."""

    def _prepare(self) -> None:  # noqa: B027 - optional hook
        """Create directories etc. before spawning."""

    def _after_ready(self) -> None:  # noqa: B027 - optional hook
        """One-off setup once the server answers (roles, databases)."""

    def _cwd(self) -> Path | None:
        return None

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _popen_extra(self) -> dict[str, Any]:
        return {}

    def _after_stop_signal(self, proc: subprocess.Popen[bytes]) -> None:  # noqa: B027
        """Called right after the stop signal was sent."""

    # --- public API ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.running

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def start(self, timeout: float = 30.0) -> None:
        with self._lock:
            if self.running:
                return
            self.check_port()
            try:
                self._prepare()
            except OSError as exc:
                raise DevServerError(f"{self.name}: {one_line(exc)}") from None
            self._spawn()
            self._wait_ready(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            child = self._child
            if child is None:
                return
            child.stop(timeout)
            self._child = None

    # --- internals ----------------------------------------------------------------------

    def check_port(self) -> None:
        """Raise PortInUseError if something already listens on (or holds) the port."""
        # SO_REUSEADDR like the servers themselves: TIME_WAIT leftovers of a previous run on
        # this port must not count as "in use", a listener must.
        with socket.socket(_family(self.host), socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUseError(
                        f"{self.name}: port {self.port} on {self.host} is already in use "
                        f"(set DEV_{self.name.upper()}_PORT to another port)"
                    ) from None
                raise DevServerError(
                    f"{self.name}: cannot bind {host_port(self.host, self.port)}: {exc}"
                ) from None

    def _spawn(self) -> None:
        command = self._command()
        child = ChildProcess(
            command,
            self.log_file,
            env=self._env(),
            cwd=self._cwd(),
            banner=f"devstack: starting {self.name}",
            stop_signal=self.stop_signal,
            after_signal=self._after_stop_signal,
            **self._popen_extra(),
        )
        try:
            self._child = child.start()
        except OSError as exc:
            raise DevServerError(f"{self.name}: cannot run {command[0]}: {exc}") from None

    def _answers(self) -> bool:
        # Cheap TCP probe first: client libraries retry for their whole timeout.
        with socket.create_connection((self.host, self.port), timeout=0.5):
            pass
        self._ping()
        return True

    def _wait_ready(self, timeout: float) -> None:
        assert self._child is not None
        try:
            self._child.wait_ready(self._answers, timeout, self.name, _POLL_INTERVAL)
        except NotReady as exc:
            self._fail(exc.reason)
        try:
            self._after_ready()
        except DevServerError:
            self._discard()
            raise
        except Exception as exc:  # noqa: BLE001
            self._fail(f"setup failed: {one_line(exc)}")

    def _fail(self, message: str) -> NoReturn:
        tail = self._log_tail()
        self._discard()
        raise DevServerError(f"{self.name}: {message}; log {self.log_file}: {tail}")

    def _discard(self) -> None:
        if self._child is not None:
            self._child.kill()
        self._child = None

    def _log_tail(self) -> str:
        written = self._child.log_lines() if self._child is not None else []
        lines = [one_line(line) for line in written]
        tail = " | ".join([line for line in lines if line][-_TAIL_LINES:])
        if len(tail) > _TAIL_CHARS:
            tail = "..." + tail[-_TAIL_CHARS:]
        return tail or "(log empty)"
