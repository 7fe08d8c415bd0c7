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

"""Sensor messages for runtime tests, built with the project's rosbags typestore."""

from __future__ import annotations

from typing import Any

import numpy as np

from dmil_ros.bagio import typestore

T = typestore().types


def header(stamp_ns: int, frame_id: str) -> Any:
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return T['std_msgs/msg/Header'](
        stamp=T['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def image(stamp_ns: int, rgb: np.ndarray, frame_id: str = 'camera_optical_frame') -> Any:
    h, w, _ = rgb.shape
    return T['sensor_msgs/msg/Image'](
        header=header(stamp_ns, frame_id),
        height=h,
        width=w,
        encoding='rgb8',
        is_bigendian=0,
        step=w * 3,
        data=np.ascontiguousarray(rgb, np.uint8).reshape(-1),
    )


def flat_image(stamp_ns: int, red: int, size: tuple[int, int] = (96, 128)) -> Any:
    rgb = np.full((*size, 3), 100, np.uint8)
    rgb[:, :, 0] = red
    return image(stamp_ns, rgb)


def vlp16(stamp_ns: int, seed: int = 0, frame_id: str = 'lidar_link') -> Any:
    """A VLP-16-like cloud in the simulator's layout (x,y,z,intensity f32, ring u16, time f32)."""
    rng = np.random.default_rng(seed)
    ring = np.repeat(np.arange(16), 360)
    az = np.tile(np.deg2rad(np.arange(360) - 180.0), 16)
    el = np.deg2rad(-15 + 2 * ring)
    r = rng.uniform(1.0, 15.0, ring.size)
    dt = np.dtype(
        {
            'names': ['x', 'y', 'z', 'intensity', 'ring', 'time'],
            'formats': ['<f4', '<f4', '<f4', '<f4', '<u2', '<f4'],
            'offsets': [0, 4, 8, 12, 16, 18],
            'itemsize': 22,
        }
    )
    pts = np.zeros(ring.size, dt)
    pts['x'] = r * np.cos(el) * np.cos(az)
    pts['y'] = r * np.cos(el) * np.sin(az)
    pts['z'] = r * np.sin(el)
    pts['intensity'] = rng.uniform(0, 255, ring.size)
    pts['ring'] = ring
    field = T['sensor_msgs/msg/PointField']
    fields = [
        field(name=n, offset=o, datatype=d, count=1)
        for n, o, d in [('x', 0, 7), ('y', 4, 7), ('z', 8, 7), ('intensity', 12, 7)]
    ]
    fields += [field(name='ring', offset=16, datatype=4, count=1)]
    fields += [field(name='time', offset=18, datatype=7, count=1)]
    return T['sensor_msgs/msg/PointCloud2'](
        header=header(stamp_ns, frame_id),
        height=1,
        width=ring.size,
        fields=fields,
        is_bigendian=False,
        point_step=22,
        row_step=22 * ring.size,
        data=pts.view(np.uint8).reshape(-1),
        is_dense=True,
    )
