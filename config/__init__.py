"""Typed settings and the loader that resolves them from secret files, Vault, env and defaults."""

from config.loader import LoadedSettings, SettingsLoader
from config.settings import Settings

__all__ = ["LoadedSettings", "Settings", "SettingsLoader"]
