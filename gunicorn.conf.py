"""gunicorn settings for production: ``gunicorn -c gunicorn.conf.py app:app``.

**One gevent worker per process** (the Socket.IO model): Socket.IO keeps a client's session
in the process that accepted it, so a second worker in the same container would break
polling clients; scale with pods (and Redis as the Socket.IO message queue). It also keeps
the metrics simple: one process, one registry, one scrape target. ``on_starting`` refuses
other worker counts and classes, and refuses gevent-websocket (with it installed the gevent
worker breaks websockets; simple-websocket serves them).

**Nothing of the app runs in the master.** No ``preload_app``: the worker monkey-patches
(gevent, in ``init_process``) and only then imports the app, so every socket, lock and thread
the app creates is cooperative. psycopg2 yields through psycogreen (``post_worker_init``).

Read from the environment only (the master loads no settings): ``HOST``, ``PORT``,
``SHUTDOWN_TIMEOUT``, ``LOG_LEVEL``. gunicorn's own ``GUNICORN_CMD_ARGS`` still works.
A missing ``APP_ENV`` is ``prod`` here: the worker loads ``app:app``, which defaults to it.

**SIGTERM** (Kubernetes sends it after the ``preStop`` pause):

1. the worker marks the app draining at once: ``/health/ready`` answers 503; the listener
   stays open, so requests still arriving are served;
2. in-flight requests finish (at most ``SHUTDOWN_TIMEOUT``);
3. the listener closes; connections still open (idle keep-alive connections of the ingress,
   Socket.IO) get :data:`LINGER` seconds, then are closed;
4. ``worker_exit``: ``app_manager.close()`` (``app.stopping``, managers in reverse order);
5. the process exits 0, within ``graceful_timeout`` = ``SHUTDOWN_TIMEOUT`` +
   :data:`SHUTDOWN_MARGIN`; Kubernetes' ``terminationGracePeriodSeconds`` must exceed the
   ``preStop`` pause plus that (checked by tests/production/test_kubernetes.py).

Logs: gunicorn's own messages and one access line per request (method, path without the
query string, status, duration, bytes, client address, request id, and the trace and span
ids when tracing is on), as JSON lines. In the worker they go through the framework's
formatter (``LOG_FORMAT``: JSON in prod), so secrets are redacted there as well.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
import math
import os
import signal
import sys
import time
from typing import Any

from gunicorn import glogging


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


HOST = _env("HOST", "127.0.0.1")
PORT = int(_env("PORT", "5000"))
SHUTDOWN_TIMEOUT = float(_env("SHUTDOWN_TIMEOUT", "25"))
#: Seconds gunicorn gives on top of SHUTDOWN_TIMEOUT: open connections, closing the managers.
SHUTDOWN_MARGIN = 10
#: Seconds connections still open after the drain get before they are closed. Behind an
#: ingress there are always idle keep-alive connections; waiting for them would use up the
#: whole graceful_timeout on every shutdown.
LINGER = 2

# gevent keeps, for every greenlet it spawns, the stack that spawned it (a debugging aid):
# several greenlets live as long as each socket, so that is memory per socket (and CPU per
# spawn) that nothing here reads. An operator can still turn it on in the environment.
os.environ.setdefault("GEVENT_TRACK_GREENLET_TREE", "false")

#: The worker's garbage collector thresholds (``gc.set_threshold``), set once the app is
#: loaded, after the objects made at start-up are frozen out of every collection
#: (``gc.freeze``). Python's defaults (700, 10, 10) collect the young objects every 700 net
#: allocations and the whole heap whenever it grew by a quarter: a worker taking sockets on
#: spends its time scanning the sockets it holds, over and over (measured in a reconnect
#: storm of 3,000: 2.5 of the worker's 9 CPU seconds in the collector, 8 full collections;
#: docs/performance.md, "A connect's cost, third round"). With 20,000 the young generation
#: is collected 30 times less often, and a full collection waits for 20,000 x 10 x 10 net
#: allocations (and still for the heap to grow by a quarter). What it costs: garbage in
#: reference cycles (not the usual kind: reference counting frees the rest at once) lives
#: longer, at most 20,000 young objects before they are looked at.
GC_THRESHOLDS = (20_000, 10, 10)

wsgi_app = "app:app"
bind = [f"[{HOST}]:{PORT}" if ":" in HOST else f"{HOST}:{PORT}"]
worker_class = "gevent"
workers = 1
# What one worker holds, measured (bench/socket_capacity.py, docs/performance.md "Socket
# capacity"): 5,000 sockets reconnecting at the same moment are all admitted within the 30 s
# of issue 24 with no refusal and leave no presence behind; 10,000 at once are all admitted
# too, but in about 43 s on the benchmark's shared core. Idle, a worker holds 10,000 at about
# 65 KB each, but a pod that cannot take its own sockets back in time after another pod dies
# is over-full. Plus SOCKETIO_CONNECTION_RESERVE (100) for HTTP requests and the probes; the
# pod's memory limit follows (k8s/base/deployment.yaml). Change them together.
worker_connections = 5100
preload_app = False
graceful_timeout = math.ceil(SHUTDOWN_TIMEOUT) + SHUTDOWN_MARGIN
# A worker that stops answering the arbiter (a greenlet hogging the CPU) is restarted.
timeout = 30
# Longer than the NGINX ingress' upstream keep-alive (60 s), so nginx never reuses a
# connection gunicorn is closing.
keepalive = 75
# gunicorn >= 25 opens a control socket under $HOME or $XDG_RUNTIME_DIR: nothing to write there
# on a read-only root filesystem, and nothing we use.
control_socket_disable = True
# The heartbeat file: tmpfs, so the read-only root filesystem is never touched.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs on purpose
# Proxy headers are trusted by the app alone (TRUSTED_PROXIES, ProxyFix), never by gunicorn.
forwarded_allow_ips = ""
proc_name = "python-base-04"
accesslog = "-"
errorlog = "-"
loglevel = _env("LOG_LEVEL", "info").lower()


class _JsonLines(logging.Formatter):
    """The master's log lines as JSON. The master must not import the app, so it cannot use
    :class:`core.log.JsonFormatter`; the worker switches to that one (with redaction)."""

    _RESERVED = frozenset(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in self._RESERVED)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _not_a_closed_idle_connection(record: logging.LogRecord) -> bool:
    """Drop gunicorn's "Error handling request" for connections it closes at shutdown.

    After the drain gunicorn kills the greenlets of connections still open (mostly idle
    keep-alive connections waiting for a next request) and logs each as an error with a
    ``GreenletExit`` traceback; that is the expected end of a connection, not an error.
    """
    exc_type = record.exc_info[0] if record.exc_info else None
    return exc_type is None or exc_type.__name__ != "GreenletExit"


class JsonLogger(glogging.Logger):
    """gunicorn's error and access logs as one JSON object per line."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.use_formatter(_JsonLines())
        self.error_log.addFilter(_not_a_closed_idle_connection)

    def use_formatter(self, formatter: logging.Formatter) -> None:
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)
        # With the framework's formatter (in the worker), the access line skips the
        # LogRecord and logging's dispatch: the same line, redacted by the same rules.
        self._access_line: Any = None
        if hasattr(formatter, "line"):
            from core.log import line_writer

            self._access_line = line_writer(self.access_log)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("PATH_INFO", "")
        request_id = trace = None
        for name, value in getattr(resp, "headers", None) or ():
            lowered = name.lower()
            if lowered == "x-request-id":
                request_id = value
            elif lowered == "traceresponse":  # tracing on: the request's trace
                trace = value.split("-")  # 00-trace-span-flags
        fields = {
            "method": method,
            "path": path,
            "status": int(status) if str(status).isdigit() else status,
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "bytes": getattr(resp, "sent", None),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
            "protocol": environ.get("SERVER_PROTOCOL"),
        }
        if trace is not None and len(trace) == 4:
            fields["trace_id"], fields["span_id"] = trace[1], trace[2]
        message = f"{method} {path} {status}"
        if self._access_line is not None:
            self._access_line(logging.INFO, message, fields, request_id)
        else:
            self.access_log.info(message, extra={**fields, "request_id": request_id})


logger_class = JsonLogger


# -- hooks ------------------------------------------------------------------------------------


def on_starting(server: Any) -> None:
    """Refuse set-ups that break Socket.IO or the per-process metrics."""
    problems = []
    if server.cfg.workers != 1:
        problems.append(f"workers must be 1 (got {server.cfg.workers}): scale with processes/pods")
    if server.cfg.worker_class_str not in ("gevent", "gunicorn.workers.ggevent.GeventWorker"):
        problems.append(f"worker class must be gevent (got {server.cfg.worker_class_str})")
    if importlib.util.find_spec("geventwebsocket") is not None:
        problems.append("gevent-websocket is installed: uninstall it (it breaks websockets)")
    if problems:
        # gunicorn prints a RuntimeError as one "Error: ..." line and exits 1.
        raise RuntimeError("refusing to start: " + "; ".join(problems))


def post_fork(server: Any, worker: Any) -> None:
    """In the worker, before it loads the app: a start-up refusal (a missing setting, a store
    or Vault refusing) is one log line, and the arbiter stops instead of booting it again."""
    load = worker.load_wsgi

    def load_wsgi() -> None:
        try:
            load()
        except Exception as exc:
            from core.errors import ConfigurationError, StartupError

            if not isinstance(exc, ConfigurationError | StartupError):
                raise
            worker.log.error("cannot start: %s", exc)
            sys.exit(server.WORKER_BOOT_ERROR)  # "Worker failed to boot": the master halts

    worker.load_wsgi = load_wsgi


def post_worker_init(worker: Any) -> None:
    """In the worker, after monkey-patching and loading the app."""
    from core.managers.database.postgres import enable_gevent_support

    enable_gevent_support()
    collect_less()
    app_manager = _app_manager(worker)
    if app_manager is None:
        worker.log.warning("the WSGI app has no AppManager: no graceful drain")
        return
    _redacting_logs(worker)
    _drain_on_sigterm(worker, app_manager)
    # The hard cap on connections (sockets and HTTP) this worker holds: the
    # SocketsNearCapacity alert compares socketio_connections with it. Engine.IO connections
    # stop SOCKETIO_CONNECTION_RESERVE short of it, so HTTP requests and probes always fit.
    app_manager.metrics.socket_capacity(worker.cfg.worker_connections)
    app_manager.websocket.limit_connections(worker.cfg.worker_connections)


def collect_less() -> None:
    """The worker's garbage collector: what start-up made is frozen (never scanned again, never
    freed: modules, classes, the app), then :data:`GC_THRESHOLDS`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def worker_int(worker: Any) -> None:
    """SIGINT/SIGQUIT: the quick shutdown; readiness turns 503 until the process is gone."""
    app_manager = _app_manager(worker)
    if app_manager is not None:
        app_manager.lifecycle.draining.set()


def worker_exit(server: Any, worker: Any) -> None:
    """Close the managers as the worker leaves (also after a quick shutdown)."""
    if worker.pid != os.getpid():
        return  # gunicorn also calls this in the master for a worker that vanished
    app_manager = _app_manager(worker)
    if app_manager is not None:
        app_manager.close()


def _app_manager(worker: Any) -> Any:
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", None) or {}
    return extensions.get("app_manager")


def _redacting_logs(worker: Any) -> None:
    """gunicorn's records in the worker get the app's formatter: its format, its redaction."""
    framework = [h for h in logging.getLogger().handlers if h.get_name() == "python-base-04"]
    if framework and framework[0].formatter is not None and isinstance(worker.log, JsonLogger):
        worker.log.use_formatter(framework[0].formatter)


def _drain_on_sigterm(worker: Any, app_manager: Any) -> None:
    """Replace gunicorn's SIGTERM handler (which stops accepting at once) with a drain."""
    import gevent

    # SHUTDOWN_TIMEOUT may also come from Vault or a secret file; gunicorn's limit wins.
    drain_timeout = min(
        app_manager.settings.shutdown_timeout, worker.cfg.graceful_timeout - SHUTDOWN_MARGIN
    )
    log = logging.getLogger("gunicorn.conf")

    def drain_then_stop() -> None:
        app_manager.lifecycle.draining.set()
        log.info("shutdown requested", extra={"signal": "SIGTERM", "pid": os.getpid()})
        app_manager.drain(max(drain_timeout, 0))
        # gunicorn's loop now stops listening and gives open connections this long.
        worker.cfg.set("graceful_timeout", LINGER)
        worker.alive = False

    requested: list[int] = []

    def handle_sigterm(signum: int, frame: Any) -> None:
        if not requested:
            requested.append(signum)
            # Blocking work cannot run in a signal handler; gunicorn's own gevent worker
            # spawns its quit handler the same way.
            gevent.spawn(drain_then_stop)

    signal.signal(signal.SIGTERM, handle_sigterm)
