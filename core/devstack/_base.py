"""Process handling shared by the dev servers: port check, spawn, readiness wait, stop."""

from __future__ import annotations

import atexit
import contextlib
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
from typing import Any, ClassVar

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


_registry: list[DevServer] = []
_registry_lock = threading.Lock()


@atexit.register
def _stop_registered() -> None:
    # Servers run in their own session, so nothing else stops them if we exit early.
    with _registry_lock:
        servers = list(reversed(_registry))
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


class DevServer(ABC):
    """One server run as a child process, logging to a file."""

    name: ClassVar[str]
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(self, host: str, port: int, log_file: Path) -> None:
        self.host = host
        self.port = port
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
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
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

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
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(self.stop_signal)
                self._after_stop_signal(proc)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._kill(proc)
            self._proc = None
            with _registry_lock:
                if self in _registry:
                    _registry.remove(self)

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
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"--- devstack: starting {self.name} at {time.ctime()} ---\n".encode())
            log.flush()
            self._log_offset = log.tell()
            try:
                self._proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own session: a terminal Ctrl-C must not kill the servers before the
                    # supervisor has stopped the app and then them, in order.
                    start_new_session=True,
                    cwd=self._cwd(),
                    env=self._env(),
                    **self._popen_extra(),
                )
            except OSError as exc:
                raise DevServerError(f"{self.name}: cannot run {command[0]}: {exc}") from None
        with _registry_lock:
            if self not in _registry:
                _registry.append(self)

    def _wait_ready(self, timeout: float) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while True:
            code = proc.poll()
            if code is not None:
                self._fail(f"exited with code {code} while starting")
            try:
                # Cheap TCP probe first: client libraries retry for their whole timeout.
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                self._ping()
                break
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last_error = one_line(exc) or type(exc).__name__
            if time.monotonic() >= deadline:
                self._fail(f"not ready after {timeout:g}s ({last_error})")
            time.sleep(_POLL_INTERVAL)
        try:
            self._after_ready()
        except DevServerError:
            self._discard()
            raise
        except Exception as exc:  # noqa: BLE001
            self._fail(f"setup failed: {one_line(exc)}")

    def _fail(self, message: str) -> None:
        self._discard()
        raise DevServerError(f"{self.name}: {message}; log {self.log_file}: {self._log_tail()}")

    def _discard(self) -> None:
        proc = self._proc
        if proc is not None:
            self._kill(proc)
        self._proc = None
        with _registry_lock:
            if self in _registry:
                _registry.remove(self)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group: postgres backends too
            except OSError:
                with contextlib.suppress(OSError):
                    proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def _log_tail(self) -> str:
        try:
            with open(self.log_file, "rb") as log:
                log.seek(self._log_offset)
                data = log.read()
        except OSError:
            return "(no log)"
        lines = [one_line(line) for line in data.decode(errors="replace").splitlines()]
        tail = " | ".join([line for line in lines if line][-_TAIL_LINES:])
        if len(tail) > _TAIL_CHARS:
            tail = "..." + tail[-_TAIL_CHARS:]
        return tail or "(log empty)"
