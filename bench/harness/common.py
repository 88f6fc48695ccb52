"""The benchmarks' constants (paths, loopback host, limits out of the way), ``say`` and the
environment of the servers they start."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PYTHON = sys.executable
HOST = "127.0.0.1"
PASSWORD = "bench-password-0123456789"

#: Limits far above anything a benchmark sends (two windows per level, like the defaults),
#: so every level is counted in the round trip but nothing is ever refused.
NO_LIMITS = "1000000/second;60000000/minute"


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def base_env(extra: dict[str, str]) -> dict[str, str]:
    """os.environ without the app's own settings (a stray export must not leak in)."""
    from config.settings import Settings

    names = set(Settings.env_names())
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env


def parse_args(
    parser: argparse.ArgumentParser, argv: list[str] | None, smoke: dict[str, Any]
) -> argparse.Namespace:
    """The benchmark's options, with ``--smoke``: every step for a few seconds with the
    ``smoke`` values as defaults (options given explicitly still win). A smoke run checks
    that the benchmark still runs end to end (CI: ``make bench-smoke``); its figures mean
    nothing and no goal is judged, only errors fail it."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds per step to check the benchmark runs; figures not judged",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**smoke)
        args = parser.parse_args(argv)
    return args
