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

"""Tiny hand-built bags for reader and runner tests (no simulator needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from dmil_ros.bagio import typestore

IMAGE_TOPIC = '/camera/image_raw'
POINTS_TOPIC = '/lidar/points'
ACTION_TOPIC = '/expert/action'


def _stamp(store, ns: int):
    time_cls = store.types['builtin_interfaces/msg/Time']
    return time_cls(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def write_small_bag(
    path: Path,
    frames: int = 40,
    storage: str = 'mcap',
    chunk_size: int | None = None,
    encoding: str = 'rgb8',
) -> list[int]:
    """A bag with ``frames`` camera images (20 Hz), clouds (10 Hz) and actions; camera stamps.

    ``encoding`` labels the images (the bytes stay rgb8: another label makes them malformed)."""
    store = typestore()
    image_cls = store.types['sensor_msgs/msg/Image']
    cloud_cls = store.types['sensor_msgs/msg/PointCloud2']
    field_cls = store.types['sensor_msgs/msg/PointField']
    header_cls = store.types['std_msgs/msg/Header']
    string_cls = store.types['std_msgs/msg/String']
    rng = np.random.default_rng(0)
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    writer = Writer(path, version=8, storage_plugin=plugin)
    if chunk_size is not None and storage == 'mcap':
        writer.set_compression  # noqa: B018 - attribute exists; chunking is the writer's default
    stamps = []
    with writer:
        cam = writer.add_connection(IMAGE_TOPIC, image_cls.__msgtype__, typestore=store)
        pts = writer.add_connection(POINTS_TOPIC, cloud_cls.__msgtype__, typestore=store)
        act = writer.add_connection(ACTION_TOPIC, string_cls.__msgtype__, typestore=store)
        t0 = 1_700_000_000_000_000_000
        for i in range(frames):
            ns = t0 + i * 50_000_000
            stamps.append(ns)
            rgb = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            img = image_cls(
                header=header_cls(stamp=_stamp(store, ns), frame_id='camera_optical_frame'),
                height=24,
                width=32,
                encoding=encoding,
                is_bigendian=0,
                step=96,
                data=rgb.reshape(-1),
            )
            writer.write(cam, ns, store.serialize_cdr(img, image_cls.__msgtype__))
            label = ('forward', 'left', 'right', 'stop')[(i // 10) % 4]
            writer.write(
                act, ns, store.serialize_cdr(string_cls(data=label), string_cls.__msgtype__)
            )
            if i % 2 == 0:
                xyz = rng.normal(size=(50, 4)).astype(np.float32) * 3
                fields = [
                    field_cls(name=n, offset=4 * k, datatype=7, count=1)
                    for k, n in enumerate(('x', 'y', 'z', 'intensity'))
                ]
                cloud = cloud_cls(
                    header=header_cls(stamp=_stamp(store, ns), frame_id='lidar_link'),
                    height=1,
                    width=50,
                    fields=fields,
                    is_bigendian=False,
                    point_step=16,
                    row_step=800,
                    data=xyz.view(np.uint8).reshape(-1),
                    is_dense=True,
                )
                writer.write(pts, ns + 1000, store.serialize_cdr(cloud, cloud_cls.__msgtype__))
    return stamps
