"""Errors raised by :mod:`dmil_ros.train`."""

from __future__ import annotations

from dmil_ros.errors import ConfigError, DmilError


class TrainError(DmilError):
    """Training, evaluation or export cannot proceed (bad data, bad files)."""


class TrainConfigError(TrainError, ConfigError):
    """A training configuration value is invalid."""


class DataError(TrainError):
    """A bag yields no usable training pairs, or a cache file is damaged."""


class CheckpointError(TrainError):
    """A checkpoint is missing, damaged or does not match its configuration."""


class ExportError(TrainError):
    """An ONNX export failed its checks."""
