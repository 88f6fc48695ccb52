"""The public names of the MetricsManager; the code is in :mod:`.manager`."""

from core.managers.metrics.manager import (
    MAX_LABEL_VALUES,
    OTHER,
    UNMATCHED,
    MetricsManager,
)

__all__ = [
    "MAX_LABEL_VALUES",
    "OTHER",
    "UNMATCHED",
    "MetricsManager",
]
