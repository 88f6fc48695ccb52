"""Load from ``wrk`` (apt-installed when missing, as other Debian tools: :func:`ensure_tool`)
and its results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from bench.harness.common import BENCH, say


def ensure_tool(command: str, package: str | None = None) -> str:
    """The path of ``command``; installs Debian's ``package`` (default: the command's name)
    when it is missing and we are root."""
    package = package or command
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit(f"{command} is not installed: run `sudo apt-get install -y {package}`")
    say(f"{command} is missing: apt-get install -y {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", package]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        subprocess.run(install, env=env, check=True)
    found = shutil.which(command)
    if not found:
        raise SystemExit(f"{command} could not be installed")
    return found


def ensure_wrk() -> str:
    """The wrk binary (:func:`ensure_tool`)."""
    return ensure_tool("wrk")


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
