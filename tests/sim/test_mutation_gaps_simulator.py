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

"""Simulator plan and stamp behaviour no other test pinned down (found by mutation testing).

Segments' nominal time spans tile the drive and hold the instants they are queried for; stamp
jitter is clipped at 3 std on both sensors; the robot creeps towards the decision point.
"""

from __future__ import annotations

import numpy as np
import pytest

from dmil_ros.sim import LidarSweep, SimConfig, Simulator

# a LiDAR rate that puts sweeps in every part of a camera period (10 Hz sweeps all fall
# 0.26 periods after a frame's nominal instant)
CFG = SimConfig(frames=300, seed=11, segment_frames=(5, 15), lidar_rate_hz=7.0)


def test_nominal_spans_tile_the_drive_and_hold_every_sweep_and_frame() -> None:
    sim = Simulator(CFG)
    dt = 1.0 / CFG.camera_rate_hz
    for a, b in zip(sim.segments, sim.segments[1:], strict=False):
        assert a.t1 == pytest.approx(b.t0)  # no gap, no overlap
    for seg in sim.segments:
        for k in range(seg.first, seg.stop):
            assert seg.t0 < k * dt < seg.t1  # a frame's nominal time lies inside its span
    for t in sim.lidar_nominal:  # the sweep is rendered in the segment whose span holds t
        seg = sim.segment_at(float(t))
        assert seg.t0 <= t < seg.t1


@pytest.mark.parametrize('seed', [0, 1])
def test_stamp_jitter_is_clipped_at_three_std(seed: int) -> None:
    cfg = SimConfig(frames=3000, seed=seed)
    sim = Simulator(cfg)
    sigma = cfg.jitter_s
    cam = sim.camera_times - np.arange(cfg.frames) / cfg.camera_rate_hz
    lidar = sim.lidar_times - sim.lidar_nominal
    for dev in (cam, lidar):
        assert np.abs(dev).max() <= 3 * sigma + 1e-12
        assert np.abs(dev).max() > 2 * sigma  # jitter is there (not clipped to nothing)


def test_robot_creeps_towards_the_decision_point_within_each_segment() -> None:
    sim = Simulator(SimConfig(frames=120, seed=4, segment_frames=(20, 40)))
    truths = sim.truths()
    for seg in sim.segments:
        seg_truths = truths[seg.first : seg.stop]
        x = np.array([t.pose[0] for t in seg_truths])
        dist = np.array([t.decision_distance for t in seg_truths])
        assert np.all(np.diff(x) > 0)  # moving forward, along +x
        assert np.all((-seg.approach <= x) & (x <= 0))  # from -approach towards 0
        assert np.all(np.diff(dist) < 0)  # closing in on the decision point
        # the robot stands before the decision point: distance = decision_x - x >= decision_x
        scene = sim.scene(seg)
        assert np.all(dist >= scene.decision_x)
        np.testing.assert_allclose(dist + x, scene.decision_x)


def test_sweeps_carry_their_jittered_stamps() -> None:
    """A sweep's stamp is its nominal instant plus clipped jitter, as camera frames' are."""
    cfg = SimConfig(frames=20, seed=5)
    sim = Simulator(cfg)
    sweeps = [e for e in sim.events() if isinstance(e, LidarSweep)]
    assert len(sweeps) == len(sim.lidar_nominal)
    offsets = [
        s.stamp_ns - (cfg.start_time_ns + round(float(t) * 1e9))
        for s, t in zip(sweeps, sim.lidar_nominal, strict=True)
    ]
    assert all(abs(o) <= 3 * cfg.jitter_s * 1e9 + 1 for o in offsets)
    assert sum(o != 0 for o in offsets) >= len(offsets) - 1  # jittered, not on the grid
