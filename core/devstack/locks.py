"""Hash-locked installs: `make lock` compiles the requirement files into lock files.

    requirements.txt      -> requirements.lock      (runtime: the image installs this)
    requirements-dev.txt  -> requirements-dev.lock  (runtime + dev tools: `make venv`, CI)

Both are universal (one lock for Python 3.11 to 3.13 and any platform, with environment
markers where an answer differs) and every pin carries `--hash=sha256:` lines for all of that
release's files on PyPI, so `pip install --require-hashes -r <lock>` installs the same bytes on
every machine. The runtime lock is resolved under the dev lock as a constraint, so the image
runs exactly the versions the tests ran.

Each lock starts with the digest of the requirement files it was made from; a test fails when a
requirement file changed and `make lock` was not run.

    python -m core.devstack.locks          # what `make lock` runs (needs uv, a dev tool)
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ("requirements.txt", "requirements-dev.txt")
# Compiled in this order: the runtime lock is constrained by the dev lock.
LOCKS = (
    ("requirements-dev.txt", "requirements-dev.lock"),
    ("requirements.txt", "requirements.lock"),
)
OLDEST_PYTHON = "3.11"
DIGEST_PREFIX = "# requirements digest: "


def inputs_digest(root: Path = ROOT) -> str:
    """sha256 over the requirement files, the value a current lock records."""
    digest = hashlib.sha256()
    for name in INPUTS:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return f"sha256:{digest.hexdigest()}"


def recorded_digest(lock: Path) -> str | None:
    for line in lock.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line.removeprefix(DIGEST_PREFIX).split()[0]
    return None


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, set[str]]:
    """name -> versions pinned with `==` in a requirement or lock file (markers may split)."""
    found: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            found.setdefault(normalize(match[1]), set()).add(match[2])
    return found


def _uv() -> str:
    candidate = Path(sys.executable).with_name("uv")
    return str(candidate) if candidate.exists() else "uv"


def compile_locks(root: Path = ROOT) -> None:
    digest = inputs_digest(root)
    for source, lock in LOCKS:
        command = [
            _uv(),
            "pip",
            "compile",
            source,
            "--output-file",
            lock,
            "--universal",
            "--python-version",
            OLDEST_PYTHON,
            "--generate-hashes",
            "--no-config",  # plain PyPI, whatever a uv.toml on this machine says
            "--native-tls",  # the system's CA store (proxies that re-sign HTTPS)
            "--quiet",
            "--custom-compile-command",
            "make lock",
        ]
        if lock != "requirements-dev.lock":
            command += ["--constraint", "requirements-dev.lock"]
        # uv keeps the versions an existing lock pins where the requirements still allow them:
        # adding a requirement does not upgrade everything else (delete the locks to do that).
        subprocess.run(command, cwd=root, check=True, env={**os.environ, "UV_NO_PROGRESS": "1"})
        text = (root / lock).read_text()
        (root / lock).write_text(f"{DIGEST_PREFIX}{digest} (checked by a test)\n{text}")
        print(f"locks: wrote {lock}", file=sys.stderr)


if __name__ == "__main__":
    try:
        compile_locks()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"locks: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
