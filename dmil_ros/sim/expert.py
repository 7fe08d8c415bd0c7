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

"""The expert policy: the family rule's discrete action and the velocity command it publishes."""

from __future__ import annotations

import numpy as np

from dmil_ros.actions import ACTIONS

COMMANDS: dict[str, tuple[float, float]] = {
    'forward': (0.5, 0.0),
    'left': (0.2, 0.8),
    'right': (0.2, -0.8),
    'stop': (0.0, 0.0),
}
"""Nominal (linear x m/s, angular z rad/s) of each action; a real teleoperator's noise is added."""

COMMAND_NOISE = (0.02, 0.03)


def expert_command(action: int, rng: np.random.Generator) -> tuple[float, float]:
    """``/cmd_vel`` (linear x, angular z) for ``action``; stop is an exact zero command."""
    v, w = COMMANDS[ACTIONS[action]]
    if ACTIONS[action] == 'stop':
        return 0.0, 0.0
    nv, nw = rng.normal(0.0, 1.0, 2) * np.asarray(COMMAND_NOISE)
    return float(v + nv), float(w + nw)
