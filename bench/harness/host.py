"""The machine under the figures: CPU model, load, and /proc readings of processes."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

from bench.harness.common import HOST

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


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


def tcp_counters() -> dict[str, int]:
    """The kernel's TCP counters (``/proc/net/netstat`` TcpExt, this network namespace: every
    process on the machine adds to them), e.g. ``ListenOverflows``: connections dropped
    because a listener's accept queue was full (their client retries the SYN after 1 s, 3 s)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=False))
    return {}


def machine_line() -> str:
    m = machine()
    return (
        f"machine: {m['nproc']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}"
    )


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
