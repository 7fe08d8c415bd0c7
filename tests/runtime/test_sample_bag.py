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

"""End to end on the shipped sample bag through the shipped model (skipped until both exist).

Ground truth comes from the bag itself: ``/sim/ground_truth`` gives each camera frame's family
(stamp == the camera image's stamp), so the alert rate per family is checked against the
simulator's labels, not against anything the pipeline computed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader

from dmil_ros.bagio import typestore
from dmil_ros.bagio.reader import RobustReader
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.pipeline import FusionPipeline
from dmil_ros.runtime.replay import replay

ROOT = Path(__file__).resolve().parents[2]
BAG = ROOT / 'bags' / 'hallway_demo'
MODEL = ROOT / 'models' / 'dmil_hallway.onnx'

pytestmark = pytest.mark.skipif(
    not (BAG.exists() and MODEL.is_file()),
    reason=f'sample bag {BAG} and/or shipped model {MODEL} not present yet',
)


@pytest.fixture(scope='module')
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp('replay') / 'out'
    pipe = FusionPipeline(FusionModel(MODEL, provider='cpu'))
    summary = replay(pipe, BAG, out, progress=False)
    return out, summary


def stamp(msg: object) -> int:
    s = msg.header.stamp  # type: ignore[attr-defined]
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


def test_replay_end_to_end(replayed: tuple[Path, object]) -> None:
    out, summary = replayed
    store = typestore()
    cameras = {stamp(m) for raw, m in RobustReader(BAG, topics=['/camera/image_raw']).decoded()}
    seen: Counter[str] = Counter()
    with Reader(out) as r:
        for conn, _, data in r.messages():
            seen[conn.topic] += 1
            if conn.msgtype == 'sensor_msgs/msg/JointState':
                # output stamps equal input (camera) stamps
                assert stamp(store.deserialize_cdr(data, conn.msgtype)) in cameras
    assert seen['/fusion_node/action_probs'] >= 0.95 * len(cameras)
    assert seen['/diagnostics'] >= 1
    assert summary.frames == seen['/fusion_node/action_probs']  # type: ignore[attr-defined]


def test_synergy_frames_alert_more_than_redundant_ones(replayed: tuple[Path, object]) -> None:
    out, _ = replayed
    store = typestore()
    family = {
        stamp(m): m.family for raw, m in RobustReader(BAG, topics=['/sim/ground_truth']).decoded()
    }
    alerts: dict[str, list[float]] = {}
    with Reader(out) as r:
        conns = [c for c in r.connections if c.topic == '/fusion_node/synergy_alert']
        if not conns:
            pytest.skip('the shipped model has no per-frame PID output: no synergy alert')
        for conn, _, data in r.messages(connections=conns):
            msg = store.deserialize_cdr(data, conn.msgtype)
            alerts.setdefault(family[stamp(msg)], []).append(float(msg.position[0]))
    rate = {f: sum(v) / len(v) for f, v in alerts.items()}
    assert 'S' in rate
    assert 'R' in rate
    assert rate['S'] >= 3 * rate['R'] + 0.05, rate


def test_a_planar_scan_on_the_3d_model_is_a_warning(tmp_path: Path) -> None:
    """The bag's /scan (LaserScan) fills one row of the model's 16: the replay ran it without
    a word, its actions those of the camera alone. Now the summary warns and the diagnostics
    name it; the PointCloud2 replay (the fixture's) has no such warning."""
    from dmil_ros.runtime.pipeline import PipelineConfig

    pipe = FusionPipeline(FusionModel(MODEL, provider='cpu'), PipelineConfig(lidar_topic='/scan'))
    summary = replay(pipe, BAG, tmp_path / 'out', progress=False)
    warning = "topic '/scan': a LaserScan fills 1 of the 16 rows the model was trained on"
    assert any(warning in line for line in summary.warnings())
    assert summary.frames > 100  # still runs
    store = typestore()
    with Reader(tmp_path / 'out') as r:
        (conn,) = [c for c in r.connections if c.topic == '/diagnostics']
        _, _, data = next(iter(r.messages([conn])))
        msg = store.deserialize_cdr(data, conn.msgtype)
    values = {kv.key: kv.value for kv in msg.status[0].values}
    assert warning in values['lidar input']


def test_the_point_cloud_replay_has_no_planar_warning(replayed: tuple[Path, object]) -> None:
    _, summary = replayed
    assert not any('LaserScan' in line for line in summary.warnings())  # type: ignore[attr-defined]
