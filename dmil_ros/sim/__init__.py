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

"""Camera + 3-D LiDAR indoor simulator that records rosbag2 with ground-truth interactions.

Quick use::

    from dmil_ros.sim import SimConfig, Simulator, record_bag

    sim = Simulator(SimConfig(frames=200, seed=1, mix={'S': 1.0}))
    for frame in sim.frames():          # camera image + synchronous LiDAR sweep
        frame.rgb, frame.lidar.points(), frame.action, frame.family
    record_bag(SimConfig(frames=600), 'bags/my_drive')   # mcap + ground_truth.json

Family rules and their ground-truth PID: :mod:`dmil_ros.sim.families`.
"""

from __future__ import annotations

from dmil_ros.sim.config import DEFAULT_MIX, SimConfig, normalise_mix, parse_mix
from dmil_ros.sim.errors import RecordError, SimConfigError, SimError
from dmil_ros.sim.families import (
    DESIGNS,
    FamilyDesign,
    family_pid,
    ground_truth_summary,
    pooled_joint,
)
from dmil_ros.sim.record import TOPICS, RecordResult, read_ground_truth, record_bag
from dmil_ros.sim.simulator import (
    CameraFrame,
    Frame,
    FrameTruth,
    LidarSweep,
    Segment,
    Simulator,
)

__all__ = [
    'DEFAULT_MIX',
    'DESIGNS',
    'TOPICS',
    'CameraFrame',
    'FamilyDesign',
    'Frame',
    'FrameTruth',
    'LidarSweep',
    'RecordError',
    'RecordResult',
    'Segment',
    'SimConfig',
    'SimConfigError',
    'SimError',
    'Simulator',
    'family_pid',
    'ground_truth_summary',
    'normalise_mix',
    'parse_mix',
    'pooled_joint',
    'read_ground_truth',
    'record_bag',
]
