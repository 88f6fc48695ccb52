"""Dev stack supervisor.

    python -m core.devstack run [--] [command ...]   # default command: <python> app.py
    python -m core.devstack up                       # print `export K=V` lines, wait for Ctrl-C

`run` starts the four servers, runs the command with os.environ plus the stack's settings,
forwards SIGINT/SIGTERM/SIGHUP to it, stops the servers when it exits and exits with its code.
The servers run in their own session, so a terminal Ctrl-C reaches only us and the command.

Ports come from DEV_MONGODB_PORT (27018), DEV_POSTGRES_PORT (5433), DEV_REDIS_PORT (6380) and
DEV_VAULT_PORT (8201); data (kept between runs) from DEVDATA_DIR (default ./.devdata). While
the stack runs, its settings are also in DEVDATA_DIR/stack.json for the Flask CLI to find
(config/dev_stack.py); the file goes when the stack stops.

The stack's settings (MONGODB_URI, POSTGRES_DSN, REDIS_URL, VAULT_*) win over the same names
already in the environment: the servers just started are the ones the app has to talk to, and
a stale export pointing elsewhere would fail in confusing ways. Everything else passes through.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from config.dev_stack import stack_file
from core.devstack._base import DevServerError
from core.devstack.stack import SERVER_NAMES, DevStack

_DEFAULT_PORTS = {"mongodb": 27018, "postgres": 5433, "redis": 6380, "vault": 8201}
# SIGHUP too: closing the terminal must not skip the orderly stop (the servers run in their
# own session and would be left behind).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_USAGE = "usage: python -m core.devstack {run [--] [command ...] | up}"


def _say(message: str) -> None:
    print(f"devstack: {message}", file=sys.stderr, flush=True)


def _ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    for name in SERVER_NAMES:
        var = f"DEV_{name.upper()}_PORT"
        raw = os.environ.get(var, "").strip()
        port = int(raw) if raw.isdigit() else (_DEFAULT_PORTS[name] if not raw else -1)
        if not 0 < port < 65536:
            raise DevServerError(f"{var} must be a port number, not {raw!r}")
        ports[name] = port
    return ports


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _terminal_delivers_sigint() -> bool:
    """True when Ctrl-C in our terminal reaches our process group, hence the child too."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def _run(env: dict[str, str], command: list[str]) -> int:
    if command[:1] == ["--"]:
        command = command[1:]
    command = command or [sys.executable, "app.py"]
    try:
        child = subprocess.Popen(command, env={**os.environ, **env})
    except OSError as exc:
        _say(f"cannot run {command[0]}: {exc}")
        return 127
    skipped_sigint = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal skipped_sigint
        # A terminal Ctrl-C already hit the child (same process group): a second SIGINT would
        # interrupt its clean shutdown. A repeated one is forwarded.
        if signum == signal.SIGINT and not skipped_sigint and _terminal_delivers_sigint():
            skipped_sigint = True
            return
        if child.poll() is None:
            child.send_signal(signum)

    for signum in _STOP_SIGNALS:
        signal.signal(signum, forward)
    code = child.wait()
    return 128 - code if code < 0 else code


def _publish(path: Path, env: dict[str, str]) -> None:
    """Write the stack's settings for ``flask`` commands in other terminals (0600)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"pid": os.getpid(), "settings": env}, out, indent=2)
    os.replace(tmp, path)


def _up(stack: DevStack, env: dict[str, str]) -> int:
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}", flush=True)
    _say("running, Ctrl-C to stop")
    stop = threading.Event()
    for signum in _STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: stop.set())
    while not stop.wait(0.5):
        dead = [server.name for server in stack.servers if not server.running]
        if dead:
            _say(f"{', '.join(dead)} exited unexpectedly, see {stack.root / 'logs'}")
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("run", "up"):
        print(_USAGE, file=sys.stderr)
        return 2
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        published = stack_file(os.environ)
        stack = DevStack(published.parent, _ports())
        began = time.monotonic()
        env = stack.start()  # stops whatever it started when something fails
    except (DevServerError, OSError) as exc:
        _say(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        _publish(published, env)
        for server in stack.servers:
            _say(f"{server.name:<8} {server.address}")
        _say(f"up in {time.monotonic() - began:.1f}s, data and logs in {stack.root}")
        if args[0] == "run":
            return _run(env, args[1:])
        return _up(stack, env)
    finally:
        # Stopping takes a moment; a second Ctrl-C must not leave servers behind.
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        published.unlink(missing_ok=True)
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
