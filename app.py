"""Entry point: ``create_app()`` factory, the module-level ``app`` for gunicorn and the Flask
CLI, and ``python app.py`` for the development server.

``app`` is built on first access (PEP 562), so importing this module (``from app import
create_app`` in tests) builds nothing. When the Flask CLI loads it, the app is built without
the start-up work that needs the stores (pings, migrations, the socket sweep, ``app.started``),
so commands such as ``flask config show``, ``flask routes``, ``flask shell`` and the module
commands run even while a store is down. ``flask run`` is refused with one line: it would serve
that unstarted app; ``make run`` or ``python app.py`` serve a started one and stop it cleanly.
In development the CLI finds a running dev stack (``make run``, any ``DEV_*_PORT``) through the
settings it publishes in ``.devdata/stack.json`` (config/dev_stack.py), as the app gets them.

Outside the Flask CLI, ``app`` is what a production WSGI server (gunicorn, uWSGI, ...) loads:
there a missing ``APP_ENV`` means ``prod``, so a forgotten variable can never start a
reachable server on the development secrets published in this repository.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from flask import Flask
from flask.cli import run_command

from config.dev_stack import running_stack_settings
from core.factory import create_app

__all__ = ["app", "create_app"]  # noqa: F822 - `app` comes from __getattr__


_built: dict[str, Flask] = {}

FLASK_RUN_REFUSED = (
    "flask run would serve an app that was never started (no store checks, migrations or "
    "socket sweep): use `make run` (with the dev stack) or `python app.py`"
)


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(name)
    if "app" not in _built:
        context = click.get_current_context(silent=True)
        if context is not None and context.command is run_command:
            raise click.ClickException(FLASK_RUN_REFUSED)
        in_cli = context is not None
        environ = dict(os.environ)
        if not in_cli and not environ.get("APP_ENV", "").strip():
            environ["APP_ENV"] = "prod"
        if in_cli:  # the dev stack's settings win, as `make run` passes them to the app
            environ.update(running_stack_settings(environ))
        _built["app"] = create_app(environ, start=not in_cli)
    return _built["app"]


if __name__ == "__main__":
    from core.server import main

    sys.exit(main())
