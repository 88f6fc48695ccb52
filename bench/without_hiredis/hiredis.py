"""Hides the installed hiredis: with this directory first on PYTHONPATH, redis-py falls back
to its pure-Python RESP parser and serializer. ``bench.http_overhead`` serves case (c-py)
this way, next to (c) with hiredis, to measure what the compiled parser buys in one run."""

raise ImportError("hiredis hidden by bench/without_hiredis")
