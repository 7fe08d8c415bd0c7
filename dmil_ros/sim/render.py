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

"""Sensor rendering by vectorised 2-D ray casting (numpy only, no GPU, no engine).

Camera (Wolfenstein-style): one horizontal ray per image column against the scene's vertical
segments gives the perpendicular depth z of the nearest wall, crate and glass pane. For a pixel
row with normalised coordinate yn = (v + 0.5 - cy) / fy (positive down) the world height seen at
depth z is h_cam - yn·z, the floor is at depth h_cam / yn (yn > 0) and the ceiling at
(H_ceil - h_cam) / (-yn) (yn < 0); every pixel shows the nearest of these surfaces. Floor pixels
are back-projected to world (x, y) for tiles and painted marks.

LiDAR (multi-beam spinning): one horizontal ray per azimuth column gives the horizontal distance
d of the nearest wall / crate; beam k with elevation e_k reaches height h_lidar + d·tan e_k
there, so it returns from the crate if that height is inside the crate, from the floor at
h_lidar / tan(-e_k) or the ceiling at (H_ceil - h_lidar) / tan e_k when those come first, else
from the wall. Glass is invisible to the LiDAR. Range noise, dropouts, and a max range apply.
The LaserScan is the e = 0 plane of the same sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from dmil_ros.sim.config import SimConfig
from dmil_ros.sim.geometry import CAMERA_FORWARD_M, CEILING_M
from dmil_ros.sim.scene import (
    CEILING_INTENSITY,
    FLOOR_INTENSITY,
    GLASS_FRAME_RGB,
    Scene,
    Surfaces,
)

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

_INF = np.inf


def cast(origin: F64, dirs: F64, surf: Surfaces) -> tuple[F64, npt.NDArray[np.intp], F64]:
    """Nearest hit of rays ``origin + t·dirs`` (``dirs`` ``(R, 2)``) on segments.

    Returns ``t`` (``(R,)``, inf on a miss; the distance in units of |dir|), the segment index
    (``(R,)``, 0 on a miss) and the along-segment distance of the hit from ``p0`` in metres.
    Solves o + t·d = p0 + s·e with 2-D cross products: t = (w×e)/(d×e), s = (w×d)/(d×e),
    w = p0 - o, e = p1 - p0.
    """
    n = dirs.shape[0]
    if surf.size == 0:
        return np.full(n, _INF), np.zeros(n, np.intp), np.zeros(n)
    e = surf.p1 - surf.p0  # (S, 2)
    w = surf.p0 - origin  # (S, 2)
    dx, dy = dirs[:, 0:1], dirs[:, 1:2]  # (R, 1)
    denom = dx * e[:, 1] - dy * e[:, 0]  # (R, S)
    t_num = w[:, 0] * e[:, 1] - w[:, 1] * e[:, 0]  # (S,)
    s_num = w[:, 0] * dy - w[:, 1] * dx  # (R, S)
    with np.errstate(divide='ignore', invalid='ignore'):
        inv = 1.0 / denom
        t = t_num * inv
        s = s_num * inv
    ok = (t > 1e-9) & (s >= 0.0) & (s <= 1.0) & np.isfinite(inv)
    t = np.where(ok, t, _INF)
    idx = np.argmin(t, axis=1)
    rows = np.arange(n)
    length = np.hypot(e[:, 0], e[:, 1])
    t_hit = t[rows, idx]
    with np.errstate(invalid='ignore'):
        along = np.where(np.isfinite(t_hit), s[rows, idx] * length[idx], 0.0)
    return t_hit, idx, along


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera, horizontal optical axis; principal point row below centre looks down."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    mount_height: float
    noise: float
    xn: F64  # (W,) normalised column coordinate, positive to the right
    yn: F64  # (H,) normalised row coordinate, positive down

    @cached_property
    def yn32(self) -> F32:
        return self.yn.astype(np.float32)

    @cached_property
    def ceiling_rows(self) -> int:
        """Rows above the horizon (they see the ceiling plane)."""
        return int(np.count_nonzero(self.yn <= 0))

    def plane_depth(self, ceiling_m: float) -> F32:
        """Perpendicular depth of the floor (rows below the horizon) or ceiling, per row."""
        if ceiling_m == CEILING_M:
            return self._plane_depth_default
        return self._plane_depth(ceiling_m)

    @cached_property
    def _plane_depth_default(self) -> F32:
        return self._plane_depth(CEILING_M)

    def _plane_depth(self, ceiling_m: float) -> F32:
        hc = self.mount_height
        with np.errstate(divide='ignore'):
            zp = np.where(self.yn > 0, hc / self.yn, (ceiling_m - hc) / -self.yn)
        return zp.astype(np.float32)

    @staticmethod
    def from_config(cfg: SimConfig) -> CameraModel:
        fx = 0.5 * cfg.width / np.tan(np.deg2rad(cfg.hfov_deg) / 2)
        cx, cy = 0.5 * cfg.width, cfg.horizon_row_frac * cfg.height
        xn = (np.arange(cfg.width) + 0.5 - cx) / fx
        yn = (np.arange(cfg.height) + 0.5 - cy) / fx
        return CameraModel(
            cfg.width, cfg.height, fx, fx, cx, cy, cfg.camera_height_m, cfg.image_noise, xn, yn
        )


def render_camera(
    scene: Scene,
    pose: tuple[float, float, float],
    cam: CameraModel,
    rng: np.random.Generator,
    noise: NoisePool | None = None,
) -> U8:
    """RGB image ``(H, W, 3)`` uint8 of ``scene`` from robot ``pose`` (x, y, yaw).

    Each pixel gets an index into a small colour table (ceiling, floor, marks, signs, frame,
    wall segments, crate segments) and a shade factor; the image is one table lookup times the
    shade, plus the glass blend and sensor noise (from ``noise`` when given, else ``rng``).
    """
    h, w = cam.height, cam.width
    pool = noise if noise is not None else NoisePool.direct(rng)
    if scene.light <= 0.0:  # dark room: read noise only, independent of the scene
        dark = 8.0 + scene.dark_noise * pool.take(rng, h * w * 3).reshape(h, w, 3)
        out: U8 = np.clip(dark, 0, 255).astype(np.uint8)
        return out
    x, y, yaw = pose
    fwd = np.array([np.cos(yaw), np.sin(yaw)])
    left = np.array([-np.sin(yaw), np.cos(yaw)])
    origin = np.array([x, y]) + CAMERA_FORWARD_M * fwd
    light = np.float32(scene.light)
    # 1. one ray per column; t is the perpendicular depth since dirs have unit forward part
    dirs = fwd[None, :] - cam.xn[:, None] * left[None, :]  # (W, 2)
    tw, iw, uw = cast(origin, dirs, scene.walls)  # (W,)
    to, io, _ = cast(origin, dirs, scene.obstacles)
    tg, _, ug = cast(origin, dirs, scene.glass)
    # 2. colour table: 0 ceiling, 1 floor, marks, signs, glass frame, walls, crates
    marks, signs = scene.floor_marks, scene.signs
    i_mark, i_sign = 2, 2 + len(marks)
    i_frame = i_sign + len(signs)
    i_wall = i_frame + 1
    i_obs = i_wall + scene.walls.size
    table = np.concatenate(
        [
            np.asarray([scene.ceiling_rgb, scene.floor_rgb], np.float64),
            np.asarray([m[1] for m in marks], np.float64).reshape(-1, 3),
            np.asarray([s.rgb for s in signs], np.float64).reshape(-1, 3),
            np.asarray([GLASS_FRAME_RGB], np.float64),
            scene.walls.rgb,
            scene.obstacles.rgb,
        ]
    ).astype(np.float32)  # (T, 3)
    # 3. ceiling / floor plane per row, wall where the wall is nearer than the plane
    yn = cam.yn32  # (H,)
    hc = np.float32(cam.mount_height)
    zp = cam.plane_depth(scene.ceiling_m)  # (H,) float32
    tw32 = tw.astype(np.float32)
    nc = cam.ceiling_rows
    row_shade = light / (1.0 + np.float32(0.05) * zp)  # (H,)
    idx = np.empty((h, w), np.intp)
    shade = np.empty((h, w), np.float32)
    idx[:nc] = 0
    idx[nc:] = 1
    shade[:] = row_shade[:, None]
    # 4. floor tiles and painted marks (world floor point of every floor pixel)
    zf = zp[nc:]  # (Hf,)
    fxw = np.float32(origin[0]) + zf[:, None] * dirs[None, :, 0].astype(np.float32)  # (Hf, W)
    fyw = np.float32(origin[1]) + zf[:, None] * dirs[None, :, 1].astype(np.float32)
    inv_tile = np.float32(1.0 / 0.6)
    gx, gy = fxw * inv_tile, fyw * inv_tile
    line = (np.abs(gx - np.rint(gx)) < 0.04) | (np.abs(gy - np.rint(gy)) < 0.04)
    shade[nc:][line] *= np.float32(0.8)
    for k, (poly, _) in enumerate(marks):
        lo, hi = poly.min(axis=0), poly.max(axis=0)
        rr, cc = np.nonzero((fxw >= lo[0]) & (fxw <= hi[0]) & (fyw >= lo[1]) & (fyw <= hi[1]))
        if rr.size == 0:
            continue
        px, py = fxw[rr, cc], fyw[rr, cc]
        inside = np.ones(rr.size, bool)
        for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
            inside &= (bx - ax) * (py - ay) - (by - ay) * (px - ax) >= 0.0
        idx[nc + rr[inside], cc[inside]] = i_mark + k
    # 5. walls: segment colour, panel seams, baseboard, distance shading
    is_wall = tw32[None, :] < zp[:, None]  # (H, W)
    hgt_w = hc - yn[:, None] * tw32[None, :]  # (H, W) height seen on the wall
    # panel seams anchored in the world (not to the segment start), every 1.2 m
    along = origin[0] + tw * dirs[:, 0] + origin[1] + tw * dirs[:, 1]  # (W,) x + y of the hit
    with np.errstate(invalid='ignore'):
        seam = np.where(np.mod(along, 1.2) < 0.05, 0.7, 1.0)  # (W,)
    wshade = (seam * light / (1.0 + 0.05 * tw)).astype(np.float32)  # (W,)
    wshade_px = np.where(hgt_w < 0.12, np.float32(0.55) * wshade, wshade)  # (H, W)
    np.copyto(idx, (i_wall + iw)[None, :], where=is_wall)
    np.copyto(shade, wshade_px, where=is_wall)
    for k, sign in enumerate(signs):  # lit: full brightness whatever the room light
        (cols,) = np.nonzero((iw == sign.wall) & (uw >= sign.u0) & (uw <= sign.u1))
        if cols.size:
            sub = is_wall[:, cols] & (hgt_w[:, cols] >= sign.z0) & (hgt_w[:, cols] <= sign.z1)
            rr, cc = np.nonzero(sub)
            idx[rr, cols[cc]] = i_sign + k
            shade[rr, cols[cc]] = 1.0
    depth = np.where(is_wall, tw32[None, :], zp[:, None])  # (H, W)
    # 6. crates, in front of the wall and below their top
    (cols,) = np.nonzero(to < tw)
    if cols.size:
        t_o = to[cols].astype(np.float32)  # (C,)
        hgt_o = hc - yn[:, None] * t_o[None, :]  # (H, C)
        top = scene.obstacles.height[io[cols]].astype(np.float32)
        sub = (hgt_o >= 0) & (hgt_o <= top[None, :]) & (t_o[None, :] < depth[:, cols])
        slat = np.where(np.mod(hgt_o, 0.25) < 0.03, np.float32(0.7), np.float32(1.0))
        o_shade = slat * (light / (1.0 + np.float32(0.05) * t_o))[None, :]  # (H, C)
        rr, cc = np.nonzero(sub)
        idx[rr, cols[cc]] = i_obs + io[cols[cc]]
        shade[rr, cols[cc]] = o_shade[rr, cc]
        depth[rr, cols[cc]] = t_o[cc]
    # 7. glass: opaque frame, tinted pane blended over what lies behind
    alpha = None
    (cols,) = np.nonzero(np.isfinite(tg))
    if cols.size:
        t_g = tg[cols].astype(np.float32)
        hgt_g = hc - yn[:, None] * t_g[None, :]  # (H, C)
        seg_len = float(np.hypot(*(scene.glass.p1[0] - scene.glass.p0[0])))
        post = (ug[cols] < 0.1) | (ug[cols] > seg_len - 0.1)  # (C,)
        front = t_g[None, :] < depth[:, cols]
        bar = (hgt_g > 2.0) | (hgt_g < 0.1) | (np.abs(hgt_g - 1.0) < 0.05)
        frame = front & (post[None, :] | bar)
        rr, cc = np.nonzero(frame)
        idx[rr, cols[cc]] = i_frame
        shade[rr, cols[cc]] = light
        alpha = np.zeros((h, w), np.float32)
        rr, cc = np.nonzero(front & ~frame)
        alpha[rr, cols[cc]] = 0.55
    # 8. compose, blend glass, add sensor noise
    img = np.take(table, idx.ravel(), axis=0).reshape(h, w, 3)
    img *= shade[:, :, None]
    if alpha is not None:
        tint = np.asarray(scene.glass.rgb[0], np.float32) * light
        img += alpha[:, :, None] * (tint - img)
    if cam.noise > 0:
        img += np.float32(cam.noise) * pool.take(rng, h * w * 3).reshape(h, w, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


class NoisePool:
    """Standard-normal noise drawn once, served as random windows (cheap per-frame noise).

    Drawing 37k fresh normals per image costs more than rendering it; a window at a random
    offset of a pool drawn once per seed is statistically the same per pixel.
    """

    def __init__(self, values: F32, direct_rng: np.random.Generator | None = None) -> None:
        self.values = values
        self._direct = direct_rng

    @staticmethod
    def create(rng: np.random.Generator, size: int = 1 << 20) -> NoisePool:
        return NoisePool(rng.standard_normal(size, dtype=np.float32))

    @staticmethod
    def direct(rng: np.random.Generator) -> NoisePool:
        """A pool that draws fresh normals every time (no shared state)."""
        return NoisePool(np.zeros(0, np.float32), rng)

    def take(self, rng: np.random.Generator, n: int) -> F32:
        """``n`` standard-normal values (a window of the pool at an offset drawn from ``rng``)."""
        if self._direct is not None or n > self.values.size:
            return rng.standard_normal(n, dtype=np.float32)
        off = int(rng.integers(0, self.values.size - n + 1))
        return self.values[off : off + n]


@dataclass(frozen=True)
class LidarModel:
    """Spinning multi-beam LiDAR; ring 0 is the lowest beam (Velodyne convention)."""

    beams: int
    steps: int
    period: float
    mount_height: float
    range_noise: float
    resolution: float
    dropout: float
    max_range: float
    elevation: F64  # (B,)
    azimuth: F64  # (A,) radians, 0 = forward, counter-clockwise, in [-pi, pi)
    time: F32  # (A,) seconds from the sweep start

    @cached_property
    def dropout_z(self) -> float:
        """Standard-normal quantile above which a return is dropped."""
        return NormalDist().inv_cdf(1.0 - self.dropout) if self.dropout > 0 else np.inf

    @staticmethod
    def from_config(cfg: SimConfig) -> LidarModel:
        lo, hi = np.deg2rad(cfg.vertical_fov_deg)
        elevation: F64 = np.linspace(float(lo), float(hi), cfg.beams, dtype=np.float64)
        if cfg.beams == 1:
            elevation = np.array([0.5 * (lo + hi)], np.float64)
        step = 2 * np.pi / cfg.azimuth_steps
        azimuth: F64 = (np.arange(cfg.azimuth_steps, dtype=np.float64) + 0.5) * step - np.pi
        period = 1.0 / cfg.lidar_rate_hz
        time = (np.arange(cfg.azimuth_steps) * (period / cfg.azimuth_steps)).astype(np.float32)
        return LidarModel(
            cfg.beams,
            cfg.azimuth_steps,
            period,
            cfg.lidar_height_m,
            cfg.range_noise_m,
            cfg.lidar_resolution_m,
            cfg.dropout,
            cfg.max_range_m,
            elevation,
            azimuth,
            time,
        )


@dataclass(frozen=True)
class LidarScanData:
    """One sweep: returned points (azimuth-major, then ring) and the planar scan."""

    xyz: F32  # (N, 3) sensor frame
    intensity: F32  # (N,)
    ring: npt.NDArray[np.uint16]  # (N,)
    time: F32  # (N,) seconds after the sweep start
    scan_ranges: F32  # (A,) inf where no return
    scan_intensities: F32  # (A,)


def render_lidar(
    scene: Scene,
    pose: tuple[float, float, float],
    lidar: LidarModel,
    rng: np.random.Generator,
    noise: NoisePool | None = None,
) -> LidarScanData:
    """One LiDAR sweep of ``scene`` from robot ``pose`` (motion during the sweep ignored).

    Range and intensity noise come from ``noise`` when given (else fresh draws from ``rng``);
    a return drops out when an independent standard normal exceeds the (1 - dropout) quantile.
    """
    pool = noise if noise is not None else NoisePool.direct(rng)
    x, y, yaw = pose
    origin = np.array([x, y])
    ang = yaw + lidar.azimuth  # (A,)
    dirs = np.stack([np.cos(ang), np.sin(ang)], axis=1)  # (A, 2) unit: t is horizontal distance
    tw, iw, uw = cast(origin, dirs, scene.walls)  # (A,)
    to, io, _ = cast(origin, dirs, scene.obstacles)
    hl, ceil = lidar.mount_height, scene.ceiling_m
    tan_e = np.tan(lidar.elevation)  # (B,)
    # 1. nearest surface per (beam, azimuth): crate, wall, floor, ceiling
    top = scene.obstacles.height[io] if scene.obstacles.size else np.zeros_like(to)  # (A,)
    zo = hl + to[None, :] * tan_e[:, None]  # (B, A) beam height at the crate
    obs = (to < tw)[None, :] & (zo >= 0) & (zo <= top[None, :])
    d = np.where(obs, to[None, :], tw[None, :])  # (B, A) horizontal distance
    zw = hl + tw[None, :] * tan_e[:, None]  # (B, A) beam height at the wall
    intensity = np.where(obs, 120.0, scene.walls.intensity[iw][None, :])  # (B, A)
    for sign in scene.signs:
        on = (iw == sign.wall) & (uw >= sign.u0) & (uw <= sign.u1)  # (A,)
        m = ~obs & on[None, :] & (zw >= sign.z0) & (zw <= sign.z1)
        intensity = np.where(m, sign.intensity, intensity)
    with np.errstate(divide='ignore'):
        d_floor = np.where(tan_e < 0, hl / -tan_e, np.inf)  # (B,)
        d_ceil = np.where(tan_e > 0, (ceil - hl) / tan_e, np.inf)
    floor = d_floor[:, None] < d
    d = np.where(floor, d_floor[:, None], d)
    intensity = np.where(floor, FLOOR_INTENSITY, intensity)
    ceiling = d_ceil[:, None] < d
    d = np.where(ceiling, d_ceil[:, None], d)
    intensity = np.where(ceiling, CEILING_INTENSITY, intensity)
    # 2. range noise, dropouts, max range
    cos_e = np.cos(lidar.elevation)
    rng_m = d / cos_e[:, None]  # (B, A)
    n = rng_m.size
    draws = pool.take(rng, 3 * n + 2 * lidar.steps)
    rng_m = rng_m + lidar.range_noise * draws[:n].reshape(rng_m.shape)
    # integer reflectivity 0..255, as VLP-16 drivers report it
    intensity = np.clip(np.rint(intensity + 3.0 * draws[n : 2 * n].reshape(rng_m.shape)), 0, 255)
    keep = np.isfinite(rng_m) & (rng_m > 0.3) & (rng_m <= lidar.max_range)
    keep &= draws[2 * n : 3 * n].reshape(rng_m.shape) <= lidar.dropout_z
    # 3. points in the sensor frame, azimuth-major order like a spinning driver
    horiz = rng_m * cos_e[:, None]
    px = horiz * np.cos(lidar.azimuth)[None, :]
    py = horiz * np.sin(lidar.azimuth)[None, :]
    pz = rng_m * np.sin(lidar.elevation)[:, None]
    keep_t = keep.T  # (A, B)
    xyz64 = np.stack([px.T[keep_t], py.T[keep_t], pz.T[keep_t]], axis=1)  # (N, 3)
    if lidar.resolution > 0:  # driver resolution (also makes the bags compress well)
        xyz64 = np.rint(xyz64 * (1.0 / lidar.resolution)) * lidar.resolution
    xyz: F32 = xyz64.astype(np.float32)
    ring = np.broadcast_to(np.arange(lidar.beams, dtype=np.uint16)[None, :], keep_t.shape)
    time = np.broadcast_to(lidar.time[:, None], keep_t.shape)
    # 4. the planar scan (elevation 0) of the same sweep
    scan = np.where((to < tw) & (top >= hl), to, tw)
    scan_int = np.where((to < tw) & (top >= hl), 120.0, scene.walls.intensity[iw])
    scan = scan + lidar.range_noise * draws[3 * n : 3 * n + lidar.steps]
    dropped = draws[3 * n + lidar.steps :] > lidar.dropout_z
    bad = ~np.isfinite(scan) | (scan > lidar.max_range) | dropped
    scan = np.where(bad, np.inf, scan)
    return LidarScanData(
        xyz=xyz,
        intensity=intensity.T[keep_t].astype(np.float32),
        ring=ring[keep_t].copy(),
        time=time[keep_t].astype(np.float32),
        scan_ranges=scan.astype(np.float32),
        scan_intensities=np.where(bad, 0.0, scan_int).astype(np.float32),
    )
