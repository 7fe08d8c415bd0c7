"""Errors of the audit tool."""

from __future__ import annotations

from dmil_ros.errors import DmilError


class AuditError(DmilError):
    """An audit cannot run: bad arguments, unreadable model, no bag found."""


class AuditInputError(AuditError, ValueError):
    """Per-frame inputs handed to an audit stage are inconsistent (shapes, lengths, labels)."""
