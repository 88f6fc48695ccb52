"""Limit strings: ``"20/second;600/minute"`` -> ``[Limit(20, 1000), Limit(600, 60000)]``.

Accepted units: second, minute, hour, day (singular or plural), optionally with a count
(``"100/5 minutes"``). An empty string means "no limit at this level".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS_MS = {"second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
_PART = re.compile(r"\s*(\d+)\s*/\s*(\d+)?\s*(second|minute|hour|day)s?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Limit:
    count: int
    period_ms: int

    def __str__(self) -> str:
        return f"{self.count}/{self.period_ms}ms"


def parse_limits(text: str) -> tuple[Limit, ...]:
    """Parse a limit string; ValueError names the part that is wrong."""
    limits = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        match = _PART.fullmatch(part)
        if not match:
            raise ValueError(f"{part!r} is not a limit like '20/second' or '100/5 minutes'")
        count, multiple, unit = int(match[1]), int(match[2] or 1), match[3].lower()
        if count < 1 or multiple < 1:
            raise ValueError(f"{part!r}: counts must be positive")
        limits.append(Limit(count, multiple * _UNITS_MS[unit]))
    return tuple(limits)
