"""Errors raised by :mod:`dmil_ros.model`."""

from __future__ import annotations

from dmil_ros.errors import ConfigError, DmilError


class ModelError(DmilError):
    """A model cannot be built or a tensor does not match what the model expects."""


class ModelConfigError(ModelError, ConfigError):
    """A model configuration value is invalid."""
