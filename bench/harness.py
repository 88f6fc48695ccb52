"""Shared plumbing of the benchmarks: real servers, gunicorn, wrk, /proc readings, tables.

Everything runs on this machine over loopback: the dev-stack servers (``core.devstack``) on
free ports in a temp dir, gunicorn with the production ``gunicorn.conf.py`` (one gevent
worker), and load from ``wrk``. Every process started here is stopped by the context managers
(and by ``atexit`` if the run is interrupted).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.devstack.process import ChildProcess, NotReady

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
HOST = "127.0.0.1"
PASSWORD = "bench-password-0123456789"

#: Limits far above anything a benchmark sends (two windows per level, like the defaults),
#: so every level is counted in the round trip but nothing is ever refused.
NO_LIMITS = "1000000/second;60000000/minute"


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- the machine -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """nproc, CPU model, memory, kernel and Python: what goes next to every figure."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def machine_line() -> str:
    m = machine()
    return (
        f"machine: {m['nproc']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}"
    )


# -- /proc ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds (clock-tick resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def rss_bytes(pid: int) -> int:
    statm = Path(f"/proc/{pid}/statm").read_text().split()
    return int(statm[1]) * PAGE_SIZE


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` to ``cpus`` (children forked later inherit it)."""
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), cpus)


def cpu_layout() -> tuple[set[int], set[int]] | None:
    """(the server under test, everything else) on separate cores; None on one core."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[0]}, set(cpus[1:])


def free_port() -> int:
    from core.devstack import free_port as devstack_free_port

    return devstack_free_port(HOST)


# -- dev-stack servers -----------------------------------------------------------------------


class Stack:
    """MongoDB, PostgreSQL and Redis (``core.devstack``) on free ports in a temp dir."""

    def __init__(self, servers: Sequence[str] = ("mongodb", "postgres", "redis")) -> None:
        self.names = tuple(servers)
        self.root = Path(tempfile.mkdtemp(prefix="pb04-bench-"))
        self.mongodb: Any = None
        self.postgres: Any = None
        self.redis: Any = None

    def __enter__(self) -> Stack:
        from core.devstack import MongoServer, PostgresServer, RedisServer

        started = time.monotonic()
        if "mongodb" in self.names:
            self.mongodb = MongoServer(self.root / "mongodb", free_port())
        if "postgres" in self.names:
            self.postgres = PostgresServer(self.root / "postgres", free_port())
        if "redis" in self.names:
            self.redis = RedisServer(self.root / "redis", free_port())
        try:
            with ThreadPoolExecutor(max_workers=3, thread_name_prefix="bench-stack") as pool:
                futures = [pool.submit(server.start, 60) for server in self.servers]
                for future in futures:
                    future.result()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        say(f"dev stack up in {time.monotonic() - started:.1f}s ({', '.join(self.names)})")
        return self

    @property
    def servers(self) -> list[Any]:
        return [s for s in (self.mongodb, self.postgres, self.redis) if s is not None]

    def pin(self, cpus: set[int]) -> None:
        """Keep the stores off the core of the server under test (PostgreSQL backends are
        forked later and inherit the postmaster's affinity)."""
        for server in self.servers:
            if server.pid is not None:
                pin(server.pid, cpus)

    def __exit__(self, *exc: object) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def app_env(self, **overrides: str) -> dict[str, str]:
        """Production settings (``APP_ENV=prod``) against these servers, limits out of the way."""
        secrets_dir = self.root / "secrets"
        secrets_dir.mkdir(exist_ok=True)
        env = {
            "APP_ENV": "prod",
            "MONGODB_DB": "bench",
            "REDIS_KEY_PREFIX": "bench:",
            "JWT_SECRET": secrets.token_urlsafe(48),
            "ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "SECRETS_DIR": str(secrets_dir),
            "MODULES_PACKAGES": "modules,bench.modules",
            "RATE_LIMIT_IP": NO_LIMITS,
            "RATE_LIMIT_USER": NO_LIMITS,
            "RATE_LIMIT_API_KEY": NO_LIMITS,
            "RATE_LIMIT_SOCKET": NO_LIMITS,
            "SHUTDOWN_TIMEOUT": "1",
            # The stores share a core with wrk (and, on a shared machine, with other work):
            # at the default 100 ms a busy machine turned a few requests in 10,000 into 503s
            # (the revocation check fails closed), which invalidates a run.
            "RATE_LIMIT_REDIS_TIMEOUT_MS": "500",
        }
        if self.mongodb is not None:
            env["MONGODB_URI"] = self.mongodb.uri
        if self.postgres is not None:
            env["POSTGRES_DSN"] = self.postgres.dsn
        if self.redis is not None:
            env["REDIS_URL"] = self.redis.url
        env.update(overrides)
        return env


def base_env(extra: dict[str, str]) -> dict[str, str]:
    """os.environ without the app's own settings (a stray export must not leak in)."""
    from config.settings import Settings

    names = set(Settings.env_names())
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env


# -- gunicorn --------------------------------------------------------------------------------


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py APP`` (one gevent worker) on a free port, run as a
    :class:`~core.devstack.process.ChildProcess`."""

    def __init__(
        self, app_spec: str, env: dict[str, str], log_dir: Path, name: str, root: Path = ROOT
    ) -> None:
        self.app_spec = app_spec
        self.root = root  # the checkout served (another commit's worktree for comparisons)
        self.port = free_port()
        self.env = base_env({**env, "HOST": HOST, "PORT": str(self.port)})
        self.log_path = log_dir / f"gunicorn-{name}.log"
        self.name = name
        self.child: ChildProcess | None = None
        self.worker = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, ready_path: str, timeout: float = 60.0) -> Gunicorn:
        command = [PYTHON, "-m", "gunicorn", "-c", str(self.root / "gunicorn.conf.py")]
        child = ChildProcess([*command, self.app_spec], self.log_path, env=self.env, cwd=self.root)
        self.child = child.start()
        try:
            child.wait_ready(
                lambda: request("GET", self.url + ready_path, timeout=2)[0] == 200,
                timeout,
                f"gunicorn {self.name}",
            )
        except NotReady as exc:
            raise RuntimeError(f"{exc}: {self.log_tail()}") from None
        assert child.proc is not None
        workers = children(child.proc.pid)
        if len(workers) != 1:
            raise RuntimeError(f"gunicorn {self.name}: expected one worker, found {workers}")
        self.worker = workers[0]
        say(f"gunicorn {self.name} ({self.app_spec}) on {self.url}, worker pid {self.worker}")
        return self

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(grace=30)
            self.child = None

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- HTTP from Python (setup and small samples, never the load) ------------------------------


def request(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, Any]:
    """One request; returns (status, decoded JSON body or text)."""
    parts = urlsplit(url)
    conn = connection or http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    sent_headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent_headers["Content-Type"] = "application/json"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, path, body=data, headers=sent_headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        if connection is None:
            conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode(errors="replace")


def register_and_login(base_url: str, label: str = "bench") -> dict[str, Any]:
    """A new user through the public API; returns the login answer (tokens)."""
    uid = uuid.uuid4().hex[:10]
    email = f"{label}-{uid}@example.com"
    body = {"email": email, "username": f"{label}_{uid}", "password": PASSWORD}
    status, answer = request("POST", base_url + "/public/register", body)
    if status != 201:
        raise RuntimeError(f"register failed: {status} {answer}")
    status, answer = request(
        "POST", base_url + "/public/login", {"email": email, "password": PASSWORD}
    )
    if status != 200:
        raise RuntimeError(f"login failed: {status} {answer}")
    return dict(answer)


def create_api_key(env: dict[str, str], name: str = "bench") -> str:
    """A new API key through the CLI (``flask --app app api-keys create``)."""
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "flask",
            "--app",
            "app",
            "api-keys",
            "create",
            "--name",
            name,
            "--scope",
            "bench",
        ],
        cwd=ROOT,
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or len(lines) < 2:
        raise RuntimeError(f"api-keys create failed: {result.stdout} {result.stderr[-800:]}")
    return lines[1].strip()


# -- Redis commands per request (MONITOR) ------------------------------------------------------


# -- wrk ---------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary; installs Debian's package when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is not installed: run `sudo apt-get install -y wrk`")
    say("wrk is missing: apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        subprocess.run(install, env=env, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def run_wrk(
    url: str,
    seconds: float,
    connections: int,
    threads: int = 1,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    cpus: set[int] | None = None,
) -> WrkResult:
    headers = headers or {}
    env = {
        **os.environ,
        "WRK_METHOD": method,
        "WRK_BODY": json.dumps(body) if body is not None else "",
        "WRK_AUTHORIZATION": headers.get("Authorization", ""),
        "WRK_API_KEY": headers.get("X-API-Key", ""),
    }
    command = [
        ensure_wrk(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
        "--timeout", "5s", "--latency", "-s", str(BENCH / "wrk" / "report.lua"), url,
    ]  # fmt: skip
    if cpus and shutil.which("taskset"):
        command = ["taskset", "-c", ",".join(str(cpu) for cpu in sorted(cpus)), *command]
    result = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stdout} {result.stderr}")
    data = json.loads(line[len("WRK_JSON ") :])
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        p999_ms=data["p999"] / 1000,
        mean_ms=data["mean"] / 1000,
        max_ms=data["max"] / 1000,
        errors={k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]},
    )


# -- statistics and output ---------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (need not be sorted); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable in a terminal and pasteable into docs)."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def save(name: str, text: str, data: dict[str, Any]) -> Path:
    """Write bench/results/<name>.txt and .json (latest run) and a timestamped copy."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = {"benchmark": name, "time": stamp, "machine": machine(), **data}
    for target in (RESULTS / name, RESULTS / f"{name}-{stamp}"):
        target.with_suffix(".txt").write_text(text + "\n")
        target.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    return RESULTS / f"{name}.txt"


@contextlib.contextmanager
def log_dir(keep: bool) -> Iterator[Path]:
    """Where gunicorn logs go: a temp dir, removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix="pb04-bench-logs-"))
    try:
        yield path
    finally:
        if keep:
            say(f"logs kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


# -- profiling (optional: py-spy) --------------------------------------------------------------


def py_spy() -> str | None:
    beside = Path(PYTHON).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def profile_while(pid: int, seconds: float, output: Path, load: Callable[[], Any]) -> bool:
    """Sample ``pid`` with py-spy (raw collapsed stacks into ``output``) while ``load`` runs."""
    binary = py_spy()
    if binary is None:
        say("py-spy is not installed (pip install -r bench/requirements.txt): no profile")
        return False
    command = [
        binary, "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
        "--duration", str(int(seconds) + 1), "--output", str(output),
    ]  # fmt: skip
    sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    load()
    try:
        sampler.wait(seconds + 30)
    except subprocess.TimeoutExpired:
        sampler.kill()
        sampler.wait(5)
    return output.is_file()


def profile_summary(raw: Path, top: int = 40, cpu_us: float | None = None) -> str:
    """Inclusive and self shares per function (``file:function``) of py-spy's raw stacks;
    with ``cpu_us`` (CPU per request of the profiled load) also an estimate in us/request."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_frame(frame) for frame in stack.split(";") if frame]
        for frame in set(frames):
            inclusive[frame] += samples
        if frames:
            own[frames[-1]] += samples
    if not total:
        return "(no samples)"

    def line(frame: str, samples: int) -> str:
        share = samples / total
        estimate = f"  ~{share * cpu_us:6.1f} us/req" if cpu_us else ""
        return f"  {100 * share:5.1f}%{estimate}  {frame}"

    header = f"{total} samples of the busy worker (idle time excluded)"
    if cpu_us:
        header += f"; us/req = share x {cpu_us:.0f} us of worker CPU per request"
    lines = [header, "", "inclusive:"]
    lines += [line(f, n) for f, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [line(f, n) for f, n in own.most_common(top // 2)]
    return "\n".join(lines)


def _frame(frame: str) -> str:
    """``func (path/file.py:123)`` -> ``path/file.py:func``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{where}:{name}" if where else name
