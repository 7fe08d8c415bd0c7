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

"""Ray casting and rendering: analytic geometry, and each family's sensor invariances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.sim import SimConfig
from dmil_ros.sim.render import CameraModel, LidarModel, cast, render_camera, render_lidar
from dmil_ros.sim.scene import CEILING_M, Scene, Surfaces, build_scene

CFG = SimConfig(frames=1)
CAM = CameraModel.from_config(CFG)
LIDAR = LidarModel.from_config(CFG)
POSES = [(-0.4, 0.05, 0.04), (0.0, -0.05, -0.04), (-0.2, 0.0, 0.0)]


def scene(family: str, c: int, l: int, seed: int) -> Scene:  # noqa: E741
    return build_scene(family, c, l, np.random.default_rng(seed))


def camera(sc: Scene, pose: tuple[float, float, float]) -> np.ndarray:
    return render_camera(sc, pose, CAM, np.random.default_rng(0))


def lidar_xyz(sc: Scene, pose: tuple[float, float, float]) -> np.ndarray:
    return render_lidar(sc, pose, LIDAR, np.random.default_rng(0)).xyz


@settings(max_examples=50, deadline=None)
@given(
    st.floats(-5, 5),
    st.floats(-5, 5),
    st.floats(-np.pi, np.pi),
    st.floats(-5, 5),
    st.floats(-5, 5),
    st.floats(-5, 5),
    st.floats(-5, 5),
)
def test_cast_agrees_with_the_line_intersection_formula(
    ox: float, oy: float, ang: float, ax: float, ay: float, bx: float, by: float
) -> None:
    seg = Surfaces.build([((ax, ay), (bx, by), (1, 1, 1), 1.0, 1.0)])
    d = np.array([[np.cos(ang), np.sin(ang)]])
    t, _, u = cast(np.array([ox, oy]), d, seg)
    # independent check: solve [d, -(b - a)] [t, s]' = a - o with numpy
    m = np.array([[d[0, 0], -(bx - ax)], [d[0, 1], -(by - ay)]])
    if abs(np.linalg.det(m)) < 1e-6:
        return
    tt, ss = np.linalg.solve(m, np.array([ax - ox, ay - oy]))
    if tt > 1e-6 and 1e-6 < ss < 1 - 1e-6:
        assert t[0] == pytest.approx(tt, rel=1e-6, abs=1e-6)
        assert u[0] == pytest.approx(ss * np.hypot(bx - ax, by - ay), rel=1e-6, abs=1e-6)
    elif tt < -1e-6 or ss < -1e-6 or ss > 1 + 1e-6:
        assert np.isinf(t[0])


def test_lidar_points_lie_on_the_corridor_walls_floor_and_ceiling() -> None:
    sc = scene('R', 0, 0, 3)  # straight corridor
    cfg = SimConfig(frames=1, range_noise_m=0.0, dropout=0.0, lidar_resolution_m=0.0)
    lid = LidarModel.from_config(cfg)
    data = render_lidar(sc, (0.0, 0.0, 0.0), lid, np.random.default_rng(0))
    xyz = data.xyz.astype(np.float64)
    z_world = xyz[:, 2] + cfg.lidar_height_m
    on_floor = np.isclose(z_world, 0.0, atol=1e-4)
    on_ceiling = np.isclose(z_world, CEILING_M, atol=1e-4)
    on_side = np.isclose(np.abs(xyz[:, 1]), sc.half_width, atol=1e-4)
    on_end = xyz[:, 0] > 10.0  # far end wall / back wall beyond the ends
    on_back = np.isclose(xyz[:, 0], -6.0, atol=1e-4)
    assert np.all(on_floor | on_ceiling | on_side | on_end | on_back)
    assert on_floor.sum() > 100
    assert on_side.sum() > 100
    # every beam of a full sweep returns in a closed corridor; rings in order per azimuth
    assert len(xyz) == LIDAR.beams * LIDAR.steps
    assert np.array_equal(data.ring[:16], np.arange(16))
    # the planar scan sees the side wall at +-90 degrees at the half width
    k = int(np.argmin(np.abs(lid.azimuth - np.pi / 2)))
    assert data.scan_ranges[k] == pytest.approx(sc.half_width / np.cos(lid.azimuth[k] - np.pi / 2))


def test_camera_horizon_ceiling_and_floor() -> None:
    raw = camera(scene('R', 0, 0, 1), (0.0, 0.0, 0.0))
    assert raw.shape == (CFG.height, CFG.width, 3)
    assert raw.dtype == np.uint8
    img = raw.astype(float)
    top, bottom = img[:3].mean(), img[-3:].mean()
    assert top > bottom  # light ceiling above, darker floor below


def test_dark_room_camera_is_noise_only() -> None:
    img = camera(scene('U_lidar', 1, 2, 1), (0.0, 0.0, 0.0))
    assert img.mean() < 20
    assert img.std() > 3


@pytest.mark.parametrize('seed', range(10))
def test_s_camera_cannot_see_the_opening_side(seed: int) -> None:
    for pose in POSES:
        for c in (0, 1):
            assert np.array_equal(
                camera(scene('S', c, 0, seed), pose), camera(scene('S', c, 1, seed), pose)
            )


@pytest.mark.parametrize('seed', range(10))
def test_s_lidar_cannot_see_the_sign_colour_but_sees_the_side(seed: int) -> None:
    for pose in POSES:
        for l in (0, 1):  # noqa: E741
            assert np.array_equal(
                lidar_xyz(scene('S', 0, l, seed), pose), lidar_xyz(scene('S', 1, l, seed), pose)
            )
        assert not np.array_equal(
            lidar_xyz(scene('S', 0, 0, seed), pose), lidar_xyz(scene('S', 0, 1, seed), pose)
        )
    assert not np.array_equal(
        camera(scene('S', 0, 0, seed), POSES[0]), camera(scene('S', 1, 0, seed), POSES[0])
    )


@pytest.mark.parametrize('seed', range(10))
def test_u_camera_lidar_is_the_same_for_every_action(seed: int) -> None:
    for pose in POSES:
        for l in (0, 1):  # noqa: E741
            ref = lidar_xyz(scene('U_camera', 0, l, seed), pose)
            for c in (1, 2, 3):  # arrows are paint, the glass door is transparent to the LiDAR
                assert np.array_equal(ref, lidar_xyz(scene('U_camera', c, l, seed), pose))
    images = [camera(scene('U_camera', c, 0, seed), POSES[2]) for c in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(images[i].astype(int) - images[j].astype(int)).mean() > 2.0


@pytest.mark.parametrize('seed', range(5))
def test_u_lidar_camera_is_the_same_for_every_layout(seed: int) -> None:
    for c in (0, 1):
        ref = camera(scene('U_lidar', c, 0, seed), POSES[0])
        for l in (1, 2, 3):  # noqa: E741
            assert np.array_equal(ref, camera(scene('U_lidar', c, l, seed), POSES[0]))
            assert not np.array_equal(
                lidar_xyz(scene('U_lidar', c, 0, seed), POSES[0]),
                lidar_xyz(scene('U_lidar', c, l, seed), POSES[0]),
            )


@pytest.mark.parametrize('seed', range(5))
def test_r_layout_is_seen_by_both_sensors(seed: int) -> None:
    cams = [camera(scene('R', k, k, seed), POSES[2]) for k in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(cams[i].astype(int) - cams[j].astype(int)).mean() > 2.0
            xi = lidar_xyz(scene('R', i, i, seed), POSES[2])
            xj = lidar_xyz(scene('R', j, j, seed), POSES[2])
            assert not np.array_equal(xi, xj)
