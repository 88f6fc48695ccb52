"""Secrets that development and tests generate instead of reading from the repository.

No secret value printed in this repository is ever accepted by a running app (issue 22):

- ``dev``: ``JWT_SECRET`` and ``ENCRYPTION_KEY``, when no source sets them, are generated on
  first use into ``$DEVDATA_DIR/dev-secrets.json`` (default ``.devdata/``, git-ignored, 0600)
  and read from there afterwards, so tokens and encrypted fields survive restarts. ``make run``
  writes the same file and serves it to the app through its Vault, so ``python app.py``,
  ``make run`` and the ``flask`` CLI agree.
- ``test``: random values for the process, unless set (the pytest plugin sets its own random
  values per test session, shared with the servers it starts).
- ``prod``: never generated; they are required (config/loader.py, ``production_problems``).

Values that *were* published here (the former development defaults and the test plugin's
former fixed values) are refused in every environment: :data:`PUBLISHED_SECRET_DIGESTS`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from pathlib import Path

from core.errors import ConfigurationError

#: The settings generated when no source sets them (outside prod).
GENERATED = ("JWT_SECRET", "ENCRYPTION_KEY")
FILE_NAME = "dev-secrets.json"

#: SHA-256 of every secret value this repository ever printed (the former defaults of
#: JWT_SECRET and ENCRYPTION_KEY, the test plugin's former fixed values): refused everywhere.
PUBLISHED_SECRET_DIGESTS = frozenset(
    {
        "4d87bd614d40ff7b8c06a317a1dc390b16a94e18bd7ec9b898125a2313568718",
        "e9331fed98d735e711f73a48dfbe20807eb7edcab10e1c113f7e883ef30c1910",
        "77aa3094b92a73f56c7eb959820d6eabc58ac216da9f5f02f072f820483c1cc6",
        "53cfe46107d8560d725821666376e5a435ae9a429a771c34f01a89b8d6e536e6",
    }
)

_lock = threading.Lock()
_for_this_process: dict[str, str] = {}


def is_published(value: str) -> bool:
    return hashlib.sha256(value.encode()).hexdigest() in PUBLISHED_SECRET_DIGESTS


def new_secret() -> str:
    """32 random bytes, URL-safe base64 (a valid ENCRYPTION_KEY and a strong JWT_SECRET)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def development_secrets(root: Path) -> dict[str, str]:
    """The :data:`GENERATED` secrets kept in ``root/dev-secrets.json``, made on first use."""
    path = root / FILE_NAME
    with _lock:
        stored: dict[str, str] = {}
        if path.exists():
            try:
                stored = json.loads(path.read_text())
            except ValueError:
                raise ConfigurationError(
                    [f"{path} is not valid JSON (delete it to get new development secrets)"]
                ) from None
        if all(isinstance(stored.get(name), str) and stored[name] for name in GENERATED):
            return {name: stored[name] for name in GENERATED}
        secrets = {name: stored.get(name) or new_secret() for name in GENERATED}
        root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(secrets, out, indent=2)
        os.replace(tmp, path)
        return secrets


def process_secrets() -> dict[str, str]:
    """The :data:`GENERATED` secrets of a ``test`` app that sets none: random, this process."""
    with _lock:
        for name in GENERATED:
            _for_this_process.setdefault(name, new_secret())
        return dict(_for_this_process)
