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

"""Bags written by the simulator, read back with plain rosbags (standard typestore + .msg)."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from ruamel.yaml import YAML

from dmil_ros.actions import ACTIONS, COMPONENTS, FAMILIES
from dmil_ros.cli import main
from dmil_ros.sim import TOPICS, RecordError, SimConfig, Simulator, read_ground_truth, record_bag

CFG = SimConfig(frames=40, seed=11, segment_frames=(10, 20))
GT_TYPES = ('dmil_ros/msg/GroundTruth', 'dmil_ros/msg/SweepTruth')


def plain_store(bag: Path) -> Any:
    """Humble's standard store plus the custom types rebuilt from the bag's own definitions."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    with Reader(bag) as reader:
        for conn in reader.connections:
            if conn.msgtype in GT_TYPES:
                store.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
    return store


def read_all(bag: Path) -> dict[str, list[tuple[int, Any]]]:
    store = plain_store(bag)
    out: dict[str, list[tuple[int, Any]]] = {}
    with Reader(bag) as reader:
        for conn, ts, raw in reader.messages():
            out.setdefault(conn.topic, []).append((ts, store.deserialize_cdr(raw, conn.msgtype)))
    return out


@pytest.fixture(scope='module')
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('sim') / 'drive'
    record_bag(CFG, path)
    return path


@pytest.fixture(scope='module')
def msgs(bag: Path) -> dict[str, list[tuple[int, Any]]]:
    return read_all(bag)


def stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def test_every_topic_is_present_with_the_expected_counts(msgs: dict[str, list[Any]]) -> None:
    assert set(msgs) == set(TOPICS)
    n = CFG.frames
    for topic in ('/camera/image_raw', '/camera/camera_info', '/cmd_vel', '/expert/action'):
        assert len(msgs[topic]) == n
    assert len(msgs['/sim/ground_truth']) == n
    assert len(msgs['/lidar/points']) == len(msgs['/scan']) == n // 2
    assert len(msgs['/sim/lidar_truth']) == n // 2
    assert len(msgs['/tf_static']) == 1


def test_images_are_well_formed(msgs: dict[str, list[Any]]) -> None:
    for ts, img in msgs['/camera/image_raw']:
        assert img.encoding == 'rgb8'
        assert (img.width, img.height) == (CFG.width, CFG.height)
        assert img.step == 3 * img.width
        assert len(img.data) == img.step * img.height
        assert img.header.frame_id == 'camera_optical_frame'
        assert ts == stamp(img)
    for (_, info), (_, img) in zip(
        msgs['/camera/camera_info'], msgs['/camera/image_raw'], strict=True
    ):
        assert stamp(info) == stamp(img)
        assert (info.width, info.height) == (img.width, img.height)
        assert info.k[8] == 1.0
        assert info.k[0] > 0
    # the principal point in ROS convention (pixel centres at integers) is where the renderer's
    # own ray table crosses the optical axis
    cam = Simulator(CFG).camera
    _, info = msgs['/camera/camera_info'][0]
    assert info.k[2] == pytest.approx(np.interp(0.0, cam.xn, np.arange(CFG.width)), abs=1e-9)
    assert info.k[5] == pytest.approx(np.interp(0.0, cam.yn, np.arange(CFG.height)), abs=1e-9)
    assert (info.p[2], info.p[6]) == (info.k[2], info.k[5])


def test_bag_opens_on_humble_and_tf_static_comes_first(bag: Path) -> None:
    """Metadata version 8 (Humble's rosbag2 cannot parse version 9's QoS lists), and the
    static transforms precede every sensor message (frame 0's jitter may be negative)."""
    meta = YAML(typ='safe').load((bag / 'metadata.yaml').read_text())[
        'rosbag2_bagfile_information'
    ]
    assert meta['version'] == 8
    assert all(
        isinstance(t['topic_metadata']['offered_qos_profiles'], str)
        for t in meta['topics_with_message_count']
    )
    with Reader(bag) as reader:
        order = [(ts, conn.topic) for conn, ts, _ in reader.messages()]
    assert order[0][1] == '/tf_static'
    assert order[0][0] == min(ts for ts, _ in order)


def test_pointclouds_are_well_formed(msgs: dict[str, list[Any]]) -> None:
    want = [
        ('x', 0, 7),
        ('y', 4, 7),
        ('z', 8, 7),
        ('intensity', 12, 7),
        ('ring', 16, 4),
        ('time', 18, 7),
    ]
    for ts, pc in msgs['/lidar/points']:
        assert [(f.name, f.offset, f.datatype) for f in pc.fields] == want
        assert all(f.count == 1 for f in pc.fields)
        assert pc.height == 1
        assert pc.point_step == 22
        assert pc.row_step == pc.point_step * pc.width
        assert len(pc.data) == pc.row_step * pc.height
        assert pc.is_dense
        assert not pc.is_bigendian
        assert pc.header.frame_id == 'lidar_link'
        assert ts == stamp(pc)
        rec = np.frombuffer(
            pc.data.tobytes(),
            np.dtype(
                {
                    'names': ['x', 'y', 'z', 'intensity', 'ring', 'time'],
                    'formats': ['<f4', '<f4', '<f4', '<f4', '<u2', '<f4'],
                    'offsets': [0, 4, 8, 12, 16, 18],
                    'itemsize': 22,
                }
            ),
        )
        assert np.all(np.isfinite(rec['x']))
        assert set(np.unique(rec['ring'])) <= set(range(16))
        assert rec['time'].min() >= 0.0
        assert rec['time'].max() < 0.1
        r = np.sqrt(rec['x'] ** 2 + rec['y'] ** 2 + rec['z'] ** 2)
        assert r.min() > 0.29
        assert r.max() <= CFG.max_range_m
        elev = np.degrees(np.arcsin(rec['z'] / r))
        assert np.all(np.abs(elev - (-15 + 2 * rec['ring'].astype(float))) < 0.5)


def test_scans_are_well_formed(msgs: dict[str, list[Any]]) -> None:
    for (_, scan), (_, pc) in zip(msgs['/scan'], msgs['/lidar/points'], strict=True):
        n = len(scan.ranges)
        assert n == 360
        assert len(scan.intensities) == n
        assert scan.angle_min + (n - 1) * scan.angle_increment == pytest.approx(
            scan.angle_max, abs=1e-5
        )
        assert stamp(scan) == stamp(pc)
        finite = np.isfinite(scan.ranges)
        assert finite.mean() > 0.9
        assert np.all(scan.ranges[finite] >= scan.range_min)


def test_ground_truth_one_per_image_with_the_image_stamp(msgs: dict[str, list[Any]]) -> None:
    images = [stamp(m) for _, m in msgs['/camera/image_raw']]
    truths = [m for _, m in msgs['/sim/ground_truth']]
    actions = [m.data for _, m in msgs['/expert/action']]
    assert [stamp(m) for m in truths] == images
    sim = Simulator(CFG)
    for k, (gt, action) in enumerate(zip(truths, actions, strict=True)):
        assert gt.frame == k
        assert gt.family in FAMILIES
        assert ACTIONS[gt.action] == action
        seg = sim.segments[gt.segment]
        assert (gt.family, gt.camera_latent, gt.lidar_latent) == (
            seg.family,
            seg.camera_latent,
            seg.lidar_latent,
        )


def test_lidar_truth_one_per_sweep_names_the_scene_it_was_rendered_in(
    msgs: dict[str, list[Any]],
) -> None:
    sweeps = [stamp(m) for _, m in msgs['/lidar/points']]
    truths = [m for _, m in msgs['/sim/lidar_truth']]
    assert [stamp(m) for m in truths] == sweeps
    sim = Simulator(CFG)
    for j, gt in enumerate(truths):
        assert gt.sweep == j
        assert gt.header.frame_id == 'lidar_link'
        # the segment whose nominal time span holds the sweep's nominal time
        t = sim.lidar_nominal[j]
        (seg,) = [s for s in sim.segments if s.t0 <= t < s.t1]
        assert (gt.segment, gt.family) == (seg.index, seg.family)


def test_cmd_vel_follows_the_expert_action(msgs: dict[str, list[Any]]) -> None:
    for (_, twist), (_, action) in zip(msgs['/cmd_vel'], msgs['/expert/action'], strict=True):
        w = twist.angular.z
        if action.data == 'left':
            assert w > 0.5
        elif action.data == 'right':
            assert w < -0.5
        elif action.data == 'stop':
            assert (twist.linear.x, w) == (0.0, 0.0)
        else:
            assert abs(w) < 0.2
            assert twist.linear.x > 0.3


def test_tf_static_names_the_sensor_frames(msgs: dict[str, list[Any]]) -> None:
    ((_, tf),) = msgs['/tf_static']
    children = {t.child_frame_id: t.header.frame_id for t in tf.transforms}
    assert children == {
        'lidar_link': 'base_link',
        'camera_link': 'base_link',
        'camera_optical_frame': 'camera_link',
    }


def test_sidecar_and_metadata_hold_the_ground_truth(bag: Path) -> None:
    gt = read_ground_truth(bag)
    assert gt['seed'] == CFG.seed
    assert gt['frames'] == CFG.frames
    for fam in FAMILIES:
        assert set(gt['families'][fam]['pid']) == set(COMPONENTS)
    assert set(gt['mix_pid']) == set(COMPONENTS)
    assert sum(gt['empirical']['family_frames'].values()) == CFG.frames
    meta = YAML(typ='safe').load((bag / 'metadata.yaml').read_text('utf-8'))
    custom = meta['rosbag2_bagfile_information']['custom_data']
    assert json.loads(custom['dmil_ros.ground_truth']) == gt


def test_same_seed_gives_byte_identical_bags(tmp_path: Path) -> None:
    cfg = SimConfig(frames=12, seed=3)
    for d in ('a', 'b'):
        (tmp_path / d).mkdir()
        record_bag(cfg, tmp_path / d / 'bag')
    a, b = (tmp_path / d / 'bag' / 'bag.mcap' for d in ('a', 'b'))
    assert a.read_bytes() == b.read_bytes()


def test_sqlite3_and_zstd_storages_read_back(tmp_path: Path) -> None:
    cfg = SimConfig(frames=6, seed=1)
    record_bag(cfg, tmp_path / 'sq', storage='sqlite3')
    record_bag(cfg, tmp_path / 'zs', compression='zstd')
    sq, zs = read_all(tmp_path / 'sq'), read_all(tmp_path / 'zs')
    for topic in TOPICS:
        assert len(sq[topic]) == len(zs[topic])
    for (_, a), (_, b) in zip(sq['/camera/image_raw'], zs['/camera/image_raw'], strict=True):
        assert np.array_equal(a.data, b.data)


def test_existing_output_and_bad_storage_are_refused(tmp_path: Path) -> None:
    (tmp_path / 'exists').mkdir()
    with pytest.raises(RecordError, match='exists'):
        record_bag(SimConfig(frames=2), tmp_path / 'exists')
    with pytest.raises(RecordError, match="'lz4'"):
        record_bag(SimConfig(frames=2), tmp_path / 'x', storage='lz4')
    with pytest.raises(RecordError, match='sidecar'):
        read_ground_truth(tmp_path / 'exists')


def test_cli_simulate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'cli'
    rc = main(
        [
            'simulate',
            '--out',
            str(out),
            '--frames',
            '8',
            '--seed',
            '2',
            '--mix',
            'S=1',
            '--no-progress',
        ]
    )
    assert rc == 0
    gt = read_ground_truth(out)
    assert gt['mix'] == {'R': 0.0, 'U_camera': 0.0, 'U_lidar': 0.0, 'S': 1.0}
    assert gt['mix_pid']['synergy'] == pytest.approx(1.0, abs=1e-6)
    # the design's PID and the recorded frames' (8 frames: one scene, one XOR cell pair), each
    # named as what it is (the design's was printed as the bag's ground truth)
    err = capsys.readouterr().err
    recorded = gt['empirical']['pid']
    assert 'ground-truth PID, design of the mix (bits): R 0.000' in err
    assert f'ground-truth PID, recorded frames (bits): R {recorded["redundancy"]:.3f}' in err
    assert main(['simulate', '--out', str(tmp_path / 'bad'), '--mix', 'Q=1']) == 2
    assert "'Q'" in capsys.readouterr().err


DEMO = Path(__file__).resolve().parents[2] / 'bags' / 'hallway_demo'


def test_shipped_demo_bag_reads_back_with_every_family() -> None:
    msgs = read_all(DEMO)
    assert set(msgs) == set(TOPICS)
    truths = [m for _, m in msgs['/sim/ground_truth']]
    assert {t.family for t in truths} == set(FAMILIES)
    assert {ACTIONS[t.action] for t in truths} == set(ACTIONS)
    assert len(msgs['/camera/image_raw']) == len(truths)
    gt = read_ground_truth(DEMO)
    assert gt['families']['S']['pid']['synergy'] >= 0.9
    assert sum((DEMO / f).stat().st_size for f in ('hallway_demo.mcap',)) < 10_000_000


@pytest.mark.parametrize('data', [b'{"format": ', b'\xd9\xff\x00 not text'])
def test_an_unreadable_sidecar_is_named(tmp_path: Path, data: bytes) -> None:
    from dmil_ros.sim.record import RecordError, read_ground_truth

    (tmp_path / 'ground_truth.json').write_bytes(data)
    with pytest.raises(RecordError, match=r"ground_truth.json': unreadable"):
        read_ground_truth(tmp_path)


def test_an_interrupted_recording_leaves_no_half_bag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C mid-recording left an unterminated .mcap without metadata, which a rerun refused
    (the folder exists) and replay / audit salvaged as damaged (review 20b #12)."""
    from dmil_ros.sim import messages

    calls = {'n': 0}
    image_msg = messages.image_msg

    def interrupt_at_ten(event: Any) -> Any:
        calls['n'] += 1
        if calls['n'] == 10:
            raise KeyboardInterrupt
        return image_msg(event)

    monkeypatch.setattr(messages, 'image_msg', interrupt_at_ten)
    with pytest.raises(KeyboardInterrupt):
        record_bag(SimConfig(frames=40, seed=3), tmp_path / 'drive')
    assert not (tmp_path / 'drive').exists()
    monkeypatch.setattr(messages, 'image_msg', image_msg)
    record_bag(SimConfig(frames=40, seed=3), tmp_path / 'drive')  # the same --out works now
    assert (tmp_path / 'drive' / 'metadata.yaml').is_file()


def test_missing_parents_are_created_and_a_file_in_the_way_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """simulate refused a missing parent ("parent directory does not exist") where replay,
    audit and train create it, and named a file in the way the same way (review 22d F7)."""
    record_bag(SimConfig(frames=2), tmp_path / 'no' / 'such')
    assert read_ground_truth(tmp_path / 'no' / 'such')['frames'] == 2
    out = tmp_path / 'a' / 'b' / 'run'
    assert main(['simulate', '--out', str(out), '--frames', '2', '--no-progress']) == 0
    assert read_ground_truth(out)['frames'] == 2
    (tmp_path / 'file').write_text('x')
    for parent in (tmp_path / 'file', tmp_path / 'file' / 'deeper'):
        with pytest.raises(RecordError, match=r"file'? is a file, not a directory"):
            record_bag(SimConfig(frames=2), parent / 'run')
        capsys.readouterr()
        argv = ['simulate', '--out', str(parent / 'run'), '--frames', '2', '--no-progress']
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert f'{str(tmp_path / "file")!r} is a file, not a directory' in err[0]
    assert main(['simulate', '--out', str(out), '--frames', '2', '--no-progress']) == 2
    assert 'already exists' in capsys.readouterr().err


def test_a_huge_segment_length_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--segment-frames 2**63 ended in numpy's traceback (review 22d F5)."""
    argv = ['simulate', '--out', str(tmp_path / 'x'), '--frames', '20', '--no-progress']
    assert main([*argv, '--segment-frames', str(2**63)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert 'segment_frames=' in err[0]
    assert not (tmp_path / 'x').exists()


def test_a_recording_ending_just_before_2038_stamps_in_int32_seconds(tmp_path: Path) -> None:
    """Time.sec beyond int32 crashed the writer with struct.error (review 22d F2)."""
    top = 2**31 * 1_000_000_000
    record_bag(SimConfig(frames=4, seed=1, start_time_ns=top - 300_000_000), tmp_path / 'late')
    msgs = read_all(tmp_path / 'late')
    assert max(ts for ts, _ in msgs['/lidar/points']) < top
    assert max(m.header.stamp.sec for _, m in msgs['/camera/image_raw']) == 2**31 - 1


@pytest.mark.parametrize('error', [OSError(errno.ENOSPC, 'No space left'), KeyboardInterrupt()])
def test_a_failed_sidecar_write_leaves_no_half_bag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    """The sidecar was written after the clean-up of unfinished bags, in place: a full disk
    (or Ctrl-C) there left a finished-looking bag with a truncated ground_truth.json, which a
    rerun refused to replace (review 22d F4)."""
    real_open = Path.open

    def open_(self: Path, mode: str = 'r', *args: Any, **kwargs: Any) -> Any:
        if self.name.startswith('ground_truth.json') and mode[0] in 'wx':
            with real_open(self, mode, *args, **kwargs) as f:
                f.write(b'{"format' if 'b' in mode else '{"format')
            raise error
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, 'open', open_)
    with pytest.raises(type(error)):
        record_bag(SimConfig(frames=4, seed=3), tmp_path / 'drive')
    assert not (tmp_path / 'drive').exists()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(Path, 'open', real_open)
    record_bag(SimConfig(frames=4, seed=3), tmp_path / 'drive')  # the same --out works now
    assert read_ground_truth(tmp_path / 'drive')['frames'] == 4
