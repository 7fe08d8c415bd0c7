"""What a bag read yields: raw messages, problems found, and the error for a non-bag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dmil_ros.errors import DmilError


class BagReadError(DmilError):
    """The path is not a bag at all (nothing could be read from it)."""


@dataclass(frozen=True)
class RawMessage:
    """One message as stored: CDR bytes, not yet deserialized."""

    topic: str
    msgtype: str
    timestamp: int  # log time, ns
    data: bytes


@dataclass(frozen=True)
class ReadIssue:
    """Something in the bag that could not be read."""

    file: str
    offset: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {'file': self.file, 'offset': self.offset, 'message': self.message}


__all__ = ['BagReadError', 'RawMessage', 'ReadIssue']
