# Copyright 2026 The dmil_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

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
