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

"""A short simulator bag with many scene boundaries, its sweep truth edited, and what the
simulator's own plan says each audited / trained pair's family must be."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from dmil_ros.actions import FAMILIES
from dmil_ros.bagio import typestore
from dmil_ros.sim import SimConfig, Simulator, record_bag

SHORT = SimConfig(frames=80, seed=3, segment_frames=(5, 9))  # a boundary every 5-9 frames
TRUTH_TOPIC = '/sim/lidar_truth'


def record_edited(path: Path, drop: set[int], malformed: set[int], conflict: set[int]) -> Path:
    """:data:`SHORT` recorded, then its ``/sim/lidar_truth`` edited by sweep index: the truth
    of ``drop`` removed, of ``malformed`` replaced by a ``std_msgs/String``, of ``conflict``
    followed by a second one naming another segment."""
    record_bag(SHORT, path.with_name(path.name + '_src'))
    store = typestore()
    string = store.types['std_msgs/msg/String']
    with (
        Reader(path.with_name(path.name + '_src')) as reader,
        Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer,
    ):
        conns = {}
        for conn, t, data in reader.messages():
            out: list[tuple[str, bytes]] = [(conn.msgtype, data)]
            if conn.topic == TRUTH_TOPIC:
                msg = store.deserialize_cdr(data, conn.msgtype)
                if msg.sweep in drop:
                    out = []
                elif msg.sweep in malformed:
                    bad = string(data='not a SweepTruth')
                    out = [(string.__msgtype__, store.serialize_cdr(bad, string.__msgtype__))]
                elif msg.sweep in conflict:
                    msg.segment += 1
                    out.append((conn.msgtype, store.serialize_cdr(msg, conn.msgtype)))
            for msgtype, raw in out:
                key = (conn.topic, msgtype)
                if key not in conns:
                    conns[key] = writer.add_connection(conn.topic, msgtype, typestore=store)
                writer.write(conns[key], t, raw)
    return path


def planned_families(stamps: Iterable[int], unknown: set[int]) -> tuple[list[int], int]:
    """Per camera stamp: the family the simulator's plan gives the pair (the camera frame and
    the sweep nearest it, as the pairer picks), -1 when they come from two segments or the
    sweep's index is in ``unknown``; and how many are -1 for the latter reason."""
    sim = Simulator(SHORT)
    cam_stamps = [sim.stamp_ns(float(t)) for t in sim.camera_times]
    families, unconfirmed = [], 0
    for t in stamps:
        k = cam_stamps.index(int(t))
        j = int(np.argmin(np.abs(sim.lidar_times - sim.camera_times[k])))
        seg_c = sim.segment_of_frame(k)
        seg_l = sim.segment_at(float(sim.lidar_nominal[j]))
        if j in unknown:
            families.append(-1)
            unconfirmed += 1
        elif seg_c.index != seg_l.index:
            families.append(-1)
        else:
            families.append(FAMILIES.index(seg_c.family))
    return families, unconfirmed
