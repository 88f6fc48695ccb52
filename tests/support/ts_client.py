"""The typed TypeScript client: generated from ``/openapi.json`` and compiled, for
``make client`` and tests/clients/test_ts_client.py.

``tests/clients/ts`` pins the generator (openapi-typescript), the runtime (openapi-fetch) and
TypeScript in its package-lock.json. :func:`generate` writes the document to
``generated/openapi.json`` and its types to ``generated/schema.d.ts`` (both git-ignored);
:func:`compile_program` runs ``tsc`` (strict) on ``src/journey.ts``, a client's walk through
the API written against those types, so a schema a client cannot use fails the build.

    python -m tests.support.ts_client [BASE_URL]   # make client: the document of BASE_URL,
                                                   # else of this project's app, built here
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.testing import manager_of
from tests.support import js_client

TS_DIR = Path(__file__).resolve().parents[1] / "clients" / "ts"
GENERATED = TS_DIR / "generated"
PROGRAM = TS_DIR / "build" / "src" / "journey.js"


def _node(node: Path, *args: str) -> str:
    done = subprocess.run(
        [str(node), *args], cwd=TS_DIR, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def generate(document: dict[str, Any]) -> Path:
    """``generated/schema.d.ts`` from an OpenAPI document (``npm ci`` first when needed)."""
    node = js_client.install(TS_DIR)
    GENERATED.mkdir(exist_ok=True)
    source = GENERATED / "openapi.json"
    source.write_text(json.dumps(document, indent=1), encoding="utf-8")
    target = GENERATED / "schema.d.ts"
    cli = "node_modules/openapi-typescript/bin/cli.js"
    # A property with a default is optional in a request (login's device_token); the
    # generator's default would make it required, as if every schema described an answer.
    source_file, target_file = str(source.relative_to(TS_DIR)), str(target.relative_to(TS_DIR))
    _node(node, cli, source_file, "-o", target_file, "--default-non-nullable=false")
    return target


def compile_program() -> Path:
    """``tsc -p tests/clients/ts``: the journey against the generated types; its .js file."""
    node = js_client.install(TS_DIR)
    _node(node, "node_modules/typescript/bin/tsc", "-p", ".")
    return PROGRAM


def run_program(base_url: str) -> dict[str, Any]:
    """Run the compiled journey against a served app: what it saw."""
    node = js_client.install(TS_DIR)
    seen: dict[str, Any] = json.loads(_node(node, str(PROGRAM), base_url).splitlines()[-1])
    return seen


def _document(base_url: str | None) -> dict[str, Any]:
    if base_url:
        import requests

        answer = requests.get(base_url.rstrip("/") + "/openapi.json", timeout=10)
        answer.raise_for_status()
        fetched: dict[str, Any] = answer.json()
        return fetched
    from core.factory import create_app

    app = create_app(start=False)  # no store is needed to describe the API
    with app.app_context():
        built: dict[str, Any] = manager_of(app).openapi.document()
    return built


def main(argv: list[str]) -> int:
    schema = generate(_document(argv[0] if argv else None))
    compile_program()
    shown = schema.relative_to(Path.cwd()) if schema.is_relative_to(Path.cwd()) else schema
    print(f"wrote {shown}")
    print("compiled tests/clients/ts/src/journey.ts against it (tsc, strict)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
