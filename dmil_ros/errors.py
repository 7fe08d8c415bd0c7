"""Base error of the package; each subpackage derives its own in its ``errors.py``."""

from __future__ import annotations


class DmilError(Exception):
    """Base class of every error ``dmil_ros`` raises on purpose (bad input, bad files)."""


class ConfigError(DmilError, ValueError):
    """A configuration value or command-line argument is invalid."""
