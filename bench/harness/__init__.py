"""Shared plumbing of the benchmarks, one module per concern; this package re-exports it.

Everything runs on this machine over loopback: the dev-stack servers (``core.devstack``) on
free ports in a temp dir, gunicorn with the production ``gunicorn.conf.py`` (one gevent
worker), and load from ``wrk``. Every process started here is stopped by the context managers
(and at exit if the run is interrupted: ``core.devstack.process``).

- :mod:`.common`: paths, constants, ``say``
- :mod:`.host`: the machine and /proc readings
- :mod:`.servers`: the dev stack and gunicorn
- :mod:`.client`: HTTP from Python for setup
- :mod:`.wrk`: load from wrk
- :mod:`.report`: statistics, tables, saved results
- :mod:`.profile`: py-spy profiles
"""

from bench.harness.client import create_api_key, register_and_login, request
from bench.harness.common import (
    BENCH,
    HOST,
    NO_LIMITS,
    PASSWORD,
    PYTHON,
    RESULTS,
    ROOT,
    base_env,
    parse_args,
    say,
)
from bench.harness.host import (
    CLK_TCK,
    PAGE_SIZE,
    children,
    cpu_layout,
    cpu_seconds,
    free_port,
    load_average,
    machine,
    machine_line,
    pin,
    rss_bytes,
    tcp_counters,
)
from bench.harness.profile import profile_summary, profile_while, py_spy, sampling
from bench.harness.report import log_dir, percentile, save, table
from bench.harness.servers import Gunicorn, Stack, checkout
from bench.harness.wrk import WrkResult, ensure_wrk, run_wrk

__all__ = [
    "BENCH",
    "CLK_TCK",
    "HOST",
    "NO_LIMITS",
    "PAGE_SIZE",
    "PASSWORD",
    "PYTHON",
    "RESULTS",
    "ROOT",
    "Gunicorn",
    "Stack",
    "WrkResult",
    "base_env",
    "checkout",
    "children",
    "cpu_layout",
    "cpu_seconds",
    "create_api_key",
    "ensure_wrk",
    "free_port",
    "load_average",
    "log_dir",
    "machine",
    "machine_line",
    "parse_args",
    "percentile",
    "pin",
    "profile_summary",
    "profile_while",
    "py_spy",
    "register_and_login",
    "request",
    "rss_bytes",
    "run_wrk",
    "sampling",
    "save",
    "say",
    "table",
    "tcp_counters",
]
