"""The production image, built and smoke-tested on a machine with Docker or only podman.

    python -m core.devstack.image build                      # make image
    python -m core.devstack.image smoke [PACKAGE.MODULE:FUNCTION]   # make image-smoke

Docker when a Docker engine answers, else Debian's podman, set up the way that works on
machines without a registry or a Docker engine (INFRA.md):

- podman's config and storage live in a private folder (``IMAGE_STATE_DIR``, default
  ``.image/``): ``runc`` (crun refuses hybrid cgroups), ``cgroupfs``, file events, and default
  ulimits root can grant;
- no registry: unless ``PYTHON_IMAGE`` names one, the base is made from Debian bookworm
  packages with ``mmdebstrap`` and imported once (``localhost/python-base-04-base:bookworm``);
- the host's CA bundle is mounted read-only into the build (outbound HTTPS may be re-signed
  by a proxy only the host trusts); nothing of it stays in the image;
- ``--format docker`` keeps the HEALTHCHECK. ``PIP_INDEX_URL``/``PIP_CERT``, when set, are
  passed as build arguments (the builder stage only).

The smoke test builds the image, starts the dev stack's servers on free ports, runs the image
read-only as user 10001 with every capability dropped and no new privileges (what the
Kubernetes manifests demand), waits for readiness, checks that ``/docs`` is off in prod, runs
the project's exercise when one is named (``function(base_url)``, raising on failure: what a
client of this project's modules does first; ``make image-smoke`` names
``tests.production.image_smoke:exercise``), sends SIGTERM and expects exit 0 within the grace
period. It prints each step's seconds.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from core.devstack import free_port, wait_for
from core.devstack.stack import SERVER_NAMES, DevStack

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("IMAGE", "python-base-04:dev")
LOCAL_BASE = "localhost/python-base-04-base:bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: The Debian packages of the local base: what python:3.11-slim offers the app.
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates,passwd,netbase,tzdata"
#: SIGTERM to exit: gunicorn's graceful_timeout at the defaults (SHUTDOWN_TIMEOUT + 10).
STOP_SECONDS = 40
PODMAN_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def say(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)


class ImageError(RuntimeError):
    """A step failed; the message says which and why."""


class Engine:
    """``docker`` or ``podman`` with the environment it needs."""

    def __init__(self) -> None:
        self.env = dict(os.environ)
        self.state = Path(os.environ.get("IMAGE_STATE_DIR") or ROOT / ".image").absolute()
        docker = shutil.which("docker")
        if docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0:
            self.name, self.binary = "docker", docker
            return
        podman = shutil.which("podman")
        if podman is None:
            raise ImageError(
                "neither a Docker engine nor podman: apt-get install -y --no-install-recommends "
                "podman buildah mmdebstrap uidmap runc fuse-overlayfs"
            )
        self.name, self.binary = "podman", podman
        state = self.state
        state.mkdir(parents=True, exist_ok=True)
        (state / "containers.conf").write_text(PODMAN_CONF)
        (state / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\nrunroot = "{state}/run"\n'
            f'graphroot = "{state}/storage"\n'
        )
        self.env["CONTAINERS_CONF"] = str(state / "containers.conf")
        self.env["CONTAINERS_STORAGE_CONF"] = str(state / "storage.conf")

    def run(self, *args: str, check: bool = True, quiet: bool = False) -> str:
        result = subprocess.run(
            [self.binary, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if not quiet else subprocess.DEVNULL,
            text=True,
        )
        if check and result.returncode != 0:
            raise ImageError(f"{self.name} {' '.join(args[:2])} failed:\n{result.stdout[-3000:]}")
        return result.stdout

    def exists(self, image: str) -> bool:
        found = subprocess.run([self.binary, "image", "exists", image], env=self.env)
        return found.returncode == 0

    def local_base(self) -> str:
        """The base image made from Debian packages (no registry needed), built once."""
        if self.exists(LOCAL_BASE):
            return LOCAL_BASE
        mmdebstrap = shutil.which("mmdebstrap")
        if mmdebstrap is None:
            raise ImageError("mmdebstrap is missing: apt-get install -y mmdebstrap")
        say(f"making {LOCAL_BASE} from Debian bookworm packages (once; a few minutes)")
        with tempfile.TemporaryDirectory(dir=self.state) as tmp:
            rootfs = Path(tmp) / "rootfs.tar"
            sources = [
                str(path)
                for path in (Path("/etc/apt/sources.list.d/debian.sources"),)
                if path.exists()
            ]  # the host's mirror, when it has one
            result = subprocess.run(
                [
                    mmdebstrap,
                    "--quiet",
                    "--variant=minbase",
                    f"--include={BASE_PACKAGES}",
                    "bookworm",
                    str(rootfs),
                    *sources,
                ],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise ImageError(f"mmdebstrap failed:\n{result.stderr[-3000:]}")
            self.run("import", str(rootfs), LOCAL_BASE)
        return LOCAL_BASE


def build(engine: Engine) -> None:
    """Build ``IMAGE`` from the Dockerfile."""
    args = ["build", "-t", IMAGE, "--build-arg", f"REVISION={_revision()}"]
    base = os.environ.get("PYTHON_IMAGE") or (
        engine.local_base() if engine.name == "podman" else ""
    )
    if base:
        args += ["--build-arg", f"PYTHON_IMAGE={base}"]
    for name in ("PIP_INDEX_URL", "PIP_CERT", "DOCS"):
        if os.environ.get(f"IMAGE_{name}"):
            args += ["--build-arg", f"{name}={os.environ[f'IMAGE_{name}']}"]
    if engine.name == "podman":
        args += ["--format", "docker", "--network", "host"]
        if CA_BUNDLE.exists():
            args += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    engine.run(*args, str(ROOT))


def _revision() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


@contextmanager
def dev_stack() -> Iterator[dict[str, str]]:
    """The dev stack's servers on free ports in a temporary folder; their settings."""
    with tempfile.TemporaryDirectory(prefix="image-smoke-") as tmp:
        stack = DevStack(Path(tmp), {name: free_port() for name in SERVER_NAMES})
        try:
            yield stack.start()
        finally:
            stack.stop()


#: ``exercise(base_url)``: what a client of the project does first; raises on failure.
Exercise = Callable[[str], None]


def load_exercise(reference: str) -> Exercise:
    """``package.module:function`` -> the function."""
    module, _, name = reference.partition(":")
    found: Exercise = getattr(importlib.import_module(module), name)
    return found


def smoke(engine: Engine, exercise: Exercise | None = None) -> dict[str, float]:
    """Build, run against the dev stack, exercise, SIGTERM; each step's seconds."""
    times: dict[str, float] = {}
    started = time.monotonic()
    build(engine)
    times["build"] = time.monotonic() - started
    with dev_stack() as settings:
        port = free_port()
        name = f"python-base-04-smoke-{uuid.uuid4().hex[:8]}"
        env = {**settings, "APP_ENV": "prod", "PORT": str(port), "HOST": "127.0.0.1"}
        run = ["run", "--detach", "--name", name, "--network", "host", "--read-only"]
        run += ["--tmpfs", "/tmp", "--user", "10001:10001", "--cap-drop", "ALL"]  # noqa: S108
        run += ["--security-opt", "no-new-privileges"]
        for key, value in env.items():
            run += ["--env", f"{key}={value}"]
        began = time.monotonic()
        engine.run(*run, IMAGE)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(
                lambda: requests.get(f"{url}/health/ready", timeout=3).status_code == 200,
                60,
                "/health/ready",
            )
            times["ready"] = time.monotonic() - began
            docs = requests.get(f"{url}/docs", timeout=10)
            if docs.status_code != 404:
                raise ImageError(f"/docs answered {docs.status_code} in prod (expected 404)")
            if exercise is not None:
                exercise(url)
                times["exercise"] = time.monotonic() - began - times["ready"]
            stopping = time.monotonic()
            engine.run("kill", "--signal", "TERM", name)
            code = engine.run("wait", name).strip().splitlines()[-1]
            times["sigterm_to_exit"] = time.monotonic() - stopping
            if code != "0":
                raise ImageError(f"exit code {code} after SIGTERM:\n{engine.run('logs', name)}")
            if times["sigterm_to_exit"] > STOP_SECONDS:
                raise ImageError(f"took {times['sigterm_to_exit']:.1f}s to stop")
        except BaseException:
            say("container log:\n" + engine.run("logs", name, check=False)[-5000:])
            raise
        finally:
            engine.run("rm", "--force", name, check=False, quiet=True)
    times["total"] = time.monotonic() - started
    return times


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    command = args[:1]
    if command not in (["build"], ["smoke"]) or len(args) > (2 if command == ["smoke"] else 1):
        print(
            "usage: python -m core.devstack.image {build | smoke [PACKAGE.MODULE:FUNCTION]}",
            file=sys.stderr,
        )
        return 2
    try:
        engine = Engine()
        say(f"engine: {engine.name}")
        if command == ["build"]:
            started = time.monotonic()
            build(engine)
            say(f"built {IMAGE} in {time.monotonic() - started:.0f}s")
        else:
            times = smoke(engine, load_exercise(args[1]) if len(args) == 2 else None)
            figures = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in times.items())
            say(f"smoke passed ({engine.name}): {figures}")
    except (ImageError, TimeoutError) as exc:
        say(f"FAILED: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
