"""Statistics and output: percentiles, tables, saved results, log folders."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.harness.common import RESULTS, say
from bench.harness.host import (
    machine,
)


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


def save(name: str, text: str, data: dict[str, Any], smoke: bool = False) -> Path:
    """Write bench/results/<name>.txt and .json (latest run) and a timestamped copy; a smoke
    run only bench/results/<name>-smoke.txt and .json (it never replaces real figures)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = {"benchmark": name, "time": stamp, "machine": machine(), "smoke": smoke, **data}
    targets = (
        [RESULTS / f"{name}-smoke"] if smoke else [RESULTS / name, RESULTS / f"{name}-{stamp}"]
    )
    for target in targets:
        target.with_suffix(".txt").write_text(text + "\n")
        target.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    return targets[0].with_suffix(".txt")


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
