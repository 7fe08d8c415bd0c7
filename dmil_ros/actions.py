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

"""The robot's discrete actions, shared by the simulator, the trainer, the models and the node."""

from __future__ import annotations

from typing import Final

ACTIONS: Final[tuple[str, ...]] = ('forward', 'left', 'right', 'stop')
"""Action labels in class-index order; models and bags use these indices and names."""

ACTION_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(ACTIONS)}

COMPONENTS: Final[tuple[str, ...]] = ('redundancy', 'unique_camera', 'unique_lidar', 'synergy')
"""The four DMIL components / PID atoms, in the order gates and estimates are published."""

FAMILIES: Final[tuple[str, ...]] = ('R', 'U_camera', 'U_lidar', 'S')
"""Simulator scene families, each designed to hold mostly one interaction (same order)."""
