"""The webchat page and its assets, with their own Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path

from flask import send_from_directory
from flask.typing import ResponseReturnValue

from core.errors import NotFound
from core.http.pipeline import content_security_policy
from core.http.routes import Routes

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = frozenset({"chat.js", "chat.css", "favicon.svg", "socket.io.min.js"})
ASSET_TYPES = ("text/javascript", "application/javascript", "text/css", "image/svg+xml")
#: Scripts, styles, fetch and the socket from this origin only; nothing inline, no frames.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

bp = Routes("webchat", __name__)
content_security_policy(bp, CSP)


@bp.get("/public/webchat/", media_type="text/html")
def page() -> ResponseReturnValue:
    """The chat page."""
    return send_from_directory(STATIC, "index.html", max_age=0)


@bp.get("/public/webchat/<name>", media_type=ASSET_TYPES, errors={"NOT_FOUND": 404})
def asset(name: str) -> ResponseReturnValue:
    """The page's script, style and the socket.io-client bundle; nothing else."""
    if name not in ASSETS:
        raise NotFound("No such file.")
    return send_from_directory(STATIC, name, max_age=0)
