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

"""Training data from rosbag2: decode, pair, label, preprocess (runtime code), cache.

For each bag:

1. read the camera, LiDAR, label and ground-truth topics with
   :class:`dmil_ros.bagio.reader.RobustReader` (``rosbags``, typestore
   :func:`dmil_ros.bagio.typestore`; a damaged bag is salvaged up to the damage);
2. decode with :mod:`dmil_ros.runtime.decode` and preprocess with
   :mod:`dmil_ros.runtime.preprocess` (the node's own code, so training input == runtime input);
   a message that fails to decode is counted and skipped;
3. pair each camera frame with the nearest LiDAR sweep within ``slop``
   (:class:`dmil_ros.runtime.pairing.ApproxTimePairer`, the node's pairer);
4. label each pair (``data.label_source``): the nearest action / cmd_vel message by receive time
   within ``slop`` of the camera message's receive time (see :mod:`dmil_ros.train.config` for the
   cmd_vel thresholds); frames without a label are dropped and counted;
5. attach the scene family from ``/sim/ground_truth`` (matched on the exact camera stamp), -1
   when the bag has none. Where the bag also names each sweep's scene (``/sim/lidar_truth``)
   and the pair's camera frame and sweep come from two different scene segments (a boundary:
   the simulator switches scenes between frames), the pair has no single family: -1 too, and
   it is counted (``BagStats.two_scenes``). Such a pair is still trained on and counts in every
   overall figure (accuracy, synergy indicator, confusion); the per-family and gate = family
   figures leave it out. A pair whose sweep has no usable truth message, or two that disagree,
   in a bag that has the topic cannot be confirmed as one scene: family -1 as well, counted as
   ``BagStats.unconfirmed`` (:mod:`dmil_ros.scenes`).

Decoded tensors are cached per bag as ``.npz`` (loaded with ``allow_pickle=False``) under a key
that hashes the bag's files (names, sizes, mtimes), the data config, the preprocess spec and
:func:`code_fingerprint` (the source of the bag reading / decoding / preprocessing / pairing /
labelling code, the action and family names, the message definitions and the package version, so
a code change never serves stale tensors); the bag's skip counts
are kept beside it (``.json``) and reported again on a cache hit.

Camera frames still waiting for a later LiDAR sweep when the bag ends are paired with the last
one (:meth:`ApproxTimePairer.finish`, as the replay and the audit do); a cmd_vel message with a
non-finite component is counted as ``<cmd_vel_topic>:non_finite`` (skipped, never labelled).
A bag that breaks mid-way yields the pairs read so far, and the error is logged and returned.
A camera, LiDAR or label topic none of whose messages could be read (most likely the wrong
type) is logged with the type the bag records for it, and named, with the types expected, in the
error that no pair was found.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dmil_ros.actions import ACTION_INDEX
from dmil_ros.atomic import atomic_write_text, remove_stale_temporaries
from dmil_ros.runtime.faults import stamp_ns
from dmil_ros.runtime.preprocess import PreprocessSpec, prepare_image, prepare_points
from dmil_ros.scenes import TWO_SCENES, UNCONFIRMED, UNREADABLE, FrameLabels, SweepScenes
from dmil_ros.train.config import DataConfig
from dmil_ros.train.dataset import Arrays
from dmil_ros.train.errors import DataError

logger = logging.getLogger(__name__)
CACHE_VERSION = 1


@dataclass
class BagStats:
    bag: str
    pairs: int = 0
    cached: bool = False
    skipped: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    two_scenes: int = 0  # pairs whose camera frame and sweep saw different scene segments
    unconfirmed: int = 0  # pairs whose sweep's scene segment is not known (dmil_ros.scenes)
    # the first and last camera stamp (ns) of the pairs and a hash of the pairs (stamps,
    # labels, tensors): with ``pairs``, what a resume checks the recording against (data.json)
    stamps: tuple[int, int] | None = None
    digest: str | None = None
    # camera / LiDAR / label topics none of whose messages could be read: topic -> the type the
    # bag records for it (a topic of the wrong type)
    unusable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out['skipped'] = dict(self.skipped)
        return out


EXPECTED_TYPES: dict[str, tuple[str, ...]] = {
    'camera_topic': ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage'),
    'lidar_topic': ('sensor_msgs/msg/PointCloud2',),
    'action_topic': ('std_msgs/msg/String',),
    'cmd_vel_topic': ('geometry_msgs/msg/Twist', 'geometry_msgs/msg/TwistStamped'),
}
"""The message types the reader decodes each input topic (``data.<field>``) as."""


def input_topics(cfg: DataConfig) -> dict[str, str]:
    """The camera, LiDAR and label topics a pair needs: ``data.<field>`` -> topic."""
    label = 'action_topic' if cfg.label_source == 'action' else 'cmd_vel_topic'
    return {name: getattr(cfg, name) for name in ('camera_topic', 'lidar_topic', label)}


def discretise_twist(linear_x: float, angular_z: float, cfg: DataConfig) -> int:
    """cmd_vel -> action index (thresholds documented in :mod:`dmil_ros.train.config`).

    Raises :class:`DataError` for a non-finite component (no action can be read from it).
    """
    if not (math.isfinite(linear_x) and math.isfinite(angular_z)):
        msg = f'cmd_vel: linear.x={linear_x!r}, angular.z={angular_z!r} is not finite'
        raise DataError(msg)
    if abs(angular_z) >= cfg.turn_rate:
        return ACTION_INDEX['left'] if angular_z > 0 else ACTION_INDEX['right']
    if linear_x >= cfg.forward_speed:
        return ACTION_INDEX['forward']
    return ACTION_INDEX['stop']


# every source file whose change can change a cached tensor, label or family: decoding,
# preprocessing, pairing, the stamps pairs are matched on (runtime/faults.py), the action and
# family names labels index (actions.py), scene truth (scenes.py), and the bag reading and
# message types (bagio/, plus the shipped .msg texts, hashed in code_fingerprint)
_FINGERPRINTED = ('runtime/preprocess.py', 'runtime/decode.py', 'runtime/pairing.py',
                  'runtime/faults.py', 'train/data.py', 'scenes.py', 'actions.py',
                  'bagio/typestore.py', 'bagio/reader.py', 'bagio/mcap.py', 'bagio/mcap_layout.py',
                  'bagio/prefetch.py', 'bagio/records.py', 'bagio/sqlite_salvage.py')  # fmt: skip


@functools.cache
def code_fingerprint() -> str:
    """Hash of the source bytes of the code that makes cached tensors and of the shipped
    ``.msg`` texts (the typestore decodes the simulator's messages by them), plus the version."""
    import dmil_ros

    root = Path(dmil_ros.__file__).parent
    h = hashlib.sha256(dmil_ros.__version__.encode())
    msgs = sorted(str(p.relative_to(root)) for p in (root / 'msg').glob('*.msg'))
    for name in (*_FINGERPRINTED, *msgs):
        h.update(name.encode())
        h.update((root / name).read_bytes())
    return h.hexdigest()[:16]


def cache_key(bag: Path, cfg: DataConfig, spec: PreprocessSpec) -> str:
    h = hashlib.sha256()
    h.update(f'v{CACHE_VERSION}:{code_fingerprint()}'.encode())
    files = sorted(bag.rglob('*')) if bag.is_dir() else [bag]
    for f in files:
        if f.is_file():
            st = f.stat()
            h.update(f'{f.relative_to(bag.parent)}:{st.st_size}:{st.st_mtime_ns}'.encode())
    h.update(json.dumps(asdict(cfg), sort_keys=True).encode())
    h.update(spec.to_json().encode())
    return h.hexdigest()[:24]


def _nearest(times: list[int], values: list[int], t: int, slop_ns: int) -> int | None:
    i = bisect.bisect_left(times, t)
    best: int | None = None
    best_dt = slop_ns + 1
    for j in (i - 1, i):
        if 0 <= j < len(times) and abs(times[j] - t) < best_dt:
            best, best_dt = values[j], abs(times[j] - t)
    return best


def read_bag(
    bag: Path, cfg: DataConfig, spec: PreprocessSpec, segment: int = 0, *, progress: bool = True
) -> tuple[Arrays, BagStats]:
    """Decode, pair and label one bag (no cache)."""
    from dmil_ros.bagio.reader import BagReadError, RobustReader
    from dmil_ros.runtime.decode import decode_image, decode_pointcloud2
    from dmil_ros.runtime.errors import DecodeError
    from dmil_ros.runtime.pairing import ApproxTimePairer

    stats = BagStats(str(bag))
    needed = list(input_topics(cfg).values())  # camera, LiDAR, label
    label_topic = needed[2]
    wanted = [*needed, cfg.ground_truth_topic, cfg.lidar_truth_topic]
    pairer: ApproxTimePairer[tuple[int, np.ndarray[Any, Any]], np.ndarray[Any, Any]]
    pairer = ApproxTimePairer(slop=cfg.slop, queue_size=256)
    pairs: list[Any] = []
    label_t: list[int] = []
    label_v: list[int] = []
    family_by_stamp: dict[int, int] = {}
    segment_by_stamp: dict[int, int] = {}  # camera stamp -> scene segment
    sweeps = SweepScenes()  # sweep stamp -> scene segment
    seen: Counter[str] = Counter()
    unread: Counter[str] = Counter()  # messages whose decoding or fields failed, per topic
    msgtypes: dict[str, str] = {}
    try:
        reader = RobustReader(bag, topics=wanted)
        bar = tqdm(reader.decoded(), leave=False, desc=f'reading {bag.name}', disable=not progress)
        for raw, m in bar:
            topic = raw.topic
            seen[topic] += 1
            msgtypes.setdefault(topic, raw.msgtype)
            try:
                if topic == cfg.camera_topic:
                    image = prepare_image(decode_image(m, topic), spec)
                    pairs += pairer.push_camera(stamp_ns(m), (int(raw.timestamp), image))
                elif topic == cfg.lidar_topic:
                    lidar = prepare_points(decode_pointcloud2(m, topic), spec)
                    pairs += pairer.push_lidar(stamp_ns(m), lidar)
                elif topic == label_topic:
                    if cfg.label_source == 'action':
                        if m.data not in ACTION_INDEX:
                            stats.skipped[f'{topic}:unknown_action'] += 1
                            continue
                        value = ACTION_INDEX[m.data]
                    else:
                        twist = m.twist if hasattr(m, 'twist') else m  # TwistStamped (Nav2)
                        try:
                            value = discretise_twist(
                                float(twist.linear.x), float(twist.angular.z), cfg
                            )
                        except DataError:  # a non-finite component: no action in it
                            stats.skipped[f'{topic}:non_finite'] += 1
                            continue
                    label_t.append(int(raw.timestamp))
                    label_v.append(value)
                elif topic == cfg.lidar_truth_topic:
                    sweeps.add_message(m)
                else:  # ground truth: every field read before any is kept
                    stamp, truth = stamp_ns(m), FrameLabels.of(m)
                    family_by_stamp[stamp] = truth.family
                    segment_by_stamp[stamp] = truth.segment
            except (DecodeError, *UNREADABLE) as exc:
                stats.skipped[f'{topic}:{type(exc).__name__}'] += 1
                unread[topic] += 1
    except BagReadError as exc:
        raise DataError(str(exc)) from exc
    for topic, count in reader.skipped.items():
        stats.skipped[f'{topic}:cdr'] += count
    if reader.issues:
        stats.error = f'bag {str(bag)!r}: ' + '; '.join(i.message for i in reader.issues)
        logger.error('%s (kept what was readable)', stats.error)
    for topic in needed:
        if not seen[topic]:
            msg = f'bag {str(bag)!r}: no readable message on topic {topic!r}'
            raise DataError(msg)
        if unread[topic] == seen[topic]:  # not one message read: most likely the wrong type
            stats.unusable[topic] = msgtypes[topic]
    pairs += pairer.finish()  # frames waiting for a sweep the bag no longer has
    for reason, count in pairer.drops.items():
        stats.skipped[f'pairing:{reason}'] += count
    # label and assemble
    order = np.argsort(label_t, kind='stable')
    lt = [label_t[i] for i in order]
    lv = [label_v[i] for i in order]
    slop_ns = round(cfg.slop * 1e9)
    rows: list[tuple[Any, Any, int, int, int]] = []
    for p in pairs:
        log_t, image = p.camera
        y = _nearest(lt, lv, log_t, slop_ns)
        if y is None:
            stats.skipped['label:no_match'] += 1
            continue
        family = family_by_stamp.get(p.camera_stamp, -1)
        seen_by_camera = segment_by_stamp.get(p.camera_stamp)
        if seen_by_camera is not None:
            verdict = sweeps.verdict(seen_by_camera, p.lidar_stamp)
            if verdict == TWO_SCENES:
                family = -1  # two scenes: no single family
                stats.two_scenes += 1
            elif verdict == UNCONFIRMED:
                family = -1  # the sweep's scene is not known: no family either
                stats.unconfirmed += 1
        rows.append((image, p.lidar, y, family, p.camera_stamp))
    stats.pairs = len(rows)
    if not rows:
        return _empty(spec), stats
    arrays = Arrays(
        image=np.stack([r[0] for r in rows]).astype(np.float32),
        lidar=np.stack([r[1] for r in rows]).astype(np.float32),
        action=np.asarray([r[2] for r in rows], np.int64),
        family=np.asarray([r[3] for r in rows], np.int64),
        stamp=np.asarray([r[4] for r in rows], np.int64),
        segment=np.full(len(rows), segment, np.int64),
    )
    return arrays, stats


def _empty(spec: PreprocessSpec) -> Arrays:
    return Arrays(
        image=np.zeros((0, *spec.image_shape), np.float32),
        lidar=np.zeros((0, *spec.lidar_shape), np.float32),
        action=np.zeros(0, np.int64), family=np.zeros(0, np.int64),
        stamp=np.zeros(0, np.int64), segment=np.zeros(0, np.int64),
    )  # fmt: skip


def pairs_digest(arrays: Arrays) -> str:
    """A hash of one bag's pairs (stamps, actions, image and range-image tensors): equal for
    the same recording whether decoded or read from the cache, different for another one."""
    h = hashlib.sha256()
    for a in (arrays.stamp, arrays.action, arrays.image, arrays.lidar):
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()[:16]


def _load_side(path: Path) -> tuple[dict[str, int], int, int]:
    """Skip counts, the two-scene and the unconfirmed-scene counts stored beside a cache file
    (empty when absent or unreadable: logged)."""
    try:
        doc = json.loads(path.read_text(encoding='utf-8'))
        skipped = {str(k): int(v) for k, v in doc['skipped'].items()}
        return skipped, int(doc.get('two_scenes', 0)), int(doc.get('unconfirmed', 0))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning('cache %s: skip counts unavailable (%s)', path, exc)
        return {}, 0, 0


def _write_cache(cache: Path, arrays: Arrays, stats: BagStats) -> None:
    """Store a bag's tensors and counts; a failed write is logged, never fatal (the data is
    in memory already). Side file first: an entry's ``.npz`` never exists without it."""
    doc = {
        'skipped': dict(stats.skipped),
        'two_scenes': stats.two_scenes,
        'unconfirmed': stats.unconfirmed,
    }
    side = cache.with_suffix('.json')
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_temporaries(cache.parent)
        if removed:
            logger.info('cache %s: removed %d stale temporary files', cache.parent, removed)
        atomic_write_text(side, json.dumps(doc))
        arrays.save(cache)
    except OSError as exc:
        logger.warning('cache %s: not written (%s)', cache, exc)


def _load_cache(cache: Path) -> Arrays | None:
    """A cache entry's arrays; None when there is none or it cannot be read (logged: the bag
    is decoded again and the entry rewritten)."""
    if not cache.exists():
        return None
    try:
        return Arrays.load(cache)
    except DataError as exc:
        logger.warning('%s; decoding the bag again', exc)
        return None


def load_bags(
    bags: list[Path],
    cfg: DataConfig,
    spec: PreprocessSpec,
    cache_dir: Path | None = None,
    *,
    progress: bool = True,
    digest: bool = False,
) -> tuple[Arrays, list[BagStats]]:
    """Every bag's pairs (cached), concatenated; ``segment`` = the bag's index in ``bags``.

    ``digest``: also record each bag's first and last pair stamp and :func:`pairs_digest` in
    its stats (what ``data.json`` keeps for a resume; a hash over every tensor, so only the
    training asks for it)."""
    parts: list[Arrays] = []
    all_stats: list[BagStats] = []
    for i, bag in enumerate(bags):
        if not bag.exists():
            msg = f'bag {str(bag)!r}: no such file or directory'
            raise DataError(msg)
        cache = cache_dir / f'{bag.name}-{cache_key(bag, cfg, spec)}.npz' if cache_dir else None
        hit = _load_cache(cache) if cache is not None else None
        if hit is not None and cache is not None:
            arrays = Arrays(**{**hit.__dict__, 'segment': np.full(len(hit), i, np.int64)})
            stats = BagStats(str(bag), pairs=len(arrays), cached=True)
            skipped, stats.two_scenes, stats.unconfirmed = _load_side(cache.with_suffix('.json'))
            stats.skipped.update(skipped)
        else:
            arrays, stats = read_bag(bag, cfg, spec, segment=i, progress=progress)
            if cache is not None and stats.error is None and len(arrays):
                _write_cache(cache, arrays, stats)
        if digest and len(arrays):
            stats.stamps = (int(arrays.stamp.min()), int(arrays.stamp.max()))
            stats.digest = pairs_digest(arrays)
        logger.info('%s: %d pairs%s', bag, stats.pairs, ' (cache)' if stats.cached else '')
        for topic, msgtype in stats.unusable.items():
            logger.warning('%s: no message of topic %r (%s) could be read', bag, topic, msgtype)
        if stats.skipped:
            logger.info('%s: skipped %s', bag, dict(stats.skipped))
        if stats.two_scenes:
            logger.info(
                '%s: %d pairs span two scene segments (no family: left out of per-family figures)',
                bag, stats.two_scenes,
            )  # fmt: skip
        if stats.unconfirmed:
            logger.warning(
                '%s: %d pairs have a sweep without usable scene truth (no family: left out of '
                'per-family figures)', bag, stats.unconfirmed,
            )  # fmt: skip
        parts.append(arrays)
        all_stats.append(stats)
    arrays = Arrays.concat(parts)
    if not len(arrays):
        msg = f'bags {[str(b) for b in bags]}: no labelled camera + LiDAR pair found'
        raise DataError(msg + _unusable_topics(all_stats, cfg))
    return arrays, all_stats


def _unusable_topics(stats: list[BagStats], cfg: DataConfig) -> str:
    """The input topics no message of which could be read, with the type each bag has for it
    and the types expected (appended to the no-pair error: the likely cause)."""
    fields = {topic: name for name, topic in input_topics(cfg).items()}
    found: dict[str, dict[str, list[str]]] = {}  # topic -> type in the bag -> bags
    for s in stats:
        for topic, msgtype in s.unusable.items():
            found.setdefault(topic, {}).setdefault(msgtype, []).append(Path(s.bag).name)
    causes = []
    for topic, types in found.items():
        field_name = fields[topic]
        recorded = ', '.join(f'{t} in {", ".join(b)}' for t, b in types.items())
        causes.append(
            f'no message of topic {topic!r} (data.{field_name}) could be read: it is {recorded}, '
            f'expected {" or ".join(EXPECTED_TYPES[field_name])}'
        )
    return f'; {"; ".join(causes)}' if causes else ''
