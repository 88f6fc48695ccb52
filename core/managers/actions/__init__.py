"""The public names of the ActionManager; the code is in :mod:`.manager`."""

from core.managers.actions.audit import AuditRecord, Digest
from core.managers.actions.declaration import Action, ActionContext
from core.managers.actions.executor import AfterExecute, BeforeExecute, Execution
from core.managers.actions.loader import Problem
from core.managers.actions.manager import ActionManager

__all__ = [
    "Action",
    "ActionContext",
    "ActionManager",
    "AfterExecute",
    "AuditRecord",
    "BeforeExecute",
    "Digest",
    "Execution",
    "Problem",
]
