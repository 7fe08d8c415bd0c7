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

"""Procedural indoor scenes: 2-D wall segments with heights, colours and LiDAR intensities.

A scene lives in its own frame: x along the corridor (the robot drives towards +x and stops
near x = 0, the decision point), y to the left, z up, metres. Surfaces are vertical segments:

* ``walls``: floor-to-ceiling, seen by both sensors;
* ``obstacles``: boxes of a given height, seen by both sensors;
* ``glass``: panes seen only by the camera (the LiDAR beam passes through), with a frame;
* ``signs``: lit rectangles on a wall (camera colour; one LiDAR intensity whatever the colour);
* ``floor_marks``: convex polygons of floor paint (camera only; the floor's LiDAR intensity).

Which layout a family uses for which latent value is documented in :mod:`dmil_ros.sim.families`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dmil_ros.sim import geometry
from dmil_ros.sim.families import DESIGNS, FORWARD, LEFT, RIGHT, STOP
from dmil_ros.sim.geometry import (
    ARROW_LENGTH_M,
    ARROW_SHAFT_FRAC,
    ARROW_SIDE_SHAFT_FRAC,
    ARROW_WIDTH_M,
    ARROW_X0_M,
    BRANCH_MOUTH_M,
    CRATE_HEIGHT_M,
    CRATE_SPAN_FRAC,
    CRATE_WALL_GAP_M,
    CRATE_X_M,
    DEAD_END_X_M,
    DOOR_DEPTH_M,
    DOOR_X_M,
    HALF_WIDTH_M,
    OPENING_WIDTH_M,
    OPENING_X0_M,
    PANE_X_M,
    SIGN_HALF_LENGTH_M,
    SIGN_OFFSET_M,
    SIGN_Z_M,
    TURN_X_M,
)

F64 = npt.NDArray[np.float64]

CEILING_M = geometry.CEILING_M  # here too: the renderer's tests and benchmarks import it

BACK_X = -6.0
BRANCH_LEN = 6.0
WALL_PALETTE: tuple[tuple[int, int, int], ...] = (
    (170, 165, 150),
    (150, 155, 160),
    (185, 175, 160),
    (140, 140, 130),
    (160, 150, 140),
    (175, 170, 175),
)
FLOOR_PALETTE: tuple[tuple[int, int, int], ...] = ((95, 90, 85), (80, 85, 90), (105, 100, 90))
CEILING_RGB = (200, 200, 195)
CRATE_RGB = (140, 95, 50)
DOOR_RGB = (110, 80, 60)
GLASS_TINT = (110, 170, 210)
GLASS_FRAME_RGB = (45, 45, 50)
ARROW_RGB = {FORWARD: (40, 200, 60), LEFT: (235, 210, 30), RIGHT: (220, 40, 200)}
SIGN_RGB = ((40, 230, 70), (255, 150, 0))  # S family: green, amber
SIGN_INTENSITY = 220.0
FLOOR_INTENSITY = 35.0
CEILING_INTENSITY = 50.0


@dataclass(frozen=True)
class Surfaces:
    """Vertical segments from ``p0`` to ``p1`` (``(S, 2)`` each) and their attributes."""

    p0: F64  # (S, 2)
    p1: F64  # (S, 2)
    rgb: F64  # (S, 3) in 0..255
    intensity: F64  # (S,) LiDAR intensity 0..255
    height: F64  # (S,) top of the surface, m

    @property
    def size(self) -> int:
        return int(self.p0.shape[0])

    @staticmethod
    def build(
        items: list[
            tuple[tuple[float, float], tuple[float, float], tuple[int, ...], float, float]
        ],
    ) -> Surfaces:
        """From ``[(p0, p1, rgb, intensity, height), ...]``."""
        if not items:
            empty = np.zeros((0, 2))
            return Surfaces(empty, empty, np.zeros((0, 3)), np.zeros(0), np.zeros(0))
        return Surfaces(
            p0=np.array([i[0] for i in items], float),
            p1=np.array([i[1] for i in items], float),
            rgb=np.array([i[2] for i in items], float),
            intensity=np.array([i[3] for i in items], float),
            height=np.array([i[4] for i in items], float),
        )


@dataclass(frozen=True)
class Sign:
    """A lit rectangle on wall ``wall``: along-wall ``u0..u1`` (m from p0), height ``z0..z1``."""

    wall: int
    u0: float
    u1: float
    z0: float
    z1: float
    rgb: tuple[int, int, int]
    intensity: float = SIGN_INTENSITY


@dataclass(frozen=True)
class Scene:
    """One static scene of a segment, with the nuisance factors the ground truth reports."""

    walls: Surfaces
    obstacles: Surfaces
    glass: Surfaces
    signs: tuple[Sign, ...] = ()
    floor_marks: tuple[tuple[F64, tuple[int, int, int]], ...] = ()  # ((K, 2) CCW polygon, rgb)
    floor_rgb: tuple[int, int, int] = FLOOR_PALETTE[0]
    ceiling_rgb: tuple[int, int, int] = CEILING_RGB
    ceiling_m: float = CEILING_M
    light: float = 1.0  # camera brightness factor; 0 = dark room (camera sees noise only)
    dark_noise: float = 0.0  # noise std of the dark image
    half_width: float = 1.0
    decision_x: float = 3.0  # x of the decision point (junction, end wall, crate)
    camera_cue: str = ''
    lidar_cue: str = ''
    extra: dict[str, float] = field(default_factory=dict)


class _Builder:
    """Collects axis-aligned walls for a corridor along +x with side openings."""

    def __init__(self, rng: np.random.Generator, half_width: float) -> None:
        self.rng = rng
        self.hw = half_width
        self.walls: list[
            tuple[tuple[float, float], tuple[float, float], tuple[int, ...], float, float]
        ] = []
        self.obstacles: list[
            tuple[tuple[float, float], tuple[float, float], tuple[int, ...], float, float]
        ] = []
        self.glass: list[
            tuple[tuple[float, float], tuple[float, float], tuple[int, ...], float, float]
        ] = []
        self.wall_rgb = WALL_PALETTE[int(rng.integers(len(WALL_PALETTE)))]

    def wall(
        self, p0: tuple[float, float], p1: tuple[float, float], rgb: tuple[int, ...] | None = None
    ) -> int:
        # the same draws whatever the colour, so the n-th wall of two layouts looks the same
        jittered = self._jitter(self.wall_rgb)
        intensity = float(self.rng.uniform(60.0, 100.0))
        self.walls.append((p0, p1, rgb if rgb is not None else jittered, intensity, CEILING_M))
        return len(self.walls) - 1

    def _jitter(self, rgb: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(int(np.clip(v + self.rng.integers(-8, 9), 0, 255)) for v in rgb)

    def corridor(
        self,
        x_end: float,
        left: list[tuple[float, float, float]] = (),  # type: ignore[assignment]
        right: list[tuple[float, float, float]] = (),  # type: ignore[assignment]
    ) -> int:
        """Corridor from BACK_X to ``x_end``; ``left``/``right``: openings ``(a, b, depth)``.

        An opening of depth ``BRANCH_LEN`` is a side corridor; a shallow one a recess (door).
        Returns the index of the end wall.
        """
        hw = self.hw
        self.wall((BACK_X, -hw), (BACK_X, hw))
        for side, openings in ((1.0, sorted(left)), (-1.0, sorted(right))):
            x = BACK_X
            for a, b, depth in openings:
                self.wall((x, side * hw), (a, side * hw))
                far = side * (hw + depth)
                # a side corridor is unlit (darker walls); a recess is a service door
                dim = None if depth < 1.0 else tuple(int(0.5 * v) for v in self.wall_rgb)
                self.wall((a, side * hw), (a, far), dim)
                self.wall((b, side * hw), (b, far), dim)
                self.wall((a, far), (b, far), DOOR_RGB if depth < 1.0 else dim)
                x = b
            self.wall((x, side * hw), (x_end, side * hw))
        return self.wall((x_end, hw), (x_end, -hw))

    def box(self, x0: float, x1: float, y0: float, y1: float, height: float) -> None:
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        for k in range(4):
            self.obstacles.append((corners[k], corners[(k + 1) % 4], CRATE_RGB, 120.0, height))

    def pane(self, x: float) -> None:
        self.glass.append(((x, -self.hw), (x, self.hw), GLASS_TINT, 0.0, CEILING_M))


def _arrow(action: int, x0: float, x1: float, width: float) -> list[F64]:
    """Floor arrow between x0 (near) and x1 (far) as convex CCW polygons (shaft + head)."""
    xm = 0.5 * (x0 + x1)
    h = 0.5 * width
    if action == FORWARD:
        sw = ARROW_SHAFT_FRAC * width
        shaft = [(x0, -sw), (xm, -sw), (xm, sw), (x0, sw)]
        head = [(xm, -h), (x1, 0.0), (xm, h)]
    else:
        s = 1.0 if action == LEFT else -1.0  # arrow points towards +y (left) or -y (right)
        t = ARROW_SIDE_SHAFT_FRAC * (x1 - x0)
        shaft = [(xm - t, -s * h), (xm + t, -s * h), (xm + t, 0.0), (xm - t, 0.0)]
        head = [(x0, 0.0), (x1, 0.0), (xm, s * h)]
    polys = []
    for poly in (shaft, head):
        arr = np.array(poly, float)
        # make counter-clockwise (positive signed area)
        area = np.sum(arr[:, 0] * np.roll(arr[:, 1], -1) - np.roll(arr[:, 0], -1) * arr[:, 1])
        polys.append(arr if area > 0 else arr[::-1].copy())
    return polys


def build_scene(family: str, c: int, l: int, rng: np.random.Generator) -> Scene:  # noqa: E741
    """The scene of one segment for latents (c, l); nuisance factors drawn from ``rng``.

    Every nuisance value is drawn in the same order whatever the latents, so two scenes that
    differ only in a latent are identical apart from that latent's cue (the tests rely on it:
    e.g. the camera image of an S scene does not change when the opening changes side).
    """
    design = DESIGNS[family]
    u = rng.uniform
    floor_rgb = FLOOR_PALETTE[int(rng.integers(len(FLOOR_PALETTE)))]
    light = float(u(0.85, 1.15))
    hw_any, hw_narrow, hw_wide = (
        float(u(*HALF_WIDTH_M)),
        float(u(0.85, 0.95)),
        float(u(1.25, 1.35)),
    )
    far = float(u(14.0, 18.0))
    dx_turn, dx_crate, dx_cross, dx_dead = (
        float(u(*TURN_X_M)),
        float(u(*CRATE_X_M)),
        float(u(2.9, 3.3)),
        float(u(*DEAD_END_X_M)),
    )
    crate_span, crate_pos = float(u(*CRATE_SPAN_FRAC)), float(u(0.0, 1.0))
    crate_h = float(u(*CRATE_HEIGHT_M))
    pane_x, arrow_x0, arrow_w = (
        float(u(*PANE_X_M)),
        float(u(*ARROW_X0_M)),
        float(u(*ARROW_WIDTH_M)),
    )
    open_a, open_w = float(u(*OPENING_X0_M)), float(u(*OPENING_WIDTH_M))
    sign_off = float(u(*SIGN_OFFSET_M))
    hw = hw_any
    if family == 'U_camera':
        hw = hw_narrow if l == 0 else hw_wide
    b = _Builder(rng, hw)
    marks: list[tuple[F64, tuple[int, int, int]]] = []
    signs: list[Sign] = []
    dark_noise = 0.0
    if family in ('R', 'U_lidar'):
        dx = dx_turn
        if l == LEFT:
            b.corridor(dx, left=[(dx - BRANCH_MOUTH_M, dx, BRANCH_LEN)])
        elif l == RIGHT:
            b.corridor(dx, right=[(dx - BRANCH_MOUTH_M, dx, BRANCH_LEN)])
        else:
            b.corridor(far)
            dx = 3.0
        if l == STOP:
            dx = dx_crate
            span = crate_span * 2 * hw
            y0 = -hw + CRATE_WALL_GAP_M + crate_pos * (2 * hw - 2 * CRATE_WALL_GAP_M - span)
            b.box(dx, dx + 0.5, y0, y0 + span, crate_h)
        if family == 'U_lidar':
            dark_noise = 3.0 if c == 0 else 9.0
            light = 0.0
    elif family == 'U_camera':
        dx = dx_cross
        mouth = (dx - BRANCH_MOUTH_M, dx, BRANCH_LEN)
        b.corridor(far, left=[mouth], right=[mouth])
        if c == STOP:
            b.pane(pane_x)
        else:
            x1 = arrow_x0 + ARROW_LENGTH_M
            marks = [(poly, ARROW_RGB[c]) for poly in _arrow(c, arrow_x0, x1, arrow_w)]
    else:  # S
        dx = dx_dead
        opening = (open_a, open_a + open_w, BRANCH_LEN)
        door = (open_a + DOOR_X_M[0], open_a + DOOR_X_M[1], DOOR_DEPTH_M)
        left, right = ([opening], [door]) if l == 0 else ([door], [opening])
        end = b.corridor(dx, left=left, right=right)
        centre = hw + sign_off  # along the end wall (its p0 is at y = +hw)
        half = SIGN_HALF_LENGTH_M
        signs.append(Sign(end, centre - half, centre + half, *SIGN_Z_M, SIGN_RGB[c]))
    return Scene(
        walls=Surfaces.build(b.walls),
        obstacles=Surfaces.build(b.obstacles),
        glass=Surfaces.build(b.glass),
        signs=tuple(signs),
        floor_marks=tuple(marks),
        floor_rgb=floor_rgb,
        light=light,
        dark_noise=dark_noise,
        half_width=hw,
        decision_x=dx,
        camera_cue=design.camera_values[c],
        lidar_cue=design.lidar_values[l],
    )
