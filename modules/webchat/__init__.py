"""Webchat: a login form and a room chat in the browser, the framework seen from a client.

``GET /public/webchat/`` serves a plain HTML page with its script and style and the official
``socket.io-client`` browser bundle (``static/socket.io.min.js``, copied unchanged from the npm
package pinned in ``tests/clients/js``; no build step, no CDN). The page logs in over HTTP
(``/public/login``), connects a socket with the access token, creates or joins rooms, sends
messages, shows who is present, and logs out (the server then drops its socket). It follows
the reconnect recipe of docs/websockets.md: after a dropped connection it joins again with
``since`` and shows what it missed, once and in order; it refreshes its token in band on
``session_expiring``, reconnects after ``server_shutdown`` and answers ``session_ended``.
It talks to the ``rooms`` module's events over the socket (no Python dependency on it).

The routes send their own Content-Security-Policy (everything from this origin, nothing
inline); the rest of the app keeps the default. On outside ``prod``; in ``prod`` only with
``WEBCHAT_ENABLED=true``.
"""

from modules.webchat.module import WebchatModule, WebchatSettings

__all__ = ["WebchatModule", "WebchatSettings"]
