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
from dmil_ros.cli import main

IMAGE_TOPIC = '/camera/image_raw'
POINTS_TOPIC = '/lidar/points'
ACTION_TOPIC = '/expert/action'
GROUND_TRUTH_TOPIC = '/sim/ground_truth'


def _stamp(store, ns: int):
    time_cls = store.types['builtin_interfaces/msg/Time']
    return time_cls(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def write_small_bag(
    path: Path,
    frames: int = 40,
    storage: str = 'mcap',
    chunk_size: int | None = None,
    encoding: str = 'rgb8',
    short_images: frozenset[int] = frozenset(),
    truth_actions: list[int] | None = None,
    repeat_stamps_after: int | None = None,
) -> list[int]:
    """A bag with ``frames`` camera images (20 Hz), clouds (10 Hz) and actions; camera stamps.

    ``encoding`` labels the images (the bytes stay rgb8: another label makes them malformed);
    the images of frames in ``short_images`` carry 100 bytes of data; ``truth_actions`` adds a
    ``/sim/ground_truth`` message per frame with that action (family R, segment i // 10);
    ``repeat_stamps_after`` k restarts the header stamps at frame k (a clock reset: frames k..
    reuse the stamps of frames 0.., logged 10 s later).
    """
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
        truth_cls = store.types['dmil_ros/msg/GroundTruth']
        if truth_actions is not None:
            gtc = writer.add_connection(GROUND_TRUTH_TOPIC, truth_cls.__msgtype__, typestore=store)
        t0 = 1_700_000_000_000_000_000
        for i in range(frames):
            log = t0 + i * 50_000_000
            restart = repeat_stamps_after is not None and i >= repeat_stamps_after
            ns = t0 + (i - repeat_stamps_after) * 50_000_000 if restart else log
            log += 10_000_000_000 if restart else 0
            stamps.append(ns)
            rgb = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8).reshape(-1)
            img = image_cls(
                header=header_cls(stamp=_stamp(store, ns), frame_id='camera_optical_frame'),
                height=24,
                width=32,
                encoding=encoding,
                is_bigendian=0,
                step=96,
                data=rgb[:100] if i in short_images else rgb,
            )
            writer.write(cam, log, store.serialize_cdr(img, image_cls.__msgtype__))
            label = ('forward', 'left', 'right', 'stop')[(i // 10) % 4]
            writer.write(
                act, log, store.serialize_cdr(string_cls(data=label), string_cls.__msgtype__)
            )
            if truth_actions is not None:
                truth = truth_cls(
                    header=header_cls(stamp=_stamp(store, ns), frame_id='camera_optical_frame'),
                    family='R', action=truth_actions[i], segment=i // 10, frame=i,
                    camera_latent=truth_actions[i] % 4, lidar_latent=truth_actions[i] % 4,
                    camera_cue='', lidar_cue='', corridor_half_width=1.0, decision_distance=2.0,
                    light_level=1.0, robot_x=0.0, robot_y=0.0, robot_yaw=0.0, cmd_linear_x=0.0,
                    cmd_angular_z=0.0,
                )  # fmt: skip
                writer.write(gtc, log, store.serialize_cdr(truth, truth_cls.__msgtype__))
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
                writer.write(pts, log + 1000, store.serialize_cdr(cloud, cloud_cls.__msgtype__))
    return stamps


def audit_cli(model: Path, out: Path, *bags: Path, extra: tuple[str, ...] = ()) -> int:
    """``dmil-ros audit BAGS --out OUT --model MODEL`` on one worker and 2 clusters."""
    args = ['audit', *map(str, bags), '--out', str(out), '--model', str(model)]
    return main([*args, '--clusters', '2', '--workers', '1', *extra])
