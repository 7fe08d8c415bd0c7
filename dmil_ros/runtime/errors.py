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

"""Errors of the runtime: bad sensor messages, bad models, bad runtime configuration."""

from __future__ import annotations

from dmil_ros.errors import DmilError


class RuntimeDmilError(DmilError):
    """Base class of the runtime's deliberate errors."""


class DecodeError(RuntimeDmilError, ValueError):
    """A sensor message cannot be decoded.

    ``reason`` is a short stable key (``'encoding'``, ``'size'``, ``'fields'`` ...) under which the
    pipeline counts the message in its diagnostics; the text names the topic and the field.
    """

    def __init__(
        self, message: str, *, topic: str = '', field: str = '', reason: str = ''
    ) -> None:
        where = f'topic {topic!r}: ' if topic else ''
        super().__init__(f'{where}{message}')
        self.topic = topic
        self.field = field
        self.reason = reason or (field or 'invalid')


class ModelError(RuntimeDmilError):
    """An ONNX model is missing, unreadable or does not follow the model contract."""


class RuntimeConfigError(RuntimeDmilError, ValueError):
    """A runtime parameter (slop, queue size, thresholds, provider) is invalid."""
