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

"""Replay: a bag in, every output topic out with the node's types, CDR bytes and stamps."""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from dmil_ros.bagio import typestore
from dmil_ros.cli import main
from dmil_ros.runtime.errors import RuntimeConfigError
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.outputs import OutputBuilder, check_namespace, resolve
from dmil_ros.runtime.pipeline import FusionPipeline
from dmil_ros.runtime.replay import replay
from tests.runtime.contract_models import build_model
from tests.runtime.messages import flat_image, vlp16

CAM, LID = '/camera/image_raw', '/lidar/points'
NS = 'robot1'


def write_bag(path: Path, seconds: float, bad_every: int = 0) -> dict[int, int]:
    """Camera 20 Hz with a red segment, LiDAR 10 Hz; returns camera stamp -> red level."""
    store = typestore()
    reds = {}
    events = []
    for k in range(int(seconds * 20)):
        t = 1_000_000_000 + k * 50_000_000
        red = 250 if 100 <= k < 130 else 60 + (k * 7) % 20
        reds[t] = red
        msg = flat_image(t, red)
        if bad_every and k % bad_every == 5:
            msg.encoding = 'weird16'
        events.append((t, CAM, msg, 'sensor_msgs/msg/Image'))
    for k in range(int(seconds * 10)):
        t = 1_000_000_000 + k * 100_000_000 + 7_000_000
        events.append((t, LID, vlp16(t, seed=k % 3), 'sensor_msgs/msg/PointCloud2'))
    events.sort(key=lambda e: e[0])
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {
            CAM: w.add_connection(CAM, 'sensor_msgs/msg/Image', typestore=store),
            LID: w.add_connection(LID, 'sensor_msgs/msg/PointCloud2', typestore=store),
        }
        for t, topic, msg, kind in events:
            w.write(conns[topic], t + 2_000_000, store.serialize_cdr(msg, kind))
    return reds


def read_bag(path: Path) -> dict[str, list[tuple[int, str, bytes]]]:
    out: dict[str, list[tuple[int, str, bytes]]] = {}
    with Reader(path) as r:
        for conn, t, data in r.messages():
            out.setdefault(conn.topic, []).append((t, conn.msgtype, bytes(data)))
    return out


@pytest.fixture(scope='module')
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp('m') / 'm.onnx')


@pytest.mark.parametrize('batch', [1, 16])
def test_replay_writes_every_output(tmp_path: Path, model: Path, batch: int) -> None:
    reds = write_bag(tmp_path / 'in', 10.0, bad_every=50)
    pipe = FusionPipeline(FusionModel(model, provider='cpu'))
    summary = replay(
        pipe, tmp_path / 'in', tmp_path / 'out', namespace=NS, batch=batch, progress=False
    )
    out = read_bag(tmp_path / 'out')
    node = f'/{NS}/fusion_node'
    assert set(out) == {
        f'{node}/action',
        f'{node}/action_probs',
        f'{node}/gates',
        f'{node}/interactions',
        f'{node}/synergy_alert',
        '/diagnostics',  # absolute, as diagnostic_updater's: the aggregator listens there
    }
    store = typestore()
    n_bad = sum(1 for k in range(200) if k % 50 == 5)
    frames = 200 - n_bad  # the last frame pairs with the last sweep at the end of the bag
    assert summary.frames == frames
    for topic in ('action', 'action_probs', 'gates', 'interactions', 'synergy_alert'):
        rows = out[f'{node}/{topic}']
        assert len(rows) == frames
        assert {kind for _, kind, _ in rows} == {'sensor_msgs/msg/JointState'}
        for _, kind, data in rows:
            msg = store.deserialize_cdr(data, kind)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            assert stamp in reds  # output stamps are camera stamps
            assert msg.header.frame_id == 'camera_optical_frame'
    # the malformed images are counted, by reason
    assert summary.drops == Counter({f'{CAM}: encoding': n_bad})
    # the red segment (frames 100..129) raises the alert; calm frames do not
    alerts = {}
    for _, kind, data in out[f'{node}/synergy_alert']:
        msg = store.deserialize_cdr(data, kind)
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        alerts[stamp] = msg.position[0]
    segment = [a for t, a in alerts.items() if reds[t] == 250]
    calm = [a for t, a in alerts.items() if reds[t] != 250]
    assert np.mean(segment) > 0.9
    assert np.mean(calm) < 0.05
    assert summary.alerts == 1
    # diagnostics once per second of bag time, plus the final one
    diags = out['/diagnostics']
    assert 9 <= len(diags) <= 11
    last = store.deserialize_cdr(diags[-1][2], 'diagnostic_msgs/msg/DiagnosticArray')
    # diagnostic_updater's '<node>: <task>', the node fully qualified (two namespaced nodes on
    # the one /diagnostics keep apart); the host as hardware_id, the model among the values
    assert last.status[0].name == f'/{NS}/fusion_node: fusion'
    assert last.status[0].hardware_id == socket.gethostname()
    values = {kv.key: kv.value for kv in last.status[0].values}
    assert values['model'] == str(model)
    assert values['provider'] == 'cpu'
    assert values[f'drop: {CAM}: encoding'] == str(n_bad)
    assert float(values[f'{CAM} rate (Hz)']) == pytest.approx(20.0, rel=0.05)
    assert summary.realtime_factor > 1
    assert any('real time' in line for line in summary.lines())


def test_no_evidence_rows_are_written_as_nan_and_left_out_of_the_mean(tmp_path: Path) -> None:
    """With S = 20 x the standardised red mean, the red segment's rows (38 bits) sit beyond
    NO_EVIDENCE_BITS: their interactions are NaN in the bag, counted in the summary and the
    diagnostics, outside the mean, and they raise no alert."""
    reds = write_bag(tmp_path / 'in', 10.0)
    path = build_model(tmp_path / 'scaled.onnx', pid_scale=20.0)
    pipe = FusionPipeline(FusionModel(path, provider='cpu'))
    summary = replay(pipe, tmp_path / 'in', tmp_path / 'out', namespace=NS, progress=False)
    out = read_bag(tmp_path / 'out')
    store = typestore()
    rows = {}
    for _, kind, data in out[f'/{NS}/fusion_node/interactions']:
        msg = store.deserialize_cdr(data, kind)
        rows[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = msg.position
    segment = [t for t in rows if reds[t] == 250]
    assert len(segment) == 30
    assert all(np.isnan(rows[t]).all() for t in segment)
    calm = np.array([rows[t] for t in rows if reds[t] != 250])  # (N, 4)
    assert np.isfinite(calm).all()
    assert summary.no_evidence_frames == 30
    assert summary.mean_interactions == pytest.approx(tuple(calm.mean(axis=0)), abs=1e-6)
    assert summary.alerts == 0
    assert any('without evidence' in line and line.endswith(': 30') for line in summary.lines())
    last = store.deserialize_cdr(out['/diagnostics'][-1][2], 'diagnostic_msgs/msg/DiagnosticArray')
    values = {kv.key: kv.value for kv in last.status[0].values}
    assert values['pid_broja frames without evidence'] == '30'


def test_cdr_bytes_equal_the_builders(tmp_path: Path, model: Path) -> None:
    """The bag holds exactly the bytes the node's messages serialise to."""
    write_bag(tmp_path / 'in', 2.0)
    pipe = FusionPipeline(FusionModel(model, provider='cpu'))
    replay(pipe, tmp_path / 'in', tmp_path / 'out', progress=False)
    out = read_bag(tmp_path / 'out')
    # rerun the pipeline directly over the same messages
    ref = FusionPipeline(FusionModel(model, provider='cpu'))
    builder = OutputBuilder()
    expected: list[bytes] = []
    store = typestore()
    with Reader(tmp_path / 'in') as r:
        for conn, _, data in r.messages():
            msg = store.deserialize_cdr(data, conn.msgtype)
            push = ref.push_camera if conn.topic == CAM else ref.push_lidar
            results = push(msg)
            expected += [
                builder.serialize(t, m)
                for r in results
                for t, m in builder.frame(r)
                if t == '~/gates'
            ]
    # the end of the bag decides the frames still waiting for a sweep
    ends = ref.infer(ref.finish())
    assert len(ends) == 1
    expected += [
        builder.serialize(t, m) for r in ends for t, m in builder.frame(r) if t == '~/gates'
    ]
    assert [d for _, _, d in out['/fusion_node/gates']] == expected


def test_output_exists_refused(tmp_path: Path, model: Path) -> None:
    write_bag(tmp_path / 'in', 1.0)
    (tmp_path / 'out').mkdir()
    pipe = FusionPipeline(FusionModel(model, provider='cpu'))
    with pytest.raises(RuntimeConfigError, match='already exists'):
        replay(pipe, tmp_path / 'in', tmp_path / 'out', progress=False)


def test_cli_replay_with_params(tmp_path: Path, model: Path, capsys: Any) -> None:
    write_bag(tmp_path / 'in', 3.0)
    params = tmp_path / 'p.yaml'
    params.write_text(
        'fusion_node:\n  ros__parameters:\n    slop: 0.06\n    monitor:\n      on_z: 4.0\n'
    )
    summary = tmp_path / 's.json'
    code = main(
        [
            'replay',
            str(tmp_path / 'in'),
            '--out',
            str(tmp_path / 'out'),
            '--model',
            str(model),
            '--params',
            str(params),
            '--no-progress',
            '--summary',
            str(summary),
            '--cmd-vel',
        ]
    )
    assert code == 0
    data = json.loads(summary.read_text())
    assert data['frames'] == 60  # 3 s at 20 Hz, every frame paired (the last one at the end)
    assert data['written']['/fusion_node/cmd_vel'] == 60
    assert read_bag(tmp_path / 'out')['/fusion_node/cmd_vel'][0][1] == 'geometry_msgs/msg/Twist'


def test_cli_missing_model(tmp_path: Path) -> None:
    write_bag(tmp_path / 'in', 1.0)
    code = main(
        ['replay', str(tmp_path / 'in'), '--out', str(tmp_path / 'o'), '--model', 'nope.onnx']
    )
    assert code == 2


@pytest.mark.parametrize(
    ('option', 'make', 'named'),
    [
        ('--out', lambda t: (t / 'f').write_text('x') and t / 'f' / 'out', 'is a file'),
        ('--out', lambda t: (t / 'exists').mkdir() or t / 'exists', 'already exists'),
        ('--summary', lambda t: t, 'is a directory'),
        ('--summary', lambda t: (t / 'f').write_text('x') and t / 'f' / 's.json', 'is a file'),
        # the output bag's folder, made by the replay: the summary failed after the whole run
        ('--summary', lambda t: t / 'o', 'inside or at --out'),
        ('--summary', lambda t: t / 'o' / 's.json', 'inside or at --out'),
    ],
)
def test_cli_bad_output_paths_fail_before_any_work(
    tmp_path: Path, model: Path, capsys: Any, option: str, make: Any, named: str
) -> None:
    """A bad --out / --summary is refused with one line naming the option and the path,
    before the bag is read (the summary used to be lost after a whole replay)."""
    write_bag(tmp_path / 'in', 1.0)
    bad = make(tmp_path)
    paths = {'--out': str(tmp_path / 'o'), '--summary': str(tmp_path / 's.json'), option: str(bad)}
    args = ['replay', str(tmp_path / 'in'), '--model', str(model), '--no-progress']
    code = main([*args, '--out', paths['--out'], '--summary', paths['--summary']])
    assert code == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if 'ERROR' in line]
    assert option in error
    assert str(bad) in error
    assert named in error
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('bag', ['plain.txt', 'folder'])
def test_cli_input_that_is_no_bag_leaves_no_output(tmp_path: Path, model: Path, bag: str) -> None:
    (tmp_path / 'plain.txt').write_text('not a bag')
    (tmp_path / 'folder').mkdir()
    args = ['replay', str(tmp_path / bag), '--out', str(tmp_path / 'o'), '--model', str(model)]
    assert main([*args, '--no-progress']) == 2
    assert not (tmp_path / 'o').exists()  # a rerun with the right input is not refused


def test_cli_unreadable_storage_file_is_named_and_leaves_no_output(
    tmp_path: Path, model: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage file this user may not read (chmod 000; simulated, as root may read it
    anyway): refused by name when the reader is made, before the output bag is created (an
    empty one was left, which refused the rerun)."""
    import os

    from dmil_ros.bagio import reader

    write_bag(tmp_path / 'bag', seconds=0.3)
    (storage,) = (tmp_path / 'bag').glob('*.mcap')
    real = os.access
    monkeypatch.setattr(reader.os, 'access', lambda p, mode: Path(p) != storage and real(p, mode))
    args = ['replay', str(tmp_path / 'bag'), '--out', str(tmp_path / 'o'), '--model', str(model)]
    assert main([*args, '--no-progress']) == 2
    err = capsys.readouterr().err
    assert f"storage file(s) ['{storage.name}'] in {str(tmp_path / 'bag')!r}: permission" in err
    assert not (tmp_path / 'o').exists()


def test_cli_exit_code_says_whether_the_replay_found_its_topics(
    tmp_path: Path, model: Path, capsys: Any
) -> None:
    write_bag(tmp_path / 'in', 1.0)
    args = ['replay', str(tmp_path / 'in'), '--model', str(model), '--no-progress']
    assert main([*args, '--out', str(tmp_path / 'good')]) == 0
    assert 'WARNING' not in capsys.readouterr().err
    code = main([*args, '--out', str(tmp_path / 'typo'), '--image-topic', '/camera/imag'])
    assert code == 1
    warnings = [line for line in capsys.readouterr().err.splitlines() if 'WARNING' in line]
    assert any("'/camera/imag': no message in the bag" in w for w in warnings), warnings


def test_cli_a_camera_topic_of_another_type_fails_the_replay(tmp_path: Path, capsys: Any) -> None:
    """Every message of the camera topic refused (CameraInfo): each frame ran LiDAR-only and
    the replay said nothing and exited 0 (review 20b #2)."""
    bag = Path(__file__).resolve().parents[2] / 'bags' / 'hallway_demo'
    args = ['replay', str(bag), '--out', str(tmp_path / 'o'), '--no-progress']
    assert main([*args, '--image-topic', '/camera/camera_info']) == 1
    warnings = [line for line in capsys.readouterr().err.splitlines() if 'WARNING' in line]
    assert any(
        "camera topic '/camera/camera_info': none of its 128 messages usable" in w
        and 'neither an Image nor a CompressedImage' in w
        for w in warnings
    ), warnings


@pytest.mark.parametrize(
    ('setting', 'named'),
    [
        # image_transport's compressed stream is <base>/compressed: this bag has none
        ('image_transport: compressed', "'/camera/image_raw/compressed': no message in the bag"),
        (
            'points_type: laserscan',
            'as sensor_msgs/msg/LaserScan (points_type: laserscan) and would receive nothing',
        ),
    ],
)
def test_cli_a_topic_the_node_would_not_hear_fails_the_replay(
    tmp_path: Path, model: Path, capsys: Any, setting: str, named: str
) -> None:
    """The node subscribes by type; the replay decodes whatever the bag holds, so a params file
    whose transport does not match the bag passed the replay (review 20b #3)."""
    write_bag(tmp_path / 'in', 1.0)
    params = tmp_path / 'p.yaml'
    params.write_text(f'/**/fusion_node:\n  ros__parameters:\n    {setting}\n')
    args = ['replay', str(tmp_path / 'in'), '--model', str(model), '--no-progress']
    assert main([*args, '--out', str(tmp_path / 'o'), '--params', str(params)]) == 1
    warnings = [line for line in capsys.readouterr().err.splitlines() if 'WARNING' in line]
    assert any(named in w for w in warnings), warnings
    assert main([*args, '--out', str(tmp_path / 'o2')]) == 0  # the defaults match the bag


@pytest.mark.parametrize('rate', ['inf', 'nan', '0', '-1'])
def test_cli_rates_that_are_no_pace_are_refused(tmp_path: Path, model: Path, rate: str) -> None:
    write_bag(tmp_path / 'in', 1.0)
    args = ['replay', str(tmp_path / 'in'), '--model', str(model), '--no-progress']
    assert main([*args, '--out', str(tmp_path / 'o'), '--rate', rate]) == 2


@pytest.mark.parametrize('ns', ['', '/', 'robot1', '/fleet/robot_1', '_a'])
def test_ros_namespaces_are_accepted(ns: str) -> None:
    assert check_namespace(ns) == ns
    assert resolve('~/action', ns).startswith(('/fusion_node', '/fleet', '/robot1', '/_a'))


@pytest.mark.parametrize('ns', ['bad ns!', '1robot', 'a//b', '/fleet/2nd', 'a-b', 'robot1/'])
def test_names_ros_refuses_are_refused_before_any_output(
    tmp_path: Path, model: Path, ns: str, capsys: Any
) -> None:
    """The node could never publish under them; the replay used to write them into the bag."""
    with pytest.raises(RuntimeConfigError, match='not a ROS 2 namespace'):
        check_namespace(ns)
    write_bag(tmp_path / 'in', 1.0)
    pipe = FusionPipeline(FusionModel(model, provider='cpu'))
    with pytest.raises(RuntimeConfigError, match=re.escape(repr(ns))):
        replay(pipe, tmp_path / 'in', tmp_path / 'out', namespace=ns, progress=False)
    assert not (tmp_path / 'out').exists()
    args = ['replay', str(tmp_path / 'in'), '--out', str(tmp_path / 'out'), '--model', 'none']
    assert main([*args, f'--namespace={ns}']) == 2  # named before the (missing) model
    assert f'--namespace {ns!r} is not a ROS 2 namespace' in capsys.readouterr().err


def test_ctrl_c_keeps_the_output_and_the_summary(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_bag(tmp_path / 'in', 3.0)
    feed = FusionPipeline.feed_lidar
    calls = []

    def interrupted(self: FusionPipeline, msg: Any) -> Any:
        calls.append(1)
        if len(calls) == 15:  # half-way through the 30 sweeps
            raise KeyboardInterrupt
        return feed(self, msg)

    monkeypatch.setattr(FusionPipeline, 'feed_lidar', interrupted)
    summary = tmp_path / 's.json'
    args = ['replay', str(tmp_path / 'in'), '--out', str(tmp_path / 'o'), '--model', str(model)]
    assert main([*args, '--no-progress', '--summary', str(summary), '--batch', '1']) == 130
    data = json.loads(summary.read_text())
    assert data['interrupted']
    assert 20 <= data['written_frames'] < 60
    written = read_bag(tmp_path / 'o')['/fusion_node/action_probs']  # a readable bag
    assert len(written) == data['written_frames']
    # the library call propagates it (a benchmark's loop must not go on with a partial run)
    calls.clear()
    pipe = FusionPipeline(FusionModel(model, provider='cpu'))
    with pytest.raises(KeyboardInterrupt):
        replay(pipe, tmp_path / 'in', tmp_path / 'o2', progress=False)
    assert len(read_bag(tmp_path / 'o2')['/fusion_node/action_probs']) > 0  # closed, readable


def write_segments(path: Path, segments: list[tuple[float, float]]) -> None:
    """Camera 20 Hz and LiDAR 10 Hz during each ``(start, stop)`` second span, nothing between."""
    store = typestore()
    events = []
    for a, b in segments:
        events += [
            (int((a + k * 0.05) * 1e9), CAM, 'sensor_msgs/msg/Image')
            for k in range(int((b - a) * 20))
        ]
        events += [
            (int((a + k * 0.1 + 0.007) * 1e9), LID, 'sensor_msgs/msg/PointCloud2')
            for k in range(int((b - a) * 10))
        ]
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {
            t: w.add_connection(t, kind, typestore=store)
            for _, t, kind in events[:1] + events[-1:]
        }
        for t, topic, kind in sorted(events):
            msg = flat_image(t, 100) if topic == CAM else vlp16(t)
            w.write(conns[topic], t, store.serialize_cdr(msg, kind))


def test_diagnostics_every_second_through_a_gap(tmp_path: Path, model: Path) -> None:
    """A 10 s hole in the recording gets a report per second (as the node's timer would), and
    the input rates fall while the sensors are silent."""
    write_segments(tmp_path / 'in', [(1.0, 3.0), (13.0, 15.0)])
    replay(FusionPipeline(FusionModel(model)), tmp_path / 'in', tmp_path / 'out', progress=False)
    store = typestore()
    diags = [
        (t, store.deserialize_cdr(data, kind))
        for t, kind, data in read_bag(tmp_path / 'out')['/diagnostics']
    ]
    times = np.array([t for t, _ in diags]) / 1e9
    assert np.all(np.diff(times) <= 1.0 + 1e-9)  # no hole, no burst
    assert np.all(np.diff(times[:-1]) >= 1.0 - 1e-9)
    rates = {
        round(t / 1e9): float({kv.key: kv.value for kv in m.status[0].values}[f'{CAM} rate (Hz)'])
        for t, m in diags
    }
    assert rates[3] == pytest.approx(20.0, rel=0.1)  # still receiving
    assert 0 < rates[5] < 12  # 2 s silent: 40 frames over 4 s (was 20 Hz: up to the last one)
    assert rates[9] == 0.0  # the window holds nothing


def test_missing_input_topic_is_named(tmp_path: Path, model: Path) -> None:
    write_segments(tmp_path / 'in', [(1.0, 2.0)])
    from dmil_ros.runtime.pipeline import PipelineConfig

    pipe = FusionPipeline(FusionModel(model), PipelineConfig(camera_topic='/camera/image'))
    summary = replay(pipe, tmp_path / 'in', tmp_path / 'out', progress=False)
    (problem,) = summary.problems
    assert "'/camera/image'" in problem
    assert CAM in problem  # the bag's topics are listed
    assert LID in problem
    assert any(problem in line for line in summary.warnings())
    assert summary.silent == ['/camera/image']
    assert summary.failed  # the CLI's exit code 1


def test_a_long_gap_gets_a_bounded_number_of_reports(tmp_path: Path, model: Path) -> None:
    """Two recordings 10 minutes apart in one bag: 60 reports for the gap, not 600."""
    from dmil_ros.runtime.replay import MAX_GAP_REPORTS

    write_segments(tmp_path / 'in', [(1.0, 2.0), (601.0, 602.0)])
    summary = replay(
        FusionPipeline(FusionModel(model)), tmp_path / 'in', tmp_path / 'out', progress=False
    )
    diags = read_bag(tmp_path / 'out')['/diagnostics']
    assert MAX_GAP_REPORTS < len(diags) <= MAX_GAP_REPORTS + 4
    assert any('diagnostics reports of the gap not written' in p for p in summary.problems)
    times = [t for t, _, _ in diags]
    assert times == sorted(times)


@pytest.mark.parametrize('period', [0.25, 2.0])
def test_diagnostics_follow_the_period(tmp_path: Path, model: Path, period: float) -> None:
    """``diagnostics_period`` sets the cadence in bag time, as the node's timer (it was fixed
    at 1 s in the replay)."""
    write_segments(tmp_path / 'in', [(1.0, 9.0)])
    out = tmp_path / f'out{period}'
    pipe = FusionPipeline(FusionModel(model))
    replay(pipe, tmp_path / 'in', out, progress=False, diagnostics_period=period)
    times = [t for t, _, _ in read_bag(out)['/diagnostics']]
    # one report per period through the 8 s, plus the final one at the last message
    assert abs(len(times) - (8.0 / period + 1)) <= 1
    steps = np.diff(times[:-1]) / 1e9
    np.testing.assert_allclose(steps, period, rtol=0, atol=1e-9)
    with pytest.raises(RuntimeConfigError, match='diagnostics_period'):
        replay(pipe, tmp_path / 'in', tmp_path / 'x', progress=False, diagnostics_period=0.0)


def test_rate_pacing_does_not_wait_through_a_long_gap(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At --rate 5 a 10-minute hole in the bag used to be slept through (120 s)."""
    from dmil_ros.runtime import replay as replay_mod

    write_segments(tmp_path / 'in', [(1.0, 1.5), (601.0, 601.5)])
    slept: list[float] = []
    monkeypatch.setattr(replay_mod.time, 'sleep', slept.append)
    replay(
        FusionPipeline(FusionModel(model)),
        tmp_path / 'in',
        tmp_path / 'out',
        rate=5.0,
        progress=False,
    )
    assert slept  # it does pace (5x is slower than the pipeline on any machine)
    # the sleeps are not real, so they add up: at most the 2 s of recorded bag / 5, never the
    # 600 s gap / 5
    assert max(slept) < 1.0


@pytest.mark.parametrize('batch', [1, 8])
def test_a_fixed_shape_session_keeps_the_batch_it_was_warmed_to(
    tmp_path: Path, model: Path, batch: int
) -> None:
    # a GPU session's calls are padded to one growing shape (model.py); a sweep completing
    # several frames, or the end of the bag, made a call of batch + k frames and doubled the
    # padded shape for the rest of the run. Run on the CPU with the GPU policy forced.
    write_bag(tmp_path / 'in', 4.0)
    fused = FusionModel(model, provider='cpu', fixed_shapes=True)
    sizes: list[int] = []
    run = fused._run

    def spy(image: np.ndarray, lidar: np.ndarray) -> dict[str, np.ndarray]:
        sizes.append(len(image))
        return run(image, lidar)

    fused._run = spy  # type: ignore[method-assign]
    summary = replay(FusionPipeline(fused), tmp_path / 'in', tmp_path / 'out', batch=batch,
                     progress=False)  # fmt: skip
    assert summary.frames > 0
    assert set(sizes) == {batch}
    assert fused.call_batch == batch


def _with_compressed_camera(src: Path, dst: Path) -> int:
    """``src`` plus what image_transport's compressed publisher adds beside each raw image:
    the same frame as a PNG CompressedImage on ``<camera>/compressed``; returns the count."""
    import cv2

    store = typestore()
    n = 0
    with Reader(src) as r, Writer(dst, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {
            c.topic: w.add_connection(c.topic, c.msgtype, typestore=store) for c in r.connections
        }
        kind = 'sensor_msgs/msg/CompressedImage'
        compressed = w.add_connection(f'{CAM}/compressed', kind, typestore=store)
        for conn, t, data in r.messages():
            w.write(conns[conn.topic], t, data)
            if conn.topic != CAM:
                continue
            msg = store.deserialize_cdr(data, conn.msgtype)
            rgb = np.asarray(msg.data).reshape(msg.height, msg.width, 3)
            ok, png = cv2.imencode('.png', np.ascontiguousarray(rgb[:, :, ::-1]))
            assert ok
            out = store.types[kind](
                header=msg.header, format='rgb8; png compressed bgr8', data=png.reshape(-1)
            )
            w.write(compressed, t + 1, store.serialize_cdr(out, kind))
            n += 1
    return n


def test_compressed_transport_replays_the_compressed_sub_topic(
    tmp_path: Path, model: Path
) -> None:
    """``image_transport: compressed`` with the default ``image_topic`` (the base topic) reads
    ``/camera/image_raw/compressed``, as the node subscribes; the raw topic beside it is not
    read (its messages would be Image, not CompressedImage)."""
    write_bag(tmp_path / 'raw', 3.0)
    n = _with_compressed_camera(tmp_path / 'raw', tmp_path / 'in')
    params = tmp_path / 'p.yaml'
    params.write_text('/**/fusion_node:\n  ros__parameters:\n    image_transport: compressed\n')
    summary = tmp_path / 's.json'
    args = ['replay', str(tmp_path / 'in'), '--model', str(model), '--no-progress']
    code = main(
        [*args, '--out', str(tmp_path / 'o'), '--params', str(params), '--summary', str(summary)]
    )
    assert code == 0
    data = json.loads(summary.read_text())
    assert data['frames'] == n == 60
    assert data['read']['messages'] == n + 30  # the compressed images and the sweeps only
    assert not data['problems']
    # the lossless PNGs decode to the raw frames: the same actions as the raw replay
    assert main([*args, '--out', str(tmp_path / 'r'), '--summary', str(tmp_path / 'r.json')]) == 0
    raw = json.loads((tmp_path / 'r.json').read_text())
    assert raw['actions'] == data['actions']


@pytest.mark.parametrize(
    'how',
    [
        ['--cmd-vel-stamped'],
        ['--params', 'stamped.yaml'],
        ['--cmd-vel', '--params', 'stamped.yaml'],
    ],
)
def test_cli_replay_writes_a_stamped_cmd_vel(tmp_path: Path, model: Path, how: list[str]) -> None:
    """``cmd_vel_stamped``: the bag's ~/cmd_vel is TwistStamped, each with its frame's header
    (the stamp and frame_id of that frame's ~/action), in the bytes rosbags serialises."""
    from dmil_ros.runtime.outputs import twist_cdr
    from dmil_ros.runtime.records import Header

    write_bag(tmp_path / 'in', 2.0)
    (tmp_path / 'stamped.yaml').write_text(
        '/**/fusion_node:\n  ros__parameters:\n    publish_cmd_vel: true\n'
        '    cmd_vel_stamped: true\n'
    )
    how = [str(tmp_path / a) if a.endswith('.yaml') else a for a in how]
    args = ['replay', str(tmp_path / 'in'), '--model', str(model), '--no-progress']
    assert main([*args, '--out', str(tmp_path / 'o'), *how]) == 0
    out = read_bag(tmp_path / 'o')
    kind = 'geometry_msgs/msg/TwistStamped'
    assert {k for _, k, _ in out['/fusion_node/cmd_vel']} == {kind}
    store = typestore()
    actions = [store.deserialize_cdr(d, k) for _, k, d in out['/fusion_node/action']]
    commands = [(t, store.deserialize_cdr(d, k), d) for t, k, d in out['/fusion_node/cmd_vel']]
    assert len(commands) == len(actions) == 40
    speeds = {'forward': (0.3, 0.0), 'left': (0.0, 0.6), 'right': (0.0, -0.6), 'stop': (0.0, 0.0)}
    for action, (_, cmd, data) in zip(actions, commands, strict=True):
        assert cmd.header == action.header  # the frame's stamp and frame_id
        assert (cmd.twist.linear.x, cmd.twist.angular.z) == speeds[action.name[0]]
        reference = store.serialize_cdr(cmd, kind)
        assert data == bytes(reference)
        h = Header(cmd.header.stamp.sec, cmd.header.stamp.nanosec, cmd.header.frame_id)
        assert data == twist_cdr(*speeds[action.name[0]], h)
    with Reader(tmp_path / 'o') as r:
        (conn,) = [c for c in r.connections if c.topic == '/fusion_node/cmd_vel']
        assert conn.msgtype == kind


def _under(src: Path, dst: Path, namespace: str) -> None:
    """``src`` with every topic moved under ``/<namespace>`` (a namespaced robot's recording)."""
    store = typestore()
    with Reader(src) as r, Writer(dst, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {
            c.topic: w.add_connection(f'/{namespace}{c.topic}', c.msgtype, typestore=store)
            for c in r.connections
        }
        for conn, t, data in r.messages():
            w.write(conns[conn.topic], t, data)


def test_cli_namespace_resolves_the_relative_default_input_topics(
    tmp_path: Path, model: Path, capsys: Any
) -> None:
    """M5: ``--namespace robot1`` reads /robot1/camera/image_raw and /robot1/lidar/points, as
    the node in that namespace subscribes to its relative default topics; the global topics
    of another robot are not read."""
    write_bag(tmp_path / 'global', 2.0)
    _under(tmp_path / 'global', tmp_path / 'in', NS)
    args = ['--model', str(model), '--no-progress']
    summary = tmp_path / 's.json'
    out = ['--out', str(tmp_path / 'o'), '--summary', str(summary)]
    assert main(['replay', str(tmp_path / 'in'), '--namespace', NS, *args, *out]) == 0
    data = json.loads(summary.read_text())
    assert data['frames'] == 40
    assert f'/{NS}/fusion_node/action' in data['written']
    last = read_bag(tmp_path / 'o')['/diagnostics'][-1]
    values = {kv.key for kv in typestore().deserialize_cdr(last[2], last[1]).status[0].values}
    assert f'/{NS}{CAM} rate (Hz)' in values  # diagnostics name the resolved topics
    # the un-namespaced bag, replayed for robot1: nothing of robot1's, named as resolved
    code = main(
        [
            'replay',
            str(tmp_path / 'global'),
            '--namespace',
            NS,
            *args,
            '--out',
            str(tmp_path / 'x'),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"topic '/{NS}{CAM}': no message in the bag" in err
    # an absolute parameter keeps the global topic under any namespace
    params = tmp_path / 'p.yaml'
    params.write_text(
        f'/**/fusion_node:\n  ros__parameters:\n    image_topic: {CAM}\n    points_topic: {LID}\n'
    )
    argv = ['replay', str(tmp_path / 'global'), '--namespace', NS, '--params', str(params)]
    assert main([*argv, *args, '--out', str(tmp_path / 'g')]) == 0


def test_a_pipeline_with_relative_topics_is_refused(tmp_path: Path, model: Path) -> None:
    from dmil_ros.runtime.pipeline import PipelineConfig

    write_bag(tmp_path / 'in', 1.0)
    config = PipelineConfig(camera_topic='camera/image_raw', lidar_topic='lidar/points')
    pipe = FusionPipeline(FusionModel(model, provider='cpu'), config)
    with pytest.raises(RuntimeConfigError, match="'camera/image_raw' is not resolved"):
        replay(pipe, tmp_path / 'in', tmp_path / 'out', namespace=NS, progress=False)
    assert not (tmp_path / 'out').exists()
