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

"""Sensor settings that would make a family's recorded ground truth false are refused, and the
derived limits hold (and, for hfov_deg, are tight) in renders of the worst-case scenes."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from dmil_ros.sim import SimConfig, SimConfigError, Simulator
from dmil_ros.sim import geometry as g
from dmil_ros.sim.design_limits import hfov_limits
from dmil_ros.sim.families import LEFT, RIGHT
from dmil_ros.sim.render import CameraModel, LidarModel, render_camera, render_lidar
from dmil_ros.sim.scene import Scene, build_scene
from dmil_ros.sim.simulator import _CAM, _LIDAR, _SEGMENT, _rng

YAW = math.radians(g.SWAY_YAW_DEG)


class Extremes:
    """Stands in for build_scene's generator: a ``uniform(lo, hi)`` draw returns the end that
    ``picks`` names for its range (0 low, 1 high; else the middle), an integer draw its low
    end (so every wall gets the same colour: two layouts differ only in their geometry)."""

    def __init__(self, picks: dict[tuple[float, float], int]) -> None:
        self.picks = picks

    def uniform(self, lo: float, hi: float) -> float:
        pick = self.picks.get((lo, hi))
        return 0.5 * (lo + hi) if pick is None else (lo, hi)[pick]

    def integers(self, lo: int, hi: int | None = None) -> int:
        return 0 if hi is None else lo


def worst_scene(family: str, c: int, l: int, picks: dict[tuple[float, float], int]) -> Scene:  # noqa: E741
    return build_scene(family, c, l, cast(np.random.Generator, Extremes(picks)))


def camera(hfov_deg: float, width: int = 128, height: int = 96) -> CameraModel:
    """The renderer's camera for any hfov (no SimConfig: it would refuse one past a limit)."""
    fields = {'horizon_row_frac': 0.4, 'camera_height_m': 0.5, 'image_noise': 0.0}
    cfg = SimpleNamespace(width=width, height=height, hfov_deg=hfov_deg, **fields)
    return CameraModel.from_config(cast(SimConfig, cfg))


def image(scene: Scene, pose: tuple[float, float, float], cam: CameraModel) -> Any:
    return render_camera(scene, pose, cam, np.random.default_rng(0))


@pytest.mark.parametrize(
    ('settings', 'needles'),
    [
        ({'hfov_deg': 150.0}, ('hfov_deg=150.0', "S family's side opening", '< hfov_deg <')),
        ({'hfov_deg': 120.0}, ('hfov_deg=120.0', "S family's side opening")),
        ({'hfov_deg': 30.0}, ('hfov_deg=30.0', 'R corridor turns')),
        ({'max_range_m': 1.0}, ('max_range_m=1.0', 'max_range_m >= 4.07', 'U_lidar')),
        ({'vertical_fov_deg': (-60.0, -40.0)}, ('vertical_fov_deg=(-60.0, -40.0)', 'U_lidar')),
        ({'lidar_height_m': 2.0}, ('lidar_height_m=2.0', 'U_lidar')),
        ({'azimuth_steps': 16}, ('azimuth_steps=16', 'azimuth_steps >= 43')),
        ({'width': 333, 'height': 17}, ('width=333, height=17', 'S sign')),
        ({'camera_height_m': 2.0}, ('camera_height_m=2.0', 'U_camera floor arrow')),
    ],
)
def test_settings_that_break_a_family_design_are_refused(
    settings: dict[str, Any], needles: tuple[str, ...]
) -> None:
    """hfov_deg=150 let the camera see S's opening side; max_range_m=1 and a downward
    vertical FOV made the four U_lidar layouts identical clouds; the recorded ground truth
    claimed the design's PID regardless (review 22d F3)."""
    with pytest.raises(SimConfigError) as info:
        SimConfig(**settings)
    for needle in needles:
        assert needle in str(info.value)


def test_the_defaults_lie_inside_every_limit() -> None:
    low, high = hfov_limits(128)
    assert 55.0 < low < 70.0 < high < 96.0
    SimConfig()
    SimConfig(width=21, height=16)  # the smallest 4:3 image the camera checks accept
    with pytest.raises(SimConfigError, match=r'width=20, .* the camera .* would not see'):
        SimConfig(width=20, height=15)


def test_s_opening_limit_is_exact_in_the_worst_case() -> None:
    """Narrowest corridor, opening ending furthest ahead; the camera furthest back, swayed to
    the left wall and turned to it: just inside the limit the opening side changes no pixel,
    just past it it does."""
    picks = {g.HALF_WIDTH_M: 0, g.OPENING_X0_M: 1, g.OPENING_WIDTH_M: 1}
    scenes = [worst_scene('S', 0, side, picks) for side in (0, 1)]
    pose = (-g.APPROACH_M[1], g.SWAY_Y_M, YAW)
    high = hfov_limits(128)[1]
    inside = [image(sc, pose, camera(high - 0.2)) for sc in scenes]
    past = [image(sc, pose, camera(high + 0.2)) for sc in scenes]
    assert np.array_equal(*inside)
    assert not np.array_equal(*past)
    SimConfig(hfov_deg=high - 0.2)
    with pytest.raises(SimConfigError):
        SimConfig(hfov_deg=high + 0.2)


def test_r_turn_limit_is_exact_in_the_worst_case() -> None:
    """Widest corridor, nearest turn, the robot at the decision point looking straight: just
    past the limit a left and a right turn look the same, just inside they do not."""
    picks = {g.HALF_WIDTH_M: 1, g.TURN_X_M: 0}
    left, right = (worst_scene('R', a, a, picks) for a in (LEFT, RIGHT))
    pose = (0.0, 0.0, 0.0)
    low = hfov_limits(128)[0]
    assert np.array_equal(
        image(left, pose, camera(low - 0.2)), image(right, pose, camera(low - 0.2))
    )
    assert not np.array_equal(
        image(left, pose, camera(low + 0.2)), image(right, pose, camera(low + 0.2))
    )


def least_max_range(**settings: Any) -> float:
    for r in np.arange(3.5, 6.0, 0.01):
        try:
            SimConfig(max_range_m=float(r), **settings)
        except SimConfigError:
            continue
        return float(r)
    raise AssertionError


@pytest.mark.parametrize(
    'settings',
    [
        {'range_noise_m': 0.0, 'dropout': 0.0},
        {'range_noise_m': 0.0, 'dropout': 0.0, 'beams': 1, 'vertical_fov_deg': (7.8, 7.8)},
        {'range_noise_m': 0.0, 'dropout': 0.0, 'beams': 1, 'vertical_fov_deg': (-5.6, -5.6)},
        {'range_noise_m': 0.0, 'dropout': 0.0, 'azimuth_steps': 43},
    ],
)
def test_lidar_at_its_limits_tells_the_layouts_and_the_opening_side_apart(
    settings: dict[str, Any],
) -> None:
    """With the shortest max range accepted (and a single beam at the edges of the elevation
    band, or the coarsest azimuth accepted), in the far corners of the scene ranges and at
    the extreme poses, the four layouts give four different clouds, and S's two sides two."""
    cfg = SimConfig(max_range_m=least_max_range(**settings), **settings)
    lidar = LidarModel.from_config(cfg)
    far = {g.HALF_WIDTH_M: 1, g.TURN_X_M: 1, g.CRATE_X_M: 1, g.CRATE_HEIGHT_M: 0}
    narrow = {**far, g.HALF_WIDTH_M: 0}
    poses = [(-g.APPROACH_M[1], y, s * YAW) for y in (-g.SWAY_Y_M, g.SWAY_Y_M) for s in (-1, 1)]
    for picks in (far, narrow):
        for pose in poses:
            clouds = {
                render_lidar(
                    worst_scene('U_lidar', 0, k, picks), pose, lidar, _rng(0)
                ).xyz.tobytes()
                for k in range(4)
            }
            assert len(clouds) == 4
            sides = {
                render_lidar(worst_scene('S', 0, k, picks), pose, lidar, _rng(0)).xyz.tobytes()
                for k in range(2)
            }
            assert len(sides) == 2


def test_smallest_camera_accepted_still_sees_every_cue() -> None:
    """At the smallest image the checks accept, on the simulator's own poses and scenes, the
    camera tells the S sign colours, the U_camera cues and the R layouts apart."""
    seed = 5
    sim = Simulator(SimConfig(frames=600, seed=seed, width=21, height=16))
    cam = sim.camera
    for seg in sim.segments:
        k = seg.first
        pose = sim.pose(seg, k / sim.config.camera_rate_hz)
        n_camera = {'S': 2, 'U_camera': 4, 'R': 4}.get(seg.family)
        if n_camera is None:
            continue
        images = set()
        for c in range(n_camera):
            l = c if seg.family == 'R' else seg.lidar_latent  # noqa: E741
            scene = build_scene(seg.family, c, l, _rng(seed, _SEGMENT, seg.index, 1))
            images.add(render_camera(scene, pose, cam, _rng(seed, _CAM, k)).tobytes())
        assert len(images) == n_camera, seg


def test_lidar_sees_the_layouts_on_the_simulators_own_draws() -> None:
    """The review's check: U_lidar segments whose four layouts give identical clouds (10/10
    with max_range_m=1), now at the shortest max range accepted."""
    seed = 2
    cfg = SimConfig(frames=400, seed=seed, mix={'U_lidar': 1}, max_range_m=least_max_range())
    sim = Simulator(cfg)
    for seg in sim.segments:
        pose = sim.pose(seg, (seg.first + 3) / cfg.camera_rate_hz)
        clouds = {
            render_lidar(
                build_scene('U_lidar', seg.camera_latent, k, _rng(seed, _SEGMENT, seg.index, 1)),
                pose,
                sim.lidar,
                _rng(seed, _LIDAR, 0),
                sim._noise,
            ).xyz.tobytes()
            for k in range(4)
        }
        assert len(clouds) == 4
