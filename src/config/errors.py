"""The config error, in a module of its own so every part of ``src.config`` can import it
without importing the package (no import cycle)."""
from __future__ import annotations

from ..errors import UserError


class ConfigError(UserError, ValueError):
    """A config file or override that does not fit the schema (one-line message)."""
