"""The public names of the StateManager; the code is in :mod:`.manager`."""

from core.managers.state.manager import ChangeCallback, StateManager
from core.managers.state.store import COLLECTION, Machine, StateValue

__all__ = [
    "COLLECTION",
    "ChangeCallback",
    "Machine",
    "StateManager",
    "StateValue",
]
