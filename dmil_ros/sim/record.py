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

"""Record a simulated drive as a rosbag2 (mcap or sqlite3) with a ground-truth sidecar.

Topics (the README's simulator section lists them too): ``/camera/image_raw``,
``/camera/camera_info``, ``/lidar/points``, ``/scan``, ``/cmd_vel``, ``/expert/action``,
``/tf_static``, ``/sim/ground_truth`` (one per camera frame) and ``/sim/lidar_truth`` (one per
sweep: the scene it was rendered in). Every message's bag timestamp equals its header stamp
(the expert topics use the camera frame's stamp). MCAP chunks are uncompressed by default or
zstd-compressed (``compression='zstd'``, mcap only); either way the same config and seed give
byte-identical files with the same library versions. ``<bag>/ground_truth.json`` holds the config,
the mix and the ground-truth PID (see :func:`dmil_ros.sim.families.ground_truth_summary`); the
same JSON is stored in the bag's ``metadata.yaml`` ``custom_data['dmil_ros.ground_truth']``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.rosbag2.errors import WriterError

from dmil_ros.atomic import atomic_write_text
from dmil_ros.bagio import typestore
from dmil_ros.errors import ConfigError
from dmil_ros.paths import output_dir
from dmil_ros.sim import messages as m
from dmil_ros.sim.config import SimConfig
from dmil_ros.sim.errors import RecordError
from dmil_ros.sim.families import ground_truth_summary
from dmil_ros.sim.simulator import CameraFrame, Simulator

logger = logging.getLogger(__name__)

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
SIDECAR = 'ground_truth.json'
SIDECAR_FORMAT = 'dmil_ros.sim.ground_truth/1'

TOPICS: dict[str, str] = {
    '/tf_static': 'tf2_msgs/msg/TFMessage',
    '/camera/image_raw': 'sensor_msgs/msg/Image',
    '/camera/camera_info': 'sensor_msgs/msg/CameraInfo',
    '/lidar/points': 'sensor_msgs/msg/PointCloud2',
    '/scan': 'sensor_msgs/msg/LaserScan',
    '/cmd_vel': 'geometry_msgs/msg/Twist',
    '/expert/action': 'std_msgs/msg/String',
    '/sim/ground_truth': 'dmil_ros/msg/GroundTruth',
    '/sim/lidar_truth': 'dmil_ros/msg/SweepTruth',
}

_ZERO = QosTime(sec=0, nsec=0)
LATCHED = Qos(
    history=QosHistory.KEEP_LAST,
    depth=1,
    reliability=QosReliability.RELIABLE,
    durability=QosDurability.TRANSIENT_LOCAL,
    deadline=_ZERO,
    lifespan=_ZERO,
    liveliness=QosLiveliness.AUTOMATIC,
    liveliness_lease_duration=_ZERO,
    avoid_ros_namespace_conventions=False,
)


@dataclass(frozen=True)
class RecordResult:
    """What :func:`record_bag` wrote."""

    path: Path
    storage: str
    compression: str
    counts: dict[str, int]
    ground_truth: dict[str, Any]


def record_bag(
    config: SimConfig,
    out_dir: str | Path,
    *,
    storage: str = 'mcap',
    compression: str = 'none',
    progress: bool = False,
) -> RecordResult:
    """Simulate ``config`` and write it as a rosbag2 directory ``out_dir`` (must not exist;
    missing parent folders are created). An unfinished recording (an error, Ctrl-C) leaves no
    ``out_dir`` behind; the ground-truth sidecar is written last.

    ``compression``: ``'none'`` or ``'zstd'`` (MCAP chunk compression; mcap storage only).
    """
    if storage not in STORAGES:
        msg = f'storage {storage!r} not supported (expected one of {", ".join(STORAGES)})'
        raise RecordError(msg)
    if compression not in ('none', 'zstd') or (compression == 'zstd' and storage != 'mcap'):
        msg = f'compression {compression!r} not supported with storage {storage!r}'
        raise RecordError(msg)
    path = Path(out_dir)
    if path.exists():
        msg = f'output {str(path)!r} exists already; rosbag2 bags are never overwritten'
        raise RecordError(msg)
    try:  # as every command's output: a file in the way or an unwritable folder is named
        output_dir(path, 'output')  # its existence is refused just above
    except ConfigError as exc:
        raise RecordError(str(exc)) from None
    store = typestore()
    sim = Simulator(config)
    counts = dict.fromkeys(TOPICS, 0)
    records: list[tuple[str, int, int, int]] = []
    events = sim.events()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.frames, unit='frame', desc=f'simulate {path.name}')
    created = False  # the output folder is ours to remove if the recording does not finish
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # metadata version 8: the newest both Humble and Jazzy read (rosbag2's humble
        # metadata_io.cpp checks no version and reads only its own keys; version 9 writes
        # offered_qos_profiles as a YAML list, which Humble fails on: ros2/rosbag2#2013)
        writer = Writer(path, version=8, storage_plugin=STORAGES[storage])
        if compression == 'zstd':
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        with writer:
            created = True
            conns = {
                topic: writer.add_connection(
                    topic,
                    msgtype,
                    typestore=store,
                    offered_qos_profiles=[LATCHED] if topic == '/tf_static' else [],
                )
                for topic, msgtype in TOPICS.items()
            }

            def put(topic: str, stamp_ns: int, msg: Any) -> None:
                writer.write(conns[topic], stamp_ns, store.serialize_cdr(msg, TOPICS[topic]))
                counts[topic] += 1

            # /tf_static first: a negative stamp jitter can put frame 0 before the start time
            first = min(
                [config.start_time_ns]
                + [sim.stamp_ns(float(t)) for t in (*sim.camera_times[:1], *sim.lidar_times[:1])]
            )
            put('/tf_static', first, m.tf_static_msg(first, config))
            for event in events:
                if isinstance(event, CameraFrame):
                    truth = event.truth
                    stamp = event.stamp_ns
                    put('/camera/image_raw', stamp, m.image_msg(event))
                    put('/camera/camera_info', stamp, m.camera_info_msg(stamp, sim.camera))
                    put('/cmd_vel', stamp, m.twist_msg(truth))
                    put('/expert/action', stamp, m.action_msg(truth))
                    put('/sim/ground_truth', stamp, m.ground_truth_msg(truth))
                    records.append(
                        (truth.family, truth.camera_latent, truth.lidar_latent, truth.action)
                    )
                    if bar is not None:
                        bar.update(1)
                else:
                    put('/lidar/points', event.stamp_ns, m.pointcloud_msg(event))
                    put('/scan', event.stamp_ns, m.laserscan_msg(event, sim.lidar))
                    put('/sim/lidar_truth', event.stamp_ns, m.sweep_truth_msg(event))
            summary = {
                'format': SIDECAR_FORMAT,
                'seed': config.seed,
                'frames': config.frames,
                'storage': storage,
                'compression': compression,
                'config': config.to_dict(),
                'segments': len(sim.segments),
                **ground_truth_summary(config.mix, records),
            }
            writer.set_custom_data(
                'dmil_ros.ground_truth', json.dumps(summary, sort_keys=True, separators=(',', ':'))
            )
        # last, and whole or not at all: a bag folder holding the sidecar is a finished one
        atomic_write_text(path / SIDECAR, json.dumps(summary, indent=2, sort_keys=True) + '\n')
    except BaseException as exc:  # Ctrl-C, a full disk: no half bag left to be salvaged later
        if created:
            shutil.rmtree(path, ignore_errors=True)
            logger.warning('recording stopped: the unfinished bag %s was removed', path)
        if isinstance(exc, WriterError):
            msg = f'output {str(path)!r}: {exc}'
            raise RecordError(msg) from exc
        raise
    finally:
        if bar is not None:
            bar.close()
    logger.info(
        'wrote %s (%s): %d camera frames, %d LiDAR sweeps, %d segments',
        path,
        storage,
        counts['/camera/image_raw'],
        counts['/lidar/points'],
        len(sim.segments),
    )
    return RecordResult(path, storage, compression, counts, summary)


def read_ground_truth(bag_dir: str | Path) -> dict[str, Any]:
    """The sidecar ``ground_truth.json`` of a simulator bag."""
    path = Path(bag_dir) / SIDECAR
    try:
        data = json.loads(path.read_text('utf-8'))
    except FileNotFoundError:
        msg = f'{str(path)!r}: no ground-truth sidecar (not a simulator bag?)'
        raise RecordError(msg) from None
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
        msg = f'{str(path)!r}: unreadable ({exc})'
        raise RecordError(msg) from exc
    if not isinstance(data, dict) or data.get('format') != SIDECAR_FORMAT:
        msg = f'{str(path)!r}: not a {SIDECAR_FORMAT} sidecar'
        raise RecordError(msg)
    return data
