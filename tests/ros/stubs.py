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

"""Stand-ins for rclpy message classes, for tests of the ROS adapters without ROS."""

from __future__ import annotations

import types
from typing import Any


class Msg:
    """A message stand-in: keyword fields become attributes."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


def message_module(*names: str) -> types.ModuleType:
    """A ``<pkg>.msg`` stand-in holding one :class:`Msg` subclass per name."""
    mod = types.ModuleType('msg')
    for n in names:
        setattr(mod, n, type(n, (Msg,), {}))
    return mod
