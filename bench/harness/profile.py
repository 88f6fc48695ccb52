"""Profiling the server under load with py-spy (optional)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness.common import PYTHON, ROOT, say


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
