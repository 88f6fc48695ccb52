"""The benchmarks' constants (paths, loopback host, limits out of the way), ``say`` and the
environment of the servers they start."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
