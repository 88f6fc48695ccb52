"""No process outlives the test run: a pytest plugin (loaded by tests/conftest.py).

Every process the suite starts inherits ``TEST_RUN_ID=<this run>`` from the environment, so it
can be found whoever its parent is now (an orphan is re-parented to init) and whatever test
forgot it, on a machine where other runs go on at the same time. When the session ends, any
process still carrying this run's id gets a short grace to finish exiting, then is killed (its
whole process group when it leads one) and listed with the ports it was listening on, and the
run fails: a leak is a bug even when every test passed.

Servers that tests start should still stop themselves at teardown, whatever fails (see
``tests.production.helpers.ServedProcess``); this sweep is the net under that.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

RUN_ID = "TEST_RUN_ID"
GRACE = 3.0


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone, or not ours to read
        return []


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:160]


def processes_of_run(run_id: str) -> list[int]:
    """Live processes (other than this one) started with ``TEST_RUN_ID=run_id``."""
    needle = f"{RUN_ID}={run_id}".encode()
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and int(entry.name) != os.getpid()
        if needle in _environ(int(entry.name))
    ]


def listening_ports(pid: int) -> list[int]:
    """TCP ports ``pid`` listens on (IPv4 and IPv6)."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    ports = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:[") and target[8:-1] in inodes:
                ports.add(inodes[target[8:-1]])
    except OSError:
        pass
    return sorted(ports)


def _kill(pid: int) -> None:
    try:
        # The group only when the process leads it: never the group pytest itself is in.
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def sweep(run_id: str, grace: float = GRACE) -> list[str]:
    """Kill what this run left running; one line per process that was still there."""
    deadline = time.monotonic() + grace
    left = processes_of_run(run_id)
    while left and time.monotonic() < deadline:  # a server in the middle of its stop
        time.sleep(0.1)
        left = processes_of_run(run_id)
    report = [
        f"pid {pid} listening on {listening_ports(pid) or 'no port'}: {_cmdline(pid)}"
        for pid in left
    ]
    for pid in left:
        _kill(pid)
    return report


def pytest_configure(config: pytest.Config) -> None:
    os.environ[RUN_ID] = uuid.uuid4().hex


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = sweep(os.environ[RUN_ID])
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(left)} process(es) started by the tests were still running (killed):", *left]
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
