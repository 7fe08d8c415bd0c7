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

"""Faults injected into a real bag, run through ``replay`` itself (the node's pipeline, no ROS).

The sample bag's camera and LiDAR messages are re-recorded with a fault applied
(:mod:`dmil_ros.runtime.faults`); ``replay`` then reads that bag like any other, and the output
bag's topics and diagnostics are checked against what the fault must cause.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from dmil_ros.bagio import typestore
from dmil_ros.runtime import faults
from dmil_ros.runtime.faults import Event
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.pipeline import FusionPipeline
from dmil_ros.runtime.replay import ReplaySummary, replay

ROOT = Path(__file__).resolve().parents[2]
BAG = ROOT / 'bags' / 'hallway_demo'
MODEL = ROOT / 'models' / 'dmil_hallway.onnx'
CAMERA, LIDAR = '/camera/image_raw', '/lidar/points'
DIAGNOSTICS = '/diagnostics'
ERROR = 2  # diagnostic_msgs/DiagnosticStatus.ERROR

pytestmark = pytest.mark.skipif(
    not (BAG.exists() and MODEL.is_file()), reason='sample bag or shipped model missing'
)


def events() -> list[Event]:
    store = typestore()
    out = []
    with Reader(BAG) as reader:
        conns = [c for c in reader.connections if c.topic in (CAMERA, LIDAR)]
        for conn, log_ns, raw in reader.messages(connections=conns):
            out.append(Event(conn.topic, log_ns, store.deserialize_cdr(raw, conn.msgtype)))
    return out


def record(stream: list[Event], path: Path) -> Path:
    store = typestore()
    types = {CAMERA: 'sensor_msgs/msg/Image', LIDAR: 'sensor_msgs/msg/PointCloud2'}
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {t: writer.add_connection(t, m, typestore=store) for t, m in types.items()}
        for e in sorted(stream, key=lambda e: e.log_ns):
            writer.write(conns[e.topic], e.log_ns, store.serialize_cdr(e.msg, types[e.topic]))
    return path


def run(tmp_path: Path, fault_list: list[faults.Fault]) -> tuple[ReplaySummary, list[object]]:
    bag = record(faults.inject(events(), fault_list, seed=1), tmp_path / 'faulted')
    pipeline = FusionPipeline(FusionModel(MODEL, provider='cpu'))
    summary = replay(pipeline, bag, tmp_path / 'out', progress=False)
    store = typestore()
    with Reader(tmp_path / 'out') as reader:
        conns = [c for c in reader.connections if c.topic == DIAGNOSTICS]
        diags = [store.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages(conns)]
    return summary, diags


def statuses(diags: list[object]) -> list[object]:
    return [s for d in diags for s in d.status]  # type: ignore[attr-defined]


@pytest.fixture(scope='module')
def clean(tmp_path_factory: pytest.TempPathFactory) -> ReplaySummary:
    summary, _ = run(tmp_path_factory.mktemp('clean'), [])
    return summary


def test_lidar_dropout_degrades_to_camera_only_and_says_so(
    tmp_path: Path, clean: ReplaySummary
) -> None:
    summary, diags = run(tmp_path, [faults.DropOut((LIDAR,), start=1.0, duration=2.0)])
    # every camera frame is still answered; once the 0.5 s timeout fires, the frames that waited
    # and those after them run camera-only (docs/reliability.md): the gap's frames, give or take
    # the frames at its edges whose nearest sweep fell inside it
    stream = events()
    t0 = stream[0].log_ns
    in_gap = sum(e.topic == CAMERA and 1.0 <= (e.log_ns - t0) / 1e9 < 3.0 for e in stream)
    assert summary.frames == clean.frames
    assert in_gap - 2 <= summary.degraded_frames <= in_gap + 3
    assert clean.degraded_frames == 0
    errors = [s for s in statuses(diags) if s.level == ERROR]
    assert errors, 'no ERROR diagnostics while the LiDAR was silent'
    assert any('lidar' in s.message.lower() and 'silent' in s.message.lower() for s in errors)


def test_looped_bag_is_replayed_twice_and_the_jump_reported(
    tmp_path: Path, clean: ReplaySummary
) -> None:
    summary, diags = run(tmp_path, [faults.Loop(times=2)])
    # the second pass repeats every header stamp: it must be published again, not dropped
    assert summary.frames >= 2 * clean.frames - 2
    messages = ' '.join(s.message.lower() for s in statuses(diags))
    values = {kv.key: kv.value for s in statuses(diags) for kv in s.values}
    assert 'clock jumped back' in messages
    assert int(values['clock jumps back']) >= 1
