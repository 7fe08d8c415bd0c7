"""Errors the simulator raises on purpose (bad configuration, bad output path)."""

from __future__ import annotations

from dmil_ros.errors import ConfigError, DmilError


class SimError(DmilError):
    """Base class of the simulator's errors."""


class SimConfigError(SimError, ConfigError):
    """A simulator setting (``--mix``, ``--frames``, a size, a rate) is invalid."""


class RecordError(SimError):
    """A bag could not be written (output exists, unknown storage plugin)."""
