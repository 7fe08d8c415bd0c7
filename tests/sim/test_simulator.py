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

"""The in-memory simulator: plan, stamps, determinism, and frames vs events consistency."""

from __future__ import annotations

import numpy as np
import pytest

from dmil_ros.actions import FAMILIES
from dmil_ros.runtime.preprocess import PreprocessSpec, prepare_image, prepare_points
from dmil_ros.sim import CameraFrame, LidarSweep, SimConfig, Simulator
from dmil_ros.sim.families import DESIGNS

CFG = SimConfig(frames=120, seed=7, segment_frames=(10, 30))


def test_segments_are_contiguous_and_cover_every_frame() -> None:
    sim = Simulator(CFG)
    assert sim.segments[0].first == 0
    assert sim.segments[-1].stop == CFG.frames
    for a, b in zip(sim.segments, sim.segments[1:], strict=False):
        assert a.stop == b.first
    for seg in sim.segments[:-1]:
        assert 10 <= seg.stop - seg.first <= 30
        assert seg.action == DESIGNS[seg.family].rule(seg.camera_latent, seg.lidar_latent)


def test_mix_weights_select_families() -> None:
    sim = Simulator(SimConfig(frames=2000, seed=1, mix={'S': 1.0, 'U_lidar': 1.0}))
    fams = {s.family for s in sim.segments}
    assert fams == {'S', 'U_lidar'}


def test_stamps_have_realistic_rates_and_jitter() -> None:
    sim = Simulator(SimConfig(frames=400, seed=2))
    cam = np.diff(sim.camera_times)
    lid = np.diff(sim.lidar_times)
    assert np.all(cam > 0)
    assert np.all(lid > 0)
    assert cam.mean() == pytest.approx(0.05, abs=1e-3)
    assert lid.mean() == pytest.approx(0.1, abs=1e-3)
    assert cam.std() > 1e-3  # jittered, so exact-time pairing cannot work
    # no sweep coincides with a camera frame to the microsecond
    gaps = np.min(np.abs(sim.lidar_times[:, None] - sim.camera_times[None, :]), axis=1)
    assert gaps.min() > 1e-6


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = list(Simulator(SimConfig(frames=15, seed=5)).frames())
    b = list(Simulator(SimConfig(frames=15, seed=5)).frames())
    c = list(Simulator(SimConfig(frames=15, seed=6)).frames())
    for fa, fb in zip(a, b, strict=True):
        assert fa.stamp_ns == fb.stamp_ns
        assert np.array_equal(fa.rgb, fb.rgb)
        assert np.array_equal(fa.lidar.xyz, fb.lidar.xyz)
        assert fa.camera.truth == fb.camera.truth
    assert any(not np.array_equal(fa.rgb, fc.rgb) for fa, fc in zip(a, c, strict=True))


def test_events_are_in_stamp_order_and_share_camera_frames_with_frames() -> None:
    sim = Simulator(SimConfig(frames=40, seed=3))
    events = list(sim.events())
    stamps = [e.stamp_ns for e in events]
    assert stamps == sorted(stamps)
    cams = [e for e in events if isinstance(e, CameraFrame)]
    sweeps = [e for e in events if isinstance(e, LidarSweep)]
    assert len(cams) == 40
    assert len(sweeps) == 20
    frames = list(Simulator(SimConfig(frames=40, seed=3)).frames())
    for cam, frame in zip(cams, frames, strict=True):
        assert np.array_equal(cam.rgb, frame.rgb)
        assert cam.truth == frame.camera.truth
        assert frame.lidar.stamp_ns == frame.stamp_ns


def test_truths_match_rendered_frames_and_latents() -> None:
    sim = Simulator(CFG)
    truths = sim.truths()
    assert [t.frame for t in truths] == list(range(CFG.frames))
    for t in truths:
        seg = sim.segments[t.segment]
        assert (t.family, t.action) == (seg.family, seg.action)
        design = DESIGNS[t.family]
        assert t.camera_cue == design.camera_values[t.camera_latent]
        assert t.lidar_cue == design.lidar_values[t.lidar_latent]
        assert t.family in FAMILIES
        assert t.decision_distance > 0.5


def test_frames_feed_the_shared_preprocessing() -> None:
    spec = PreprocessSpec()
    frame = next(Simulator(SimConfig(frames=2, seed=0)).frames())
    img = prepare_image(frame.rgb, spec)
    pts = prepare_points(frame.lidar.points(), spec)
    assert img.shape == spec.image_shape
    assert pts.shape == spec.lidar_shape
    # a 16-beam sensor fills every ring row of the range image
    assert np.all((pts[0] > 0).any(axis=1))
