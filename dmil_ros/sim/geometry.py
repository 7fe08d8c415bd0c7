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

"""Scene and drive geometry shared by the scene builder, the simulator and the config checks.

Metres in a scene's frame (x along the corridor towards the decision point, y to the left).
A ``(low, high)`` pair is the range a nuisance value is drawn from uniformly
(:func:`dmil_ros.sim.scene.build_scene`, :class:`dmil_ros.sim.simulator.Simulator`);
:mod:`dmil_ros.sim.design_limits` derives from the same numbers the sensor settings under
which every family's design holds, so a change here moves those limits with it.
"""

from __future__ import annotations

CEILING_M = 2.5

# every family except U_camera: corridor half width
HALF_WIDTH_M = (0.9, 1.3)
# R / U_lidar: a turn's end wall, with the side opening [x - BRANCH_MOUTH_M, x] before it
TURN_X_M = (2.6, 3.4)
BRANCH_MOUTH_M = 1.6
# R / U_lidar obstacle layout: the crate's front face, its share of the corridor's width,
# its height, and its least gap to a side wall
CRATE_X_M = (1.3, 1.7)
CRATE_SPAN_FRAC = (0.75, 0.95)
CRATE_HEIGHT_M = (0.7, 0.95)
CRATE_WALL_GAP_M = 0.02
# U_camera: glass pane, floor arrow (near end, length, width)
PANE_X_M = (1.4, 1.6)
ARROW_X0_M = (0.9, 1.1)
ARROW_LENGTH_M = 1.4
ARROW_WIDTH_M = (1.1, 1.3)
ARROW_SHAFT_FRAC = 0.18  # forward arrow: shaft half width / arrow width
ARROW_SIDE_SHAFT_FRAC = 0.22  # left / right arrow: shaft half length / arrow length
# S: dead end, side opening (start, width), service door recess (from the opening's start,
# depth), sign on the end wall (centre offset, half length, height)
DEAD_END_X_M = (3.0, 3.6)
OPENING_X0_M = (-1.1, -0.9)
OPENING_WIDTH_M = (1.1, 1.3)
DOOR_X_M = (0.05, 1.05)
DOOR_DEPTH_M = 0.15
SIGN_OFFSET_M = (-0.3, 0.3)
SIGN_HALF_LENGTH_M = 0.5
SIGN_Z_M = (0.7, 1.3)

# the drive: in a segment the robot creeps from x = -approach to 0, swaying sideways by up to
# SWAY_Y_M and in heading by up to SWAY_YAW_DEG; the camera sits CAMERA_FORWARD_M ahead of the
# robot origin, the LiDAR on it
APPROACH_M = (0.25, 0.4)
SWAY_Y_M = 0.06
SWAY_YAW_DEG = 2.5
CAMERA_FORWARD_M = 0.1
