"""Errors raised by :mod:`dmil_ros.pid`."""

from __future__ import annotations

from dmil_ros.errors import DmilError


class PIDError(DmilError):
    """Base class of the errors of the PID estimators."""


class PIDInputError(PIDError, ValueError):
    """A distribution, feature array or estimator argument is invalid (the message names it)."""


class PIDSolverError(PIDError, RuntimeError):
    """The exact solver could not certify its result to the requested tolerance."""
