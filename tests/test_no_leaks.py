"""Nothing a test run starts outlives it: the session-end sweep (tests.support.processes) finds
a listening server a test forgot, kills it and fails the run; a run that stops what it starts
passes. The same sweep ends every run of this suite."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.servers import wait_until

ROOT = Path(__file__).resolve().parent.parent

INNER_TEST = """
import subprocess, sys
from pathlib import Path

SERVER = (
    "import socket, time\\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\\n"
    "print(s.getsockname()[1], flush=True); time.sleep(300)\\n"
)

def test_starts_a_server():
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True,
        start_new_session={new_session},
    )
    port = proc.stdout.readline().strip()
    Path("{out}").write_text(f"{{proc.pid}} {{port}}")
    if {stop}:
        proc.kill()
        proc.wait()
"""


def _inner_run(tmp_path: Path, *, stop: bool, new_session: bool) -> tuple[int, int, int, str]:
    out = tmp_path / "server.txt"
    test = INNER_TEST.format(out=out, stop=stop, new_session=new_session)
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(test))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.support.processes"),
            *("-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini")),
            *("--rootdir", str(tmp_path), str(tmp_path)),
        ],
        cwd=tmp_path,
        # Only the plugin under test: a dev dependency's own pytest plugin (entry points)
        # must not decide whether this inner run starts.
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    pid, port = (int(value) for value in out.read_text().split())
    return result.returncode, pid, port, result.stdout


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("new_session", [True, False], ids=["own-session", "pytest-group"])
def test_a_server_left_running_is_killed_and_fails_the_run(
    tmp_path: Path, new_session: bool
) -> None:
    code, pid, port, output = _inner_run(tmp_path, stop=False, new_session=new_session)
    assert "1 passed" in output
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert "1 process(es) started by the tests were still running (killed):" in output
    assert f"pid {pid} listening on [{port}]" in output
    wait_until(lambda: not _alive(pid), timeout=10, what=f"pid {pid} to be gone")
    assert not _listening(port)


def test_a_run_that_stops_what_it_starts_passes(tmp_path: Path) -> None:
    code, pid, port, output = _inner_run(tmp_path, stop=True, new_session=True)
    assert code == pytest.ExitCode.OK, output
    assert "still running" not in output
    assert not _alive(pid)
    assert not _listening(port)
