"""One child process, run the one way the dev stack, the benchmarks and the tests run servers.

- Own session (process group): a terminal's Ctrl-C does not reach it before its supervisor
  stops things in order, and :meth:`ChildProcess.kill` takes the whole group (PostgreSQL's
  backends, gunicorn's worker) with it.
- Output appended to a log file; :meth:`ChildProcess.log_lines` reads what this run wrote.
- :meth:`ChildProcess.stop` sends its stop signal (and runs its ``after_signal``), waits a
  grace period, then kills the group.
- Every process still running when the interpreter exits is stopped that way, the last
  started first.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_live: list[ChildProcess] = []
_live_lock = threading.Lock()


@atexit.register
def _stop_live() -> None:
    with _live_lock:
        running = list(reversed(_live))
    for child in running:
        with contextlib.suppress(Exception):
            child.stop()


class NotReady(RuntimeError):
    """A child exited while starting or did not get ready in time (``reason`` says which)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.reason = reason


class ChildProcess:
    """``argv`` run in its own session with its output appended to ``log_file``."""

    def __init__(
        self,
        argv: Sequence[str],
        log_file: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        banner: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        after_signal: Callable[[subprocess.Popen[bytes]], None] | None = None,
        **popen_extra: Any,
    ) -> None:
        self.argv = list(argv)
        self.log_file = log_file
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.banner = banner
        self.stop_signal = stop_signal
        self.after_signal = after_signal
        self.popen_extra = popen_extra
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self) -> ChildProcess:
        """Spawn it (an OSError when ``argv[0]`` cannot run)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            if self.banner:
                log.write(f"--- {self.banner} at {time.ctime()} ---\n".encode())
                log.flush()
            self._log_offset = log.tell()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.cwd,
                env=self.env,
                **self.popen_extra,
            )
        with _live_lock:
            _live.append(self)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    def exit_code(self) -> int | None:
        """The exit code once it has exited; None while it runs (or before start)."""
        return None if self.proc is None else self.proc.poll()

    def wait_ready(
        self, ready: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
    ) -> None:
        """Poll ``ready`` (exceptions count as "not yet") until it answers True. Kills the
        process and raises :class:`NotReady` when it exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            code = self.exit_code()
            if code is not None:
                self.kill()
                raise NotReady(what, f"exited with code {code} while starting")
            try:
                if ready():
                    return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last = " ".join(str(exc).split()) or type(exc).__name__
            if time.monotonic() >= deadline:
                self.kill()
                raise NotReady(what, f"not ready after {timeout:g}s ({last})")
            time.sleep(interval)

    def stop(self, grace: float = 10.0) -> None:
        """Send the stop signal, wait up to ``grace`` seconds, then kill the group. Idempotent."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            if self.after_signal is not None:
                self.after_signal(proc)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self._forget()

    def kill(self) -> None:
        """SIGKILL to the whole process group, at once. Idempotent."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                with contextlib.suppress(OSError):
                    proc.kill()
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self._forget()

    def log_lines(self) -> list[str]:
        """What this run wrote to the log (not earlier runs appending to the same file)."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace").splitlines()
        except OSError:
            return []

    def _forget(self) -> None:
        with _live_lock:
            if self in _live:
                _live.remove(self)
