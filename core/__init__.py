"""The framework: AppManager, managers, BaseModule, HTTP layer, errors, logging and CLI.

Import what you need from its module (``from core.module import BaseModule``); this package
imports nothing on its own so that ``config`` can depend on ``core.errors`` without a cycle.
"""
