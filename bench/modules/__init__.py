"""Bench-only feature modules, loaded with ``MODULES_PACKAGES=modules,bench.modules``."""
