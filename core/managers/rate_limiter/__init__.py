"""The public names of the RateLimiter; the code is in :mod:`.manager`."""

from core.managers.rate_limiter.manager import (
    LEVELS,
    Bucket,
    Quota,
    RateLimiter,
    Revocation,
    caller_level,
)

__all__ = [
    "LEVELS",
    "Bucket",
    "Quota",
    "RateLimiter",
    "Revocation",
    "caller_level",
]
