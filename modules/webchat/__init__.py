"""Webchat: a login form and a room chat in the browser, the framework seen from a client.

``GET /public/webchat/`` serves a plain HTML page with its script and style and the official
``socket.io-client`` browser bundle (``static/socket.io.min.js``, copied unchanged from the npm
package pinned in ``tests/clients/js``; no build step, no CDN). The page logs in over HTTP
(``/public/login``), connects a socket with the access token, creates or joins rooms, sends
messages, shows who is present, refreshes and reconnects when its token expires, and logs
out (the server then drops its socket).

The routes send their own Content-Security-Policy (everything from this origin, nothing
inline); the rest of the app keeps the default. On outside ``prod``; in ``prod`` only with
``WEBCHAT_ENABLED=true``.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, send_from_directory
from flask.typing import ResponseReturnValue

from config.modules import ModuleSettings
from core.errors import NotFound
from core.http.auth import PUBLIC, declare_auth
from core.http.pipeline import content_security_policy
from core.http.typed import typed
from core.module import BaseModule

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = frozenset({"chat.js", "chat.css", "favicon.svg", "socket.io.min.js"})
ASSET_TYPES = ("text/javascript", "application/javascript", "text/css", "image/svg+xml")
#: Scripts, styles, fetch and the socket from this origin only; nothing inline, no frames.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

bp = Blueprint("webchat", __name__)


class WebchatSettings(ModuleSettings):
    #: Serve the page (None: on outside prod, off in prod).
    enabled: bool | None = None


content_security_policy(bp, CSP)


@bp.get("/public/webchat/")
@declare_auth(PUBLIC)
@typed(media_type="text/html")
def page() -> ResponseReturnValue:
    """The chat page."""
    return send_from_directory(STATIC, "index.html", max_age=0)


@bp.get("/public/webchat/<name>")
@declare_auth(PUBLIC)
@typed(media_type=ASSET_TYPES, errors={404: ["NOT_FOUND"]})
def asset(name: str) -> ResponseReturnValue:
    """The page's script, style and the socket.io-client bundle; nothing else."""
    if name not in ASSETS:
        raise NotFound("No such file.")
    return send_from_directory(STATIC, name, max_age=0)


class WebchatModule(BaseModule):
    settings_model = WebchatSettings

    def register_routes(self, app: Flask) -> None:
        enabled = self.app_manager.settings_of(WebchatSettings).enabled
        if enabled if enabled is not None else not self.app_manager.settings.is_prod:
            app.register_blueprint(bp)
