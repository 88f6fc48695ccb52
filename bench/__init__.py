"""Benchmarks and the soak test (``make bench``, ``make soak``); never part of ``make test``."""
