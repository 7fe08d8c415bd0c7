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

"""Pictures for the report: camera thumbnails and LiDAR bird's-eye views, as base64 PNG.

The bird's-eye view is a 2-D histogram of the returns on the ground plane (x forward, up in the
picture; y left, left in the picture), each cell coloured by the highest return that falls in it
(``cv2.COLORMAP_TURBO``), with the robot drawn at the centre. The top return per cell is one
``np.maximum.at``; ``benchmarks/bench_audit.py`` compares it with open3d's voxel grid.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np
import numpy.typing as npt

from dmil_ros.audit.errors import AuditInputError


def png_base64(bgr: npt.NDArray[np.uint8]) -> str:
    """Encode a BGR (or gray) uint8 picture as a base64 PNG string."""
    ok, buf = cv2.imencode('.png', bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        msg = f'render: PNG encoding failed for an image of shape {bgr.shape}'
        raise AuditInputError(msg)
    return base64.b64encode(buf.tobytes()).decode('ascii')


def thumbnail(rgb: npt.NDArray[np.uint8], width: int = 160) -> npt.NDArray[np.uint8]:
    """RGB ``(H, W, 3)`` -> BGR thumbnail ``width`` pixels wide (aspect kept)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        msg = f'render: expected an (H, W, 3) RGB image, got shape {rgb.shape}'
        raise AuditInputError(msg)
    h, w = rgb.shape[:2]
    height = max(1, round(h * width / w))
    interp = cv2.INTER_AREA if width < w else cv2.INTER_NEAREST
    small = cv2.resize(rgb, (width, height), interpolation=interp)
    return np.ascontiguousarray(small[:, :, ::-1])


def birds_eye(
    xyz: npt.NDArray[np.float32],
    size: int = 160,
    extent: float = 10.0,
    z_range: tuple[float, float] = (-1.0, 1.5),
) -> npt.NDArray[np.uint8]:
    """Points ``(N, 3)`` in the sensor frame -> BGR ``(size, size, 3)`` bird's-eye view.

    The view spans ``[-extent, extent]`` metres on both axes around the sensor.
    """
    if xyz.ndim != 2 or xyz.shape[1] < 3:
        msg = f'render: expected (N, 3) points, got shape {xyz.shape}'
        raise AuditInputError(msg)
    img = np.full((size, size, 3), 24, np.uint8)
    # 1. ground-plane pixel of every point: row grows backwards (x), column grows rightwards (-y)
    scale = size / (2.0 * extent)
    row = ((extent - xyz[:, 0]) * scale).astype(np.int64)
    col = ((extent - xyz[:, 1]) * scale).astype(np.int64)
    keep = (row >= 0) & (row < size) & (col >= 0) & (col < size) & np.isfinite(xyz[:, 2])
    if keep.any():
        flat = row[keep] * size + col[keep]  # (M,)
        # 2. highest return per cell, scaled to the colour map
        lo, hi = z_range
        z = np.clip((xyz[keep, 2] - lo) / (hi - lo), 0.0, 1.0)
        top = np.full(size * size, -1.0)
        np.maximum.at(top, flat, z)
        hit = top >= 0
        level = np.zeros(size * size, np.uint8)
        level[hit] = (40 + 215 * top[hit]).astype(np.uint8)
        colours = cv2.applyColorMap(level.reshape(size, size), cv2.COLORMAP_TURBO)
        img[hit.reshape(size, size)] = colours[hit.reshape(size, size)]
    # 3. range rings every 2.5 m and the robot (a triangle pointing forward, up)
    centre = (size // 2, size // 2)
    for metres in np.arange(2.5, extent + 1e-6, 2.5):
        cv2.circle(img, centre, int(metres * scale), (70, 70, 70), 1, cv2.LINE_AA)
    c = size // 2
    tri = np.array([[c, c - 6], [c - 4, c + 4], [c + 4, c + 4]], np.int32)
    cv2.fillPoly(img, [tri], (255, 255, 255), cv2.LINE_AA)
    return img


__all__ = ['birds_eye', 'png_base64', 'thumbnail']
