"""A trace collector that only accepts: ``POST /v1/traces`` answered 200 and dropped.

What the tracing-on case of :mod:`bench.http_overhead` exports to, so that the figure is the
framework's cost of tracing (spans, batching, the OTLP/HTTP export), not a collector's.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.devstack import free_port


class OtlpSink:
    def __init__(self) -> None:
        self.exports = 0

        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.exports += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
