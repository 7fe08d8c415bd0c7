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

"""Sensor settings under which every family's design holds, derived from the scene geometry.

A family's recorded ground truth (:mod:`dmil_ros.sim.families`) rests on what each sensor can
and cannot observe:

* R: both sensors tell the four corridor layouts apart;
* U_camera: the camera sees the floor arrow or the glass door (the LiDAR cannot: by
  construction);
* U_lidar: the LiDAR tells the layouts apart (the camera sees a dark room: by construction);
* S: the camera sees the sign but not the side opening; the LiDAR sees which side the opening
  is on (and not the sign's colour: by construction).

:func:`check_design` refuses a configuration whose camera or LiDAR breaks one of these for a
scene and a pose the simulator can draw (the ranges of :mod:`dmil_ros.sim.geometry`). Each
condition is a worst case over those ranges, with the renderers' own sampling (the pixel rows
and columns, the beam elevations, the azimuth columns), so it is sufficient for the design to
hold. The two ``hfov_deg`` limits are also necessary: just past either, the worst-case scene
and pose break the design (``tests/sim/test_design_limits.py`` renders both sides of each).

Where an exact limit is impractical the condition is conservative, namely the camera's image
size: a pixel must land on paint every floor arrow shares (0.42 x 0.40 m), which needs about
21 x 16 pixels at the default field of view, while smaller images often still tell the cues
apart on other pixels. Measured (``camera_height_m`` 0.5, ``horizon_row_frac`` 0.4, 70 deg):
rendering the cues of U_camera, S and R at the scene ranges' ends and 81 poses spanning the
sway, 8 x 8 to 20 x 15 images showed no two cues alike (0 of 648 per family), whereas 333 x 17,
which these checks refuse for the sign, showed the U_camera and S cues alike in 648 of 648.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dmil_ros.sim.errors import SimConfigError
from dmil_ros.sim.geometry import (
    APPROACH_M,
    ARROW_LENGTH_M,
    ARROW_SHAFT_FRAC,
    ARROW_SIDE_SHAFT_FRAC,
    ARROW_WIDTH_M,
    ARROW_X0_M,
    BRANCH_MOUTH_M,
    CAMERA_FORWARD_M,
    CEILING_M,
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
    SIGN_HALF_LENGTH_M,
    SIGN_OFFSET_M,
    SIGN_Z_M,
    SWAY_Y_M,
    SWAY_YAW_DEG,
    TURN_X_M,
)

if TYPE_CHECKING:
    from dmil_ros.sim.config import SimConfig

Span = tuple[float, float]

# -- poses: every pose the simulator drives through, as bounds -----------------------------------
YAW = math.radians(SWAY_YAW_DEG)
ROBOT_X: Span = (-APPROACH_M[1], 0.0)
CAMERA_X: Span = (ROBOT_X[0] + CAMERA_FORWARD_M * math.cos(YAW), ROBOT_X[1] + CAMERA_FORWARD_M)
CAMERA_Y = SWAY_Y_M + CAMERA_FORWARD_M * math.sin(YAW)  # largest |y| of the camera
MARGIN_M = 0.01  # kept from the edges of a height band (a pixel row exactly on an edge)


def _grid_min(f: Callable[..., float], *spans: Span, n: int = 9) -> float:
    """Least value of ``f`` on an ``n``-point grid over each span (ends included).

    Used for angular windows that take their least value at the corners of the geometry's
    ranges (the same as on a 41-point grid, measured); the inner points guard a later change
    of the ranges that moves the minimum inside.
    """
    axes = [[lo + (hi - lo) * k / (n - 1) for k in range(n)] for lo, hi in spans]
    return min(f(*point) for point in itertools.product(*axes))


# -- camera: S must not see the side opening ---------------------------------------------------
# The column rays are horizontal; the outermost leaves the optical axis at atan(xn_max), so at
# most atan(xn_max) + YAW from the corridor. It meets a side wall no nearer than the wall's
# least lateral distance over tan(that); the opening (or the door recess on the other side)
# ends at S_OPENING_END. Worst pose: the camera furthest back, swayed towards the wall and
# turned to it; worst scene: the narrowest corridor, the opening ending furthest ahead.
S_OPENING_END = OPENING_X0_M[1] + max(OPENING_WIDTH_M[1], DOOR_X_M[1])
S_HIDDEN_TAN = math.tan(
    math.atan((HALF_WIDTH_M[0] - CAMERA_Y) / (S_OPENING_END - CAMERA_X[0])) - YAW
)
"""The opening stays out of view while xn_max (tan of the outermost column) is below this."""

# -- camera: R must see which way the corridor turns -------------------------------------------
# Seeing the opening on either side tells a left turn from a right one. With the camera
# swayed by y and turned by psi, the later of the two sides' outermost rays meets its wall at
# x = x_cam + 2 H / (tan(a + psi) + tan(a - psi)) at best (y balancing the sides); that
# grows as |psi| shrinks, so the worst pose is psi = y = 0 with the robot at the decision
# point: the outermost column must meet the widest corridor's wall before the nearest turn.
R_TURN_TAN = HALF_WIDTH_M[1] / (TURN_X_M[0] - ROBOT_X[1] - CAMERA_FORWARD_M)
"""A turn's side is seen once xn_max exceeds this."""
R_TURN_WINDOW = _grid_min(
    lambda lat, d: math.atan(lat / (d - BRANCH_MOUTH_M)) - math.atan(lat / d),
    (HALF_WIDTH_M[0] - CAMERA_Y, HALF_WIDTH_M[1] + CAMERA_Y),
    (TURN_X_M[0] - CAMERA_X[1], TURN_X_M[1] - CAMERA_X[0]),
)
"""Narrowest angle (rad) under which the camera sees a turn's side opening: the columns must
not step over it."""
R_TURN_NEAREST = math.atan((HALF_WIDTH_M[0] - CAMERA_Y) / (TURN_X_M[1] - CAMERA_X[0])) - YAW
"""Least angle (rad) from the optical axis at which a turn's side opening can be seen."""


@dataclass(frozen=True)
class _Target:
    """Something ahead a column must meet: a lateral window ``half`` either side of its centre,
    the centre up to ``offset`` off the corridor's centre line (m); ``near`` / ``far`` = the
    least / most forward depth it can have from the camera."""

    half: float
    offset: float
    near: float
    far: float


def _depths(x: Span, lateral: float) -> Span:
    """Forward depths (along the optical axis) of points ``x`` ahead (scene x, ``x[0]`` ..
    ``x[1]``) up to ``lateral`` off the corridor's centre line, over every camera pose."""
    lateral += CAMERA_Y
    return (
        x[0] * math.cos(YAW) - lateral * math.sin(YAW),
        x[1] + lateral * math.sin(YAW),
    )


def _ahead(x: Span) -> Span:
    """Scene x distances from the camera of surfaces at ``x``, over every camera pose."""
    return (x[0] - CAMERA_X[1], x[1] - CAMERA_X[0])


def _target(x: Span, half: float, offset: float) -> _Target:
    return _Target(half, offset, *_depths(_ahead(x), half + offset))


# S: the sign on the end wall
SIGN = _target(DEAD_END_X_M, SIGN_HALF_LENGTH_M, max(abs(v) for v in SIGN_OFFSET_M))
# R: the crate's front face, f 2 H wide, at most H (1 - f) - gap off the centre line
CRATE = _target(
    CRATE_X_M,
    CRATE_SPAN_FRAC[0] * HALF_WIDTH_M[0],
    HALF_WIDTH_M[1] * (1 - CRATE_SPAN_FRAC[0]) - CRATE_WALL_GAP_M,
)
# R: a turn's walls: the side wall at the mouth and the end wall (the rows must show them);
# a column must meet the end wall (a straight corridor goes on there)
TURN_WALL_DEPTHS = _depths(_ahead((TURN_X_M[0] - BRANCH_MOUTH_M, TURN_X_M[1])), HALF_WIDTH_M[1])
END_WALL = _target(TURN_X_M, HALF_WIDTH_M[0], 0.0)
# U_camera: floor paint every arrow has (around its middle; the glass door case shows plain
# or tinted floor there): x within the side arrows' shaft, |y| within the forward shaft
_ARROW_MID: Span = (
    ARROW_X0_M[1] + ARROW_LENGTH_M * (0.5 - ARROW_SIDE_SHAFT_FRAC),
    ARROW_X0_M[0] + ARROW_LENGTH_M * (0.5 + ARROW_SIDE_SHAFT_FRAC),
)
_ARROW_HALF = ARROW_WIDTH_M[0] * min(ARROW_SHAFT_FRAC, 0.5 * (1 - 2 * ARROW_SIDE_SHAFT_FRAC))


def _within(start: float, slope: float, band: Span) -> Span | None:
    """Distances d >= 0 at which ``start + slope d`` lies in ``band`` (None if none)."""
    lo, hi = 0.0, math.inf
    if slope > 0:
        lo, hi = max(lo, (band[0] - start) / slope), (band[1] - start) / slope
    elif slope < 0:
        lo, hi = max(lo, (band[1] - start) / slope), (band[0] - start) / slope
    elif not band[0] <= start <= band[1]:
        return None
    return (lo, hi) if lo <= hi else None


def _covers(spans: Iterable[Span | None], need: Span) -> bool:
    """The union of ``spans`` holds the whole of ``need``."""
    at = need[0]
    for lo, hi in sorted(s for s in spans if s is not None):
        if lo > at:
            return False
        at = max(at, hi)
        if at >= need[1]:
            return True
    return at >= need[1]


@dataclass(frozen=True)
class _Camera:
    """The renderer's pinhole model (:class:`dmil_ros.sim.render.CameraModel`) in normalised
    coordinates: columns ``xn`` and rows ``yn`` of the pixel centres, ``1 / fx`` apart."""

    fx: float
    xn: tuple[float, ...]
    yn: tuple[float, ...]
    height: float

    @staticmethod
    def of(cfg: SimConfig) -> _Camera:
        fx = 0.5 * cfg.width / math.tan(math.radians(cfg.hfov_deg) / 2)
        cy = cfg.horizon_row_frac * cfg.height
        return _Camera(
            fx,
            tuple((k + 0.5 - 0.5 * cfg.width) / fx for k in range(cfg.width)),
            tuple((k + 0.5 - cy) / fx for k in range(cfg.height)),
            cfg.camera_height_m,
        )

    @property
    def xn_max(self) -> float:
        """tan of the outermost column's angle from the optical axis."""
        return self.xn[-1]

    def sees_band(self, band: Span, depth: Span) -> bool:
        """At every forward depth in ``depth`` a row shows a height within ``band`` of a
        vertical surface there (row yn shows h - yn d at depth d: a band over an interval of
        depths; their union must hold ``depth``)."""
        return _covers((_within(self.height, -yn, band) for yn in self.yn), depth)

    def sees_columns(self, target: _Target) -> bool:
        """From every pose, a column's ray meets the target.

        The ray of column xn leaves the corridor axis at phi = yaw - atan(xn). The target is
        seen within |tan phi| <= t = (offset + half + camera sway) / near, its centre within
        tc = (offset + camera sway) / near, and its xn-window is at least w = 2 half / (far
        (1 + t^2)) wide: it holds a column if it lies in the image and w >= the column spacing,
        or if its centre does and w >= twice that.
        """
        t = (target.offset + target.half + CAMERA_Y) / target.near
        tc = (target.offset + CAMERA_Y) / target.near
        w = 2 * target.half / (target.far * (1 + t * t))
        step = 1.0 / self.fx
        return (step <= w and self.xn_max >= math.tan(YAW + math.atan(t))) or (
            2 * step <= w and self.xn_max >= math.tan(YAW + math.atan(tc))
        )

    def sees_turn_mouth(self) -> bool:
        """No two neighbouring columns beyond R_TURN_NEAREST are further apart than the
        narrowest turn mouth (a mouth reaching past the outermost column holds that one, as
        xn_max > R_TURN_TAN makes it cross before the turn)."""
        angles = [math.atan(x) for x in self.xn]
        return all(
            b - a <= R_TURN_WINDOW for a, b in itertools.pairwise(angles) if b > R_TURN_NEAREST
        )

    def sees_arrow(self) -> bool:
        """A floor pixel on the arrows' common paint, from every pose (rows and columns)."""
        near = _ARROW_MID[0] - CAMERA_X[1]
        t = (_ARROW_HALF + CAMERA_Y) / near
        xn = math.tan(YAW + math.atan(t))  # widest column that can show the paint
        # a floor pixel at depth d and column xn is d (cos yaw + xn sin yaw) ahead: a row of
        # floor depth d shows the paint's x span from camera positions in an interval
        k0, k1 = math.cos(YAW) - xn * math.sin(YAW), 1 + xn * math.sin(YAW)
        rows = (self.height / yn for yn in self.yn if yn > 0)
        spans = ((_ARROW_MID[0] - k0 * d, _ARROW_MID[1] - k1 * d) for d in rows)
        if not _covers((s if s[0] <= s[1] else None for s in spans), CAMERA_X):
            return False
        far = (_ARROW_MID[1] - CAMERA_X[0]) / k1
        return self.sees_columns(_Target(_ARROW_HALF, 0.0, near, far))


# -- LiDAR ------------------------------------------------------------------------------------
# R / U_lidar: the crate (any beam between the floor and its top), the end wall of a turn
# ahead and the side opening before it (any beam between the floor and the ceiling) must be
# hit, at horizontal distances up to the furthest turn's far corner
_LAYOUT_NEAR = min(
    CRATE_X_M[0] - ROBOT_X[1],
    math.hypot(TURN_X_M[0] - BRANCH_MOUTH_M - ROBOT_X[1], HALF_WIDTH_M[0] - SWAY_Y_M),
)
# the crate's front face covers |y| <= H (2 f - 1) + gap wherever it stands
_CRATE_HALF = HALF_WIDTH_M[0] * (2 * CRATE_SPAN_FRAC[0] - 1) + CRATE_WALL_GAP_M
_CRATE_FAR = math.hypot(CRATE_X_M[1] - ROBOT_X[0], _CRATE_HALF + SWAY_Y_M)
_LAYOUT_FAR = math.hypot(TURN_X_M[1] - ROBOT_X[0], HALF_WIDTH_M[1] + SWAY_Y_M)
# S: a beam crossing the wall line inside the door recess's span, at most atan(gap / depth)
# off the perpendicular, hits the door (within the recess depth) on the door side but passes
# the recess depth on the opening side (the opening's walls are >= gap further along x)
_S_GAP = min(DOOR_X_M[0], OPENING_WIDTH_M[0] - DOOR_X_M[1])
_S_TAN = _S_GAP / DOOR_DEPTH_M
_S_NEAR = HALF_WIDTH_M[0] - SWAY_Y_M
_S_FAR = (HALF_WIDTH_M[1] + SWAY_Y_M + DOOR_DEPTH_M) * math.hypot(1.0, _S_TAN)


def _s_window(a: float, x_robot: float, lateral: float) -> float:
    lo = max((a + DOOR_X_M[0] - x_robot) / lateral, -_S_TAN)
    hi = min((a + DOOR_X_M[1] - x_robot) / lateral, _S_TAN)
    return math.atan(hi) - math.atan(lo)


_LATERAL: Span = (HALF_WIDTH_M[0] - SWAY_Y_M, HALF_WIDTH_M[1] + SWAY_Y_M)
AZIMUTH_WINDOW = min(
    # R / U_lidar: a turn's side opening (its mouth seen from the robot)
    _grid_min(
        lambda lat, d: math.atan(lat / (d - BRANCH_MOUTH_M)) - math.atan(lat / d),
        _LATERAL,
        (TURN_X_M[0] - ROBOT_X[1], TURN_X_M[1] - ROBOT_X[0]),
    ),
    # R / U_lidar: the crate's sure part; a turn's end wall
    _grid_min(
        lambda x, y: math.atan((_CRATE_HALF - y) / x) + math.atan((_CRATE_HALF + y) / x),
        (CRATE_X_M[0] - ROBOT_X[1], CRATE_X_M[1] - ROBOT_X[0]),
        (-SWAY_Y_M, SWAY_Y_M),
    ),
    _grid_min(
        lambda x, y: math.atan((HALF_WIDTH_M[0] - y) / x) + math.atan((HALF_WIDTH_M[0] + y) / x),
        (TURN_X_M[0] - ROBOT_X[1], TURN_X_M[1] - ROBOT_X[0]),
        (-SWAY_Y_M, SWAY_Y_M),
    ),
    # S: the door recess's span, near the perpendicular
    _grid_min(_s_window, OPENING_X0_M, ROBOT_X, _LATERAL),
)
"""Narrowest azimuth window (rad) the LiDAR's columns must not step over."""


def _beam_reach(elevations: Iterable[float], mount: float, band: Span, reach: float) -> list[Span]:
    """Horizontal distances at which each beam returns from a surface spanning heights
    ``band`` (it meets neither floor nor ceiling first: its height there is in the band) and
    within ``reach`` of slant range (the renderer keeps 0.3 m < range <= max range)."""
    out: list[Span] = []
    for e in elevations:
        span = _within(mount, math.tan(e), band)
        c = math.cos(e)
        if span is not None and max(span[0], 0.3 * c) < min(span[1], reach * c):
            out.append((max(span[0], 0.3 * c), min(span[1], reach * c)))
    return out


@dataclass(frozen=True)
class _LidarNeed:
    """Distances ``need`` at which surfaces spanning heights ``band`` must return."""

    band: Span
    need: Span


_LAYOUT_NEEDS = (
    _LidarNeed((0.0, CRATE_HEIGHT_M[0]), (_LAYOUT_NEAR, _CRATE_FAR)),
    _LidarNeed((0.0, CEILING_M), (_LAYOUT_NEAR, _LAYOUT_FAR)),
)
_S_NEEDS = (_LidarNeed((0.0, CEILING_M), (_S_NEAR, _S_FAR)),)


def _elevations(cfg: SimConfig) -> list[float]:
    """The renderer's beam elevations (rad; :class:`dmil_ros.sim.render.LidarModel`)."""
    lo, hi = (math.radians(v) for v in cfg.vertical_fov_deg)
    if cfg.beams == 1:
        return [0.5 * (lo + hi)]
    return [lo + (hi - lo) * k / (cfg.beams - 1) for k in range(cfg.beams)]


def _lidar_sees(cfg: SimConfig, needs: Sequence[_LidarNeed], max_range: float) -> bool:
    reach = max_range - 3 * cfg.range_noise_m  # returns pushed past max range are dropped
    elevations = _elevations(cfg)
    return all(
        _covers(_beam_reach(elevations, cfg.lidar_height_m, n.band, reach), n.need) for n in needs
    )


def _one_beam(mount: float, needs: Sequence[_LidarNeed]) -> Span | None:
    """Elevations (deg) of a single beam that meets every need alone, or None."""
    lo, hi = -math.inf, math.inf
    for n in needs:
        for d in n.need:  # linear in d: both ends of the distance span bound it
            lo = max(lo, (n.band[0] - mount) / d)
            hi = min(hi, (n.band[1] - mount) / d)
    if lo > hi:
        return None
    return math.degrees(math.atan(lo)), math.degrees(math.atan(hi))


def _fail(what: str) -> SimConfigError:
    return SimConfigError(f'simulator config: {what}')


def check_design(cfg: SimConfig) -> None:
    """Raise :class:`SimConfigError` if a family's design (and so the ground truth recorded for
    it) would not hold with ``cfg``'s sensors; the message names the settings, the family and
    the range or condition that holds. Expects ``cfg``'s fields range-checked already."""
    _check_camera(cfg)
    _check_lidar(cfg)


def hfov_limits(width: int) -> Span:
    """Open interval of ``hfov_deg`` within which the S opening stays hidden and an R turn is
    seen, for an image ``width`` pixels wide (the outermost column is half a pixel in)."""
    inset = 1.0 - 1.0 / width  # xn_max = inset * tan(hfov / 2)
    return (
        2 * math.degrees(math.atan(R_TURN_TAN / inset)),
        2 * math.degrees(math.atan(S_HIDDEN_TAN / inset)),
    )


def _check_camera(cfg: SimConfig) -> None:
    cam = _Camera.of(cfg)
    low, high = hfov_limits(cfg.width)
    allowed = f'with width={cfg.width}: {low:.2f} < hfov_deg < {high:.2f}'
    if not cam.xn_max < S_HIDDEN_TAN:
        msg = (
            f'hfov_deg={cfg.hfov_deg!r} is out of range ({allowed}): the camera would see the '
            "S family's side opening, which only the LiDAR may see (S's recorded 1 bit of "
            'synergy would be false)'
        )
        raise _fail(msg)
    if not cam.xn_max > R_TURN_TAN:
        msg = (
            f'hfov_deg={cfg.hfov_deg!r} is out of range ({allowed}): the camera would not see '
            "which way an R corridor turns (R's recorded 2 bits of redundancy need both "
            'sensors to see the layout)'
        )
        raise _fail(msg)
    r_layout = "R's recorded redundancy needs the camera to see the layout"
    spacing = math.degrees(1.0 / cam.fx)
    sign = f'the S sign ({SIGN_Z_M[0]:g}-{SIGN_Z_M[1]:g} m high, {SIGN.near:.2f}-{SIGN.far:.2f} m)'
    arrow = f'the U_camera floor arrow ({_ARROW_MID[0]:.2f}-{_ARROW_MID[1]:.2f} m ahead)'
    crate = f'the R crate (up to {CRATE_HEIGHT_M[0]:g} m high, {CRATE.near:.2f}-{CRATE.far:.2f} m)'
    walls = f'the walls of an R turn ({TURN_WALL_DEPTHS[0]:.2f}-{TURN_WALL_DEPTHS[1]:.2f} m)'
    mouth = f'the mouth of an R turn ({math.degrees(R_TURN_WINDOW):.1f} deg wide)'
    crate_band = (MARGIN_M, CRATE_HEIGHT_M[0] - MARGIN_M)
    sees: tuple[tuple[bool, str, str], ...] = (
        (
            cam.sees_band(SIGN_Z_M, (SIGN.near, SIGN.far)) and cam.sees_columns(SIGN),
            sign,
            "S's recorded synergy needs the camera to see the sign's colour",
        ),
        (
            cam.sees_arrow(),
            arrow,
            "U_camera's recorded 2 bits need the camera to see the arrow or the glass door",
        ),
        (
            cam.sees_band(crate_band, (CRATE.near, CRATE.far)) and cam.sees_columns(CRATE),
            crate,
            r_layout,
        ),
        (
            cam.sees_band((MARGIN_M, CEILING_M - MARGIN_M), TURN_WALL_DEPTHS)
            and cam.sees_columns(END_WALL),
            walls,
            r_layout,
        ),
        (cam.sees_turn_mouth(), mouth, r_layout),
    )
    for ok, what, why in sees:
        if not ok:
            msg = (
                f'width={cfg.width}, height={cfg.height}, hfov_deg={cfg.hfov_deg!r}, '
                f'horizon_row_frac={cfg.horizon_row_frac!r}, camera_height_m='
                f'{cfg.camera_height_m!r}: the camera (pixels {spacing:.2f} deg apart) would '
                f'not see {what} from every pose; {why}'
            )
            raise _fail(msg)


def _check_lidar(cfg: SimConfig) -> None:
    step = 2 * math.pi / cfg.azimuth_steps
    if step > AZIMUTH_WINDOW:
        least = math.ceil(2 * math.pi / AZIMUTH_WINDOW)
        msg = (
            f'azimuth_steps={cfg.azimuth_steps!r} is out of range (azimuth_steps >= {least}): '
            f'columns {math.degrees(step):.1f} deg apart can miss a corridor opening '
            f'{math.degrees(AZIMUTH_WINDOW):.1f} deg wide (the R / U_lidar layouts and the '
            "S opening's side would not be seen, so their recorded ground truth would be false)"
        )
        raise _fail(msg)
    layouts = (
        f'the R / U_lidar corridor layouts (a crate up to {CRATE_HEIGHT_M[0]:g} m high at '
        f'{_LAYOUT_NEAR:.2f}-{_CRATE_FAR:.2f} m, walls at up to {_LAYOUT_FAR:.2f} m)'
    )
    layouts_why = (
        'their recorded 2 bits (redundancy for R, unique to the LiDAR for U_lidar) would be false'
    )
    opening = f"the S opening's side (walls at {_S_NEAR:.2f}-{_S_FAR:.2f} m)"
    checks: tuple[tuple[Sequence[_LidarNeed], str, str], ...] = (
        (_LAYOUT_NEEDS, layouts, layouts_why),
        (_S_NEEDS, opening, "S's recorded 1 bit of synergy would be false"),
    )
    for needs, what, why in checks:
        if _lidar_sees(cfg, needs, cfg.max_range_m):
            continue
        if _lidar_sees(cfg, needs, math.inf):
            reach = _least_range(cfg, needs)
            msg = (
                f'max_range_m={cfg.max_range_m!r} is out of range (max_range_m >= {reach:.2f} '
                f'with range_noise_m={cfg.range_noise_m!r}): the LiDAR would not reach {what}; '
                f'{why}'
            )
            raise _fail(msg)
        one = _one_beam(cfg.lidar_height_m, needs)
        hint = (
            f'one beam between {one[0]:.1f} and {one[1]:.1f} deg would'
            if one is not None
            else 'no beam elevation can from this height'
        )
        msg = (
            f'vertical_fov_deg={cfg.vertical_fov_deg!r} with beams={cfg.beams} and '
            f'lidar_height_m={cfg.lidar_height_m!r}: no beams hit {what} between the floor and '
            f'the top of each ({hint}); {why}'
        )
        raise _fail(msg)


def _least_range(cfg: SimConfig, needs: Sequence[_LidarNeed]) -> float:
    """Smallest max range (rounded up to 1 cm) with which the LiDAR meets ``needs`` (given
    that it meets them at some)."""
    lo, hi = cfg.max_range_m, 2 * cfg.max_range_m
    while not _lidar_sees(cfg, needs, hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-6:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if _lidar_sees(cfg, needs, mid) else (mid, hi)
    return math.ceil(hi * 100) / 100
