"""Profiling the server under load with py-spy (optional)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.harness.common import PYTHON, ROOT, say


def py_spy() -> str | None:
    beside = Path(PYTHON).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


@contextlib.contextmanager
def sampling(pid: int, output: Path, seconds: float | None = None) -> Iterator[bool]:
    """Sample ``pid`` with py-spy (raw collapsed stacks into ``output``) for the body of the
    ``with`` (at most ``seconds`` when given); yields whether py-spy runs. The profile is
    written when the body ends (py-spy is interrupted, as Ctrl-C does)."""
    binary = py_spy()
    if binary is None:
        say("py-spy is not installed (pip install -r bench/requirements.txt): no profile")
        yield False
        return
    command = [
        binary, "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
        "--output", str(output),
    ]  # fmt: skip
    if seconds is not None:
        command += ["--duration", str(int(seconds) + 1)]
    sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield True
    finally:
        if sampler.poll() is None and seconds is None:
            sampler.send_signal(signal.SIGINT)
        try:
            sampler.wait(30 if seconds is None else seconds + 30)
        except subprocess.TimeoutExpired:
            sampler.kill()
            sampler.wait(5)


def profile_while(pid: int, seconds: float, output: Path, load: Callable[[], Any]) -> bool:
    """Sample ``pid`` with py-spy (raw collapsed stacks into ``output``) while ``load`` runs."""
    with sampling(pid, output, seconds) as running:
        if not running:
            return False
        load()
    return output.is_file()


#: Leaf frames that are a thread waiting, not working: py-spy does not always see that a
#: thread blocked in C is idle (gevent's threadpool threads waiting for work).
WAITING = frozenset({"gevent/_threading.py:acquire_with_timeout"})


def profile_summary(
    raw: Path, top: int = 40, cpu_us: float | None = None, unit: str = "req"
) -> str:
    """Inclusive and self shares per function (``file:function``) of py-spy's raw stacks;
    with ``cpu_us`` (CPU per request, or per ``unit``, of the profiled load) also an
    estimate in us/request. Threads waiting (:data:`WAITING`) are left out."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        frames = [_frame(frame) for frame in stack.split(";") if frame]
        if frames and frames[-1] in WAITING:
            continue
        total += samples
        for frame in set(frames):
            inclusive[frame] += samples
        if frames:
            own[frames[-1]] += samples
    if not total:
        return "(no samples)"

    def line(frame: str, samples: int) -> str:
        share = samples / total
        estimate = f"  ~{share * cpu_us:6.1f} us/{unit}" if cpu_us else ""
        return f"  {100 * share:5.1f}%{estimate}  {frame}"

    header = f"{total} samples of the busy worker (idle time excluded)"
    if cpu_us:
        header += f"; us/{unit} = share x {cpu_us:.0f} us of worker CPU per {unit}"
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
