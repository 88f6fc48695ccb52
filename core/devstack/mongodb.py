"""MongoDB for development: the SecantusDB daemon `secantusd-py` as a child process.

SecantusDB is GPL: it is only ever run as a separate program, never imported.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from core.devstack._base import DevServer, DevServerError, host_port

_DAEMON = "secantusd-py"


def _daemon_command() -> list[str]:
    # The venv's bin/ is not on PATH when the venv python is called directly; run the script
    # with our own interpreter then (no dependence on its shebang).
    beside = Path(sys.executable).parent / _DAEMON
    if beside.is_file():
        return [sys.executable, str(beside)]
    found = shutil.which(_DAEMON)
    if found is None:
        raise DevServerError(f"mongodb: {_DAEMON} not found (pip install -r requirements-dev.txt)")
    return [found]


class MongoServer(DevServer):
    name = "mongodb"

    def __init__(
        self,
        data_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        *,
        log_file: Path | None = None,
    ) -> None:
        super().__init__(host, port, log_file or data_dir / "mongodb.log")
        self.data_dir = data_dir

    @property
    def uri(self) -> str:
        # directConnection: the daemon advertises a one-node replica set named after the
        # --host it was given; a direct connection works whatever name the client used, and
        # transactions and change streams still work through it.
        return f"mongodb://{host_port(self.host, self.port)}/?directConnection=true"

    @property
    def address(self) -> str:
        return self.uri

    @property
    def _config_file(self) -> Path:
        return self.data_dir / "secantusd.toml"

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # An explicit (empty) config stops the daemon from picking up ./secantusd.toml,
        # ~/.secantus/secantusd.toml or /etc/secantus/secantusd.toml.
        if not self._config_file.exists():
            self._config_file.write_text("# devstack: defaults, flags on the command line\n")

    def _command(self) -> list[str]:
        return [
            *_daemon_command(),
            "--config",
            str(self._config_file),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir),
            "--log-level",
            "WARNING",
        ]

    def _cwd(self) -> Path:
        return self.data_dir

    def _ping(self) -> None:
        from pymongo import MongoClient

        client: MongoClient[dict[str, object]] = MongoClient(
            self.uri, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
        )
        try:
            client.admin.command("ping")
        finally:
            client.close()

    def _after_stop_signal(self, proc: subprocess.Popen[bytes]) -> None:
        # The daemon's accept thread sits in accept() after SIGTERM and its shutdown waits 2 s
        # for it; one connection after the stop flag is set wakes it (stop: 2 s -> ~0.2 s).
        # SecantusDB 0.7.0b3 also misses SIGTERM now and then (the signal lands on a thread
        # while the main thread waits without a timeout): send it again until it exits.
        deadline = time.monotonic() + 3.0
        listening = True
        while proc.poll() is None and time.monotonic() < deadline:
            if listening:
                try:
                    with socket.create_connection((self.host, self.port), timeout=0.2):
                        pass
                except OSError:
                    listening = False  # listener gone: nothing left to wake
            time.sleep(0.2)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(self.stop_signal)
