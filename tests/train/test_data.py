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

"""Training data from simulator bags: pairing, labels, families, cache, damaged bags."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dmil_ros.actions import FAMILIES
from dmil_ros.bagio.reader import RobustReader
from dmil_ros.runtime.faults import stamp_ns
from dmil_ros.runtime.preprocess import PreprocessSpec
from dmil_ros.sim import SimConfig, record_bag
from dmil_ros.train import data as data_mod
from dmil_ros.train.config import DataConfig
from dmil_ros.train.data import discretise_twist, load_bags, read_bag
from dmil_ros.train.errors import DataError
from tests.sim.scene_bags import SHORT, planned_families, record_edited

SPEC = PreprocessSpec()
FRAMES = 60


@pytest.fixture(scope='module')
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('bags') / 'drive'
    record_bag(SimConfig(frames=FRAMES, seed=7), path)
    return path


def _truth(bag: Path) -> dict[int, tuple[int, str]]:
    """stamp (ns) -> (action, family) straight from /sim/ground_truth (independent reader)."""
    out = {}
    for _, msg in RobustReader(bag, topics=['/sim/ground_truth']).decoded():
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        out[stamp] = (int(msg.action), str(msg.family))
    return out


def test_pairs_labels_and_families_match_ground_truth(bag: Path) -> None:
    arrays, stats = read_bag(bag, DataConfig(), SPEC)
    assert stats.error is None
    assert FRAMES - 2 <= len(arrays) <= FRAMES  # frames after the last sweep cannot pair
    assert arrays.image.shape[1:] == SPEC.image_shape
    assert arrays.lidar.shape[1:] == SPEC.lidar_shape
    assert (arrays.lidar[:, 0] > 0).mean() > 0.3  # a real range image, not zeros
    truth = _truth(bag)
    for t, y, fam in zip(arrays.stamp, arrays.action, arrays.family, strict=True):
        action, family = truth[int(t)]
        assert y == action
        assert fam == -1 or FAMILIES[fam] == family  # -1: a two-scene pair (test below)
    assert (arrays.family == -1).sum() == stats.two_scenes
    assert np.all(np.diff(arrays.stamp) > 0)


def test_pairs_spanning_two_scenes_have_no_family(tmp_path: Path) -> None:
    # short segments: many boundaries; the expected scene of each side comes from the
    # simulator's plan (the sweep nearest the camera frame, as the pairer picks it)
    record_bag(SHORT, tmp_path / 'short')
    arrays, stats = read_bag(tmp_path / 'short', DataConfig(), SPEC)
    expected, _ = planned_families(arrays.stamp.tolist(), unknown=set())
    assert arrays.family.tolist() == expected
    assert stats.two_scenes == expected.count(-1) > 0
    # the count survives the cache
    load_bags([tmp_path / 'short'], DataConfig(), SPEC, tmp_path / 'cache')
    _, cached = load_bags([tmp_path / 'short'], DataConfig(), SPEC, tmp_path / 'cache')
    assert cached[0].cached
    assert cached[0].two_scenes == stats.two_scenes


def test_a_sweep_without_usable_scene_truth_gets_no_family(tmp_path: Path) -> None:
    # the sweep's truth lost, malformed or contradicted: its pairs cannot be confirmed as one
    # scene (family -1, counted); a malformed message is counted and skipped, never raised
    drop, malformed, conflict = {1, 4, 9}, {6}, {12}
    bag = record_edited(tmp_path / 'edited', drop, malformed, conflict)
    arrays, stats = read_bag(bag, DataConfig(), SPEC)
    expected, unconfirmed = planned_families(arrays.stamp, drop | malformed | conflict)
    assert arrays.family.tolist() == expected
    assert stats.unconfirmed == unconfirmed > 0
    assert stats.skipped['/sim/lidar_truth:AttributeError'] == 1
    assert stats.two_scenes == expected.count(-1) - unconfirmed > 0
    load_bags([bag], DataConfig(), SPEC, tmp_path / 'cache')
    _, cached = load_bags([bag], DataConfig(), SPEC, tmp_path / 'cache')
    assert cached[0].cached
    assert (cached[0].unconfirmed, cached[0].two_scenes) == (unconfirmed, stats.two_scenes)


def test_when_no_sweep_truth_is_readable_no_pair_has_a_family(tmp_path: Path) -> None:
    # unlike a bag without the topic: two-scene pairs must not pass as one scene
    every = set(range(1000))
    bag = record_edited(tmp_path / 'bad', drop=set(), malformed=every, conflict=set())
    arrays, stats = read_bag(bag, DataConfig(), SPEC)
    expected, unconfirmed = planned_families(arrays.stamp, every)
    assert arrays.family.tolist() == expected == [-1] * len(arrays)
    assert stats.unconfirmed == unconfirmed == len(arrays)


def test_cmd_vel_labels_agree_with_expert_actions(bag: Path) -> None:
    by_action, _ = read_bag(bag, DataConfig(), SPEC)
    by_twist, _ = read_bag(bag, DataConfig(label_source='cmd_vel'), SPEC)
    assert np.array_equal(by_action.stamp, by_twist.stamp)
    assert np.array_equal(by_action.action, by_twist.action)


def test_twist_stamped_cmd_vel_labels(bag: Path, tmp_path: Path) -> None:
    """Nav2 on Jazzy publishes geometry_msgs/TwistStamped on /cmd_vel: same labels."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    from dmil_ros.bagio import typestore

    store = typestore()
    stamped = tmp_path / 'stamped'
    with Reader(bag) as reader, Writer(stamped, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {}
        for c in reader.connections:
            kind = 'geometry_msgs/msg/TwistStamped' if c.topic == '/cmd_vel' else c.msgtype
            conns[c.id] = w.add_connection(c.topic, kind, typestore=store)
        for c, t, data in reader.messages():
            raw = bytes(data)
            if c.topic == '/cmd_vel':
                twist = store.deserialize_cdr(raw, c.msgtype)
                header = store.types['std_msgs/msg/Header'](
                    stamp=store.types['builtin_interfaces/msg/Time'](sec=0, nanosec=0),
                    frame_id='base_link',
                )
                msg = store.types['geometry_msgs/msg/TwistStamped'](header=header, twist=twist)
                raw = store.serialize_cdr(msg, 'geometry_msgs/msg/TwistStamped')
            w.write(conns[c.id], t, raw)
    by_twist, _ = read_bag(bag, DataConfig(label_source='cmd_vel'), SPEC)
    by_stamped, stats = read_bag(stamped, DataConfig(label_source='cmd_vel'), SPEC)
    assert not stats.skipped.get('/cmd_vel:AttributeError')
    assert np.array_equal(by_twist.action, by_stamped.action)
    assert np.array_equal(by_twist.stamp, by_stamped.stamp)


def test_cache_round_trip(bag: Path, tmp_path: Path) -> None:
    fresh, stats = load_bags([bag], DataConfig(), SPEC, tmp_path)
    assert not stats[0].cached
    assert list(tmp_path.glob('*.npz'))
    again, stats = load_bags([bag], DataConfig(), SPEC, tmp_path)
    assert stats[0].cached
    for name in ('image', 'lidar', 'action', 'family', 'stamp', 'segment'):
        assert np.array_equal(getattr(fresh, name), getattr(again, name))
    # another slop is another cache entry
    load_bags([bag], DataConfig(slop=0.07), SPEC, tmp_path)
    assert len(list(tmp_path.glob('*.npz'))) == 2


def test_truncated_bag_yields_what_was_read(bag: Path, tmp_path: Path) -> None:
    broken = tmp_path / 'broken'
    shutil.copytree(bag, broken)
    mcap = next(broken.glob('*.mcap'))
    with mcap.open('r+b') as f:
        f.truncate(mcap.stat().st_size // 2)
    arrays, stats = read_bag(broken, DataConfig(), SPEC)
    assert stats.error is not None
    assert 'broken' in stats.error
    assert 0 < len(arrays) < FRAMES


def test_missing_topic_and_missing_bag_are_named(bag: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match='/no/such/topic'):
        read_bag(bag, DataConfig(action_topic='/no/such/topic'), SPEC)
    with pytest.raises(DataError, match='nowhere'):
        load_bags([tmp_path / 'nowhere'], DataConfig(), SPEC)


def test_every_camera_frame_is_a_pair_or_counted_the_last_ones_too(bag: Path) -> None:
    arrays, stats = read_bag(bag, DataConfig(), SPEC)
    cams = [stamp_ns(m) for _, m in RobustReader(bag, topics=['/camera/image_raw']).decoded()]
    # every camera frame is either a pair or a counted skip (review6 #9: 59 pairs, none counted)
    assert len(arrays) + sum(stats.skipped.values()) == len(cams)
    # the frames after the last sweep pair with it at the end (review 10, 6)
    assert cams[-1] in arrays.stamp.tolist()


def test_non_finite_cmd_vel_is_refused() -> None:
    cfg = DataConfig()
    for lx, az in ((float('nan'), 0.0), (float('inf'), 0.0), (0.0, float('-inf'))):
        with pytest.raises(DataError, match='not finite'):
            discretise_twist(lx, az, cfg)


def test_code_change_misses_the_cache_and_hits_keep_skip_counts(
    bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = DataConfig()
    _, first = load_bags([bag], cfg, SPEC, tmp_path)
    _, again = load_bags([bag], cfg, SPEC, tmp_path)
    assert again[0].cached
    assert again[0].skipped == first[0].skipped
    monkeypatch.setattr(data_mod, 'code_fingerprint', lambda: 'changed-code')
    _, changed = load_bags([bag], cfg, SPEC, tmp_path)
    assert not changed[0].cached
    assert len(list(tmp_path.glob('*.npz'))) == 2


@pytest.mark.parametrize(
    ('name', 'edit'),
    [
        # the review's case: the /expert/action strings now map to other class indices
        ('actions.py', lambda t: t.replace("'left', 'right'", "'right', 'left'")),
        ('runtime/faults.py', lambda t: t + '\n# changed\n'),  # stamp_ns: the pairing stamps
        ('bagio/typestore.py', lambda t: t + '\n# changed\n'),
        ('bagio/reader.py', lambda t: t + '\n# changed\n'),
        ('msg/GroundTruth.msg', lambda t: t.replace('string family', 'string scene')),
        ('msg/Extra.msg', lambda t: 'int32 x\n'),  # a message type added
    ],
)
def test_code_fingerprint_covers_labels_stamps_reading_and_message_types(
    name: str, edit: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of the package with one file changed gets another cache key: a reordered
    ACTIONS served the old labels from the cache (review 19b #4)."""
    import dmil_ros

    copy = tmp_path / 'dmil_ros'
    shutil.copytree(Path(dmil_ros.__file__).parent, copy,
                    ignore=shutil.ignore_patterns('__pycache__'))  # fmt: skip
    monkeypatch.setattr(dmil_ros, '__file__', str(copy / '__init__.py'))
    before = data_mod.code_fingerprint.__wrapped__()
    assert before == data_mod.code_fingerprint()  # the copy is the package
    target = copy / name
    text = target.read_text() if target.exists() else ''
    target.write_text(edit(text))
    assert target.read_text() != text
    if name == 'actions.py':
        assert "('forward', 'right', 'left', 'stop')" in target.read_text()
    assert data_mod.code_fingerprint.__wrapped__() != before


def test_concurrent_cache_writes_of_one_entry_all_succeed(tmp_path: Path) -> None:
    # two trainings sharing a cache decode the same bag at once (benchmarks/train_study.py):
    # they used to share one temporary name, and the slower writer's rename failed
    from concurrent.futures import ThreadPoolExecutor

    from dmil_ros.train.dataset import Arrays

    n = 200
    rng = np.random.default_rng(0)
    arrays = Arrays(
        image=rng.random((n, *SPEC.image_shape), dtype=np.float32),
        lidar=rng.random((n, *SPEC.lidar_shape), dtype=np.float32),
        action=rng.integers(0, 4, n), family=rng.integers(-1, 4, n),
        stamp=np.arange(n, dtype=np.int64), segment=np.zeros(n, np.int64),
    )  # fmt: skip
    path = tmp_path / 'entry.npz'
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: arrays.save(path), range(12)))
    back = Arrays.load(path)
    assert np.array_equal(back.image, arrays.image)
    assert [p.name for p in tmp_path.iterdir()] == ['entry.npz']  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # a shared cache stays readable


def test_an_unwritable_cache_is_logged_not_fatal(
    bag: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / 'file'
    blocked.write_text('not a directory')
    arrays, stats = load_bags([bag], DataConfig(), SPEC, blocked / 'cache')
    assert len(arrays) == stats[0].pairs > 0
    assert 'not written' in caplog.text


def test_a_failed_side_file_write_leaves_no_temporary_file(
    bag: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / 'cache'
    cache.mkdir()
    side = cache / f'{bag.name}-{data_mod.cache_key(bag, DataConfig(), SPEC)}.json'
    side.mkdir()  # the rename onto it fails
    arrays, _ = load_bags([bag], DataConfig(), SPEC, cache)
    assert len(arrays) > 0
    assert 'not written' in caplog.text
    assert sorted(p.name for p in cache.iterdir()) == [side.name]


def test_a_torn_cache_entry_is_decoded_again(
    bag: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, _ = load_bags([bag], DataConfig(), SPEC, tmp_path / 'cache')
    (entry,) = (tmp_path / 'cache').glob('*.npz')
    entry.write_bytes(entry.read_bytes()[:1000])  # a crash mid-write, before fsync existed
    again, stats = load_bags([bag], DataConfig(), SPEC, tmp_path / 'cache')
    assert not stats[0].cached
    assert 'decoding the bag again' in caplog.text
    assert np.array_equal(again.image, first.image)
    _, rewritten = load_bags([bag], DataConfig(), SPEC, tmp_path / 'cache')
    assert rewritten[0].cached  # the entry was written whole again


@pytest.mark.parametrize(
    ('data', 'topic', 'found', 'expected'),
    [
        ({'action_topic': '/cmd_vel'}, "'/cmd_vel' (data.action_topic)",
         'geometry_msgs/msg/Twist', 'std_msgs/msg/String'),
        ({'label_source': 'cmd_vel', 'cmd_vel_topic': '/expert/action'},
         "'/expert/action' (data.cmd_vel_topic)", 'std_msgs/msg/String',
         'geometry_msgs/msg/Twist or geometry_msgs/msg/TwistStamped'),
        ({'lidar_topic': '/scan'}, "'/scan' (data.lidar_topic)", 'sensor_msgs/msg/LaserScan',
         'sensor_msgs/msg/PointCloud2'),
    ],
)  # fmt: skip
def test_a_topic_of_the_wrong_type_is_named_in_the_no_pair_error(
    bag: Path, data: dict[str, str], topic: str, found: str, expected: str
) -> None:
    """Every message of such a topic fails to read; the final error named neither the topic
    nor its type (the cause was on an INFO line only; review 22a #8)."""
    with pytest.raises(DataError, match='no labelled camera') as info:
        load_bags([bag], DataConfig(**data), SPEC, None, progress=False)  # type: ignore[arg-type]
    text = str(info.value)
    assert f'no message of topic {topic} could be read: it is {found} in drive' in text
    assert f'expected {expected}' in text
