"""Instructions per request of the JWT route in-process, counted by callgrind: a figure the
machine's other work does not move, for changes too small for the served benchmark to see.

    .venv/bin/python -m bench.http_instructions [--before REF] [--requests 1000] [--runs 2]
        [--smoke]

The app is built as ``bench.http_overhead`` serves it (``APP_ENV=prod``, the benchmark
module, real MongoDB, PostgreSQL and Redis from ``core.devstack``) in a gevent-patched
process; four greenlets call its WSGI app with ``GET /userauth/bench/ping`` and one access
token, 400 times as a warm-up, then ``--requests`` times with callgrind's instrumentation
switched on for those only (``--instr-atstart=no``, ``callgrind_control -i on``). bare
Flask's ``GET /ping`` (``bench/bare_app.py``) runs the same way. gunicorn is not in it: the
count is Flask's and the framework's work only, so read it beside the served benchmark,
not instead of it. Runs alternate between the checkout and ``--before REF``.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

#: This checkout; the measured process imports the measured one's code first (``child``).
HERE = Path(__file__).resolve().parents[1]
WARM_UP = 400
GREENLETS = 4


def child(root: str, bare: bool, requests: int, flags: str) -> None:
    """In the measured process: build the app, warm it up, signal, run, signal."""
    from gevent import monkey

    monkey.patch_all()
    sys.path.insert(0, root)  # the measured checkout's code, not this one's
    os.chdir(root)
    import gevent
    from werkzeug.test import EnvironBuilder

    from bench.harness.common import PASSWORD

    headers = {}
    if bare:
        from bench.bare_app import app

        path = "/ping"
    else:
        from core.factory import create_app

        app = create_app()
        client = app.test_client()
        user = uuid.uuid4().hex[:10]
        email = f"instructions-{user}@example.com"
        body = {"email": email, "username": f"instructions_{user}", "password": PASSWORD}
        assert client.post("/public/register", json=body).status_code == 201
        login = client.post("/public/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
        path = "/userauth/bench/ping"
    environ = EnvironBuilder(
        path=path, headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    ).get_environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    def serve(count: int) -> None:
        for _ in range(count):
            request = {**environ, "wsgi.input": io.BytesIO(b"")}
            body = app(request, start_response)
            for _chunk in body:
                pass
            body.close()  # type: ignore[attr-defined]

    def run(total: int) -> None:
        gevent.joinall([gevent.spawn(serve, total // GREENLETS) for _ in range(GREENLETS)])

    run(WARM_UP)
    Path(flags, "ready").touch()
    while not Path(flags, "go").exists():
        time.sleep(0.05)
    run(requests)
    Path(flags, "done").touch()
    while not Path(flags, "exit").exists():
        time.sleep(0.05)
    os._exit(0)


def count(root: Path, bare: bool, requests: int, env: dict[str, str]) -> int:
    """Instructions of ``requests`` requests in a process serving ``root``'s code."""
    with tempfile.TemporaryDirectory(prefix="pb04-instructions-") as flags:
        out = Path(flags, "callgrind.out")
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(HERE / "bench" / "http_instructions.py"),
            "--child",
            str(root),
            "--bare" if bare else "--jwt",
            str(requests),
            flags,
        ]
        process = subprocess.Popen(
            command, cwd=root, env={**os.environ, **env}, stderr=subprocess.DEVNULL
        )
        try:
            for flag, then in (("ready", ["-i", "on"]), ("done", ["-i", "off"])):
                while not Path(flags, flag).exists():
                    if process.poll() is not None:
                        raise RuntimeError(f"the measured process ended ({process.returncode})")
                    time.sleep(0.2)
                subprocess.run(
                    ["callgrind_control", *then, str(process.pid)], check=True, capture_output=True
                )
                Path(flags, "go").touch()
            Path(flags, "exit").touch()
            process.wait(120)
        finally:
            if process.poll() is None:
                process.kill()
        totals = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
        if totals is None:
            raise RuntimeError("no totals in the callgrind output")
        return int(totals.group(1))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        root, kind, requests, flags = sys.argv[2:6]
        child(root, kind == "--bare", int(requests), flags)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="", metavar="REF", help="also count commit REF")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="40 requests, one run")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.runs = 40, 1
    from bench.harness.common import say
    from bench.harness.report import save
    from bench.harness.servers import Stack, checkout
    from bench.harness.wrk import ensure_tool

    ensure_tool("valgrind")  # callgrind_control comes with it
    rows: dict[str, list[int]] = {}
    with Stack() as stack, checkout(args.before) as before:
        env = stack.app_env()
        roots = [("(c)", HERE, False)]
        if args.before:
            roots.append((f"(c@{args.before})", before, False))
        for _ in range(args.runs):
            for name, root, bare in [("(a) bare Flask", HERE, True), *roots]:
                say(f"{name}: {args.requests} requests under callgrind")
                rows.setdefault(name, []).append(count(root, bare, args.requests, env))
    lines = [
        f"{name}: {', '.join(f'{t / args.requests / 1000:,.0f} K' for t in totals)}"
        " instructions per request"
        for name, totals in rows.items()
    ]
    text = "\n".join(lines)
    print(text)
    data = {
        "per_request": {name: [t / args.requests for t in totals] for name, totals in rows.items()}
    }
    say(f"results in {save('http_instructions', text, data, args.smoke)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
