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

"""Simulator messages carry the simulator's values field by field (found by mutation testing).

Each message goes through CDR and back (the typestore the bags are written with) and is
compared with the simulator record it was made from.
"""

from __future__ import annotations

from typing import Any

import pytest

from dmil_ros.bagio import typestore
from dmil_ros.sim import SimConfig, Simulator
from dmil_ros.sim import messages as m
from dmil_ros.sim.geometry import CAMERA_FORWARD_M


def _round_trip(msg: Any, msgtype: str) -> Any:
    store = typestore()
    return store.deserialize_cdr(store.serialize_cdr(msg, msgtype), msgtype)


def test_ground_truth_message_holds_every_field_of_the_frame_truth() -> None:
    sim = Simulator(SimConfig(frames=40, seed=2, segment_frames=(10, 20)))
    for truth in sim.truths()[::7]:
        gt = _round_trip(m.ground_truth_msg(truth), 'dmil_ros/msg/GroundTruth')
        stamp = gt.header.stamp.sec * 1_000_000_000 + gt.header.stamp.nanosec
        assert stamp == truth.stamp_ns
        assert gt.header.frame_id == m.CAMERA_FRAME
        for name in ('family', 'action', 'segment', 'frame', 'camera_latent', 'lidar_latent',
                     'camera_cue', 'lidar_cue'):  # fmt: skip
            assert getattr(gt, name) == getattr(truth, name), name
        for name in ('corridor_half_width', 'decision_distance', 'light_level'):
            assert getattr(gt, name) == pytest.approx(getattr(truth, name)), name
        x, y, yaw = truth.pose
        assert (gt.robot_x, gt.robot_y, gt.robot_yaw) == pytest.approx((x, y, yaw))
        assert y != pytest.approx(x)  # the sway makes the two distinguishable
        assert (gt.cmd_linear_x, gt.cmd_angular_z) == pytest.approx(truth.cmd)


def test_tf_static_places_each_sensor_at_its_configured_mounting() -> None:
    cfg = SimConfig(frames=10, lidar_height_m=0.3, camera_height_m=0.7)
    tf = _round_trip(m.tf_static_msg(cfg.start_time_ns, cfg), 'tf2_msgs/msg/TFMessage')
    by_child = {t.child_frame_id: t for t in tf.transforms}
    lidar = by_child[m.LIDAR_FRAME]
    assert lidar.header.frame_id == m.BASE_FRAME
    v = lidar.transform.translation
    assert (v.x, v.y, v.z) == pytest.approx((0.0, 0.0, 0.3))
    camera = by_child['camera_link']
    assert camera.header.frame_id == m.BASE_FRAME
    v = camera.transform.translation
    assert (v.x, v.y, v.z) == pytest.approx((CAMERA_FORWARD_M, 0.0, 0.7))
    # camera_link (x forward, y left, z up) -> optical (z forward, x right, y down): the
    # rotation maps optical z to camera_link x and optical x to camera_link -y
    q = by_child[m.CAMERA_FRAME].transform.rotation
    rot = _matrix(q.x, q.y, q.z, q.w)
    assert [row[2] for row in rot] == pytest.approx([1.0, 0.0, 0.0])
    assert [row[0] for row in rot] == pytest.approx([0.0, -1.0, 0.0])


def _matrix(x: float, y: float, z: float, w: float) -> list[list[float]]:
    """Rotation matrix of a unit quaternion (columns: the child's axes in the parent)."""
    return [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
