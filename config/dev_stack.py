"""The settings a running dev stack publishes, so that a ``flask`` command finds it.

``make run`` (``python -m core.devstack run``) hands the app the stack's settings
(``MONGODB_URI``, ``POSTGRES_DSN``, ``REDIS_URL``, ``VAULT_*``) in its environment, whatever
``DEV_*_PORT`` chose. A ``flask`` command typed in another terminal has no such environment,
so while it runs the stack also writes them to ``<DEVDATA_DIR>/stack.json`` (0600: it holds
the dev Vault's AppRole secret id) with its process id, and removes the file when it stops.
The Flask CLI reads them over its environment in development, the way ``make run`` passes them
to the app (the stack's values win). A file left by a stack that was killed is ignored: its
process is gone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

#: Where the dev stack keeps its data when ``DEVDATA_DIR`` is not set (relative to the
#: current folder, like ``make run``).
DEFAULT_DEVDATA_DIR = ".devdata"
STACK_FILE = "stack.json"


def stack_file(environ: Mapping[str, str]) -> Path:
    """The file a running dev stack publishes its settings in."""
    return Path(environ.get("DEVDATA_DIR") or DEFAULT_DEVDATA_DIR) / STACK_FILE


def running_stack_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings of the dev stack running for this folder; ``{}`` when none runs or
    ``APP_ENV`` is not ``dev`` (``test`` and ``prod`` never read it)."""
    if (environ.get("APP_ENV") or "dev").strip() != "dev":
        return {}
    try:
        published = json.loads(stack_file(environ).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(published, dict):
        return {}
    pid, settings = published.get("pid"), published.get("settings")
    if not isinstance(pid, int) or not isinstance(settings, dict) or not _alive(pid):
        return {}
    return {str(name): str(value) for name, value in settings.items()}


def _alive(pid: int) -> bool:
    if pid <= 0:  # 0 and -1 would ask about process groups
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
