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

"""The per-bag stage of an audit: one bag through the node's own fusion pipeline.

The bag is read with :class:`dmil_ros.bagio.reader.RobustReader` (a damaged bag gives what could
be read plus issues) and its camera and LiDAR messages are fed, in log-time order, to
:class:`dmil_ros.runtime.pipeline.FusionPipeline`: the same decoding, preprocessing, pairing,
inference and synergy monitor as the ROS node. The audit only adds what the node does not need:

* every model output (unimodal heads, features) is kept: the model is a
  :class:`~dmil_ros.runtime.model.FusionModel` asked for all its outputs, whose ``run`` records the
  last batch, so the pipeline's single inference call serves both;
* calibrated masking (:mod:`dmil_ros.audit.masking`) when the model has no unimodal heads,
  profiled on the bag's first ``profile_frames`` pairs;
* labels (``/sim/ground_truth`` when present, else ``/expert/action``) and ground truth; a
  frame whose camera image and LiDAR sweep come from two scene segments (``/sim/lidar_truth``
  names each sweep's) has no family (-1), as in training and evaluation
  (:mod:`dmil_ros.train.data`), so family figures leave it out; so has a frame whose sweep has
  no such truth, or two that disagree (:mod:`dmil_ros.scenes`; counted in the bag's errors). A
  truth or label message without the fields read is counted per topic and skipped.

The runtime ``alert`` of every frame is the pipeline's own synergy monitor, which reads
``pid_broja`` when the model has it, else ``pid_lsmi`` (``PipelineConfig.pid_source='auto'``);
the output it read is recorded as ``alert_source`` in the bag's account.

Frames in degraded mode (one sensor silent) are counted but not audited: their inputs are the
pipeline's placeholders, not sensor data.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dmil_ros.actions import ACTION_INDEX, ACTIONS
from dmil_ros.audit.bagresult import BagResult
from dmil_ros.audit.dataset_pid import sidecar_atoms
from dmil_ros.audit.errors import AuditError
from dmil_ros.audit.masking import MaskStats, Profile, masked_inputs
from dmil_ros.runtime.faults import stamp_ns
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.onnx_external import WireError, external_locations
from dmil_ros.runtime.pipeline import FusionPipeline, PipelineConfig
from dmil_ros.runtime.records import FrameResult, Job
from dmil_ros.scenes import (
    ONE_SCENE,
    UNCONFIRMED,
    UNREADABLE,
    FrameLabels,
    LabelRangeError,
    SweepScenes,
)

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
GROUND_TRUTH_TOPIC = '/sim/ground_truth'
LIDAR_TRUTH_TOPIC = '/sim/lidar_truth'
ACTION_TOPIC = '/expert/action'
SIDE_CAR = 'ground_truth.json'
LABEL_SLOP_NS = 25_000_000
RESULT_VERSION = 4  # 2: ``self_broja`` (the model's pid_broja) kept per frame; 3: two-scene
#                     and unconfirmed frames have family -1 (dmil_ros.scenes); 4: the paired
#                     sweep's ``lidar_stamp`` kept, masking noise from one pool per seed


@dataclass(frozen=True)
class BagOptions:
    """Per-bag settings (part of the resume key)."""

    model: str
    camera_topic: str = '/camera/image_raw'
    lidar_topic: str = '/lidar/points'
    batch: int = 64
    profile_frames: int = 256
    mask_samples: int = 1
    seed: int = 0
    threads: int = 1
    max_frames: int = 0  # 0: all

    def __post_init__(self) -> None:
        least = {'batch': 1, 'profile_frames': 1, 'mask_samples': 1, 'threads': 0, 'max_frames': 0}
        for name, low in least.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                msg = f'audit option {name}={value!r} must be an integer >= {low}'
                raise AuditError(msg)

    def key(self) -> str:
        model = Path(self.model)
        stat = model.stat() if model.is_file() else None
        fields = asdict(self)
        fields.pop('threads')  # results do not depend on it
        # the file, not its spelling: models/m.onnx and ./models/m.onnx are one model
        fields['model'] = str(model.resolve())
        fields['result_version'] = RESULT_VERSION  # older per-bag results are recomputed
        fields['model_size'] = stat.st_size if stat else None
        fields['model_mtime'] = stat.st_mtime_ns if stat else None
        # a copy that kept the mtime (cp -p, rsync -a) still gets a new inode / ctime
        fields['model_inode'] = stat.st_ino if stat else None
        fields['model_ctime'] = stat.st_ctime_ns if stat else None
        external = external_data(self.model)
        if external:  # only then: the keys of other models' finished results stay valid
            fields['model_external_data'] = external
        return json.dumps(fields, sort_keys=True)


_LOCATIONS: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def external_data(model: str) -> list[list[Any]]:
    """``[location, size, mtime, inode, ctime]`` of each ONNX external-data file the model
    references (``m.onnx.data``; ``[location, None]`` where it is missing): new weights
    deployed there leave the ``.onnx`` file byte for byte as it was, so its stat alone let a
    resume reuse the old model's results (review 22c, F4)."""
    path = Path(model)
    try:
        st = path.stat()
    except OSError:
        return []
    key = (str(path.resolve()), *_stamp(st))  # the locations are in the .onnx: parsed once
    locations = _LOCATIONS.get(key)
    if locations is None:
        try:
            locations = tuple(external_locations(path))
        except (WireError, OSError):
            locations = ()  # loading the model refuses it, naming the problem
        if len(_LOCATIONS) >= 8:
            _LOCATIONS.clear()
        _LOCATIONS[key] = locations
    out: list[list[Any]] = []
    for location in locations:
        try:
            out.append([location, *_stamp((path.parent / location).stat())])
        except OSError:  # noqa: PERF203 - a missing file is an entry, not an error
            out.append([location, None])
    return out


def _degrade(info: dict[str, Any], *errors: dict[str, Any]) -> None:
    """Add error entries to a bag's ``info``; an ``ok`` bag becomes ``partial``."""
    if info['status'] == 'ok':
        info['status'] = 'partial'
    info['errors'].extend(errors)


SCORE_OUTPUTS = ('probs', 'probs_camera', 'probs_lidar', 'probs_joint')
"""Outputs the audit reads as action probabilities (raw scores get a softmax)."""


def is_distribution(values: F32) -> bool:
    """True when every finite row of ``values`` (B, K) is a probability vector (1e-3)."""
    rows = values[np.isfinite(values).all(axis=1)]  # (B', K)
    return bool(
        (rows >= 0).all() and (rows <= 1).all() and np.allclose(rows.sum(axis=1), 1, atol=1e-3)
    )


def softmax(values: F32) -> F32:
    """Row-wise softmax of raw action scores (B, K); a non-finite row stays non-finite."""
    shifted = values - values.max(axis=1, keepdims=True)  # (B, K)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=1, keepdims=True), np.float32)


class _RecordingModel(FusionModel):
    """A FusionModel fetching every output and remembering the last batch's outputs.

    Any model returning action scores can be audited (issue #8): an output of
    :data:`SCORE_OUTPUTS` whose rows are not probability vectors (logits) is turned into
    probabilities by a softmax, from then on for the whole bag; ``softmaxed`` names them.
    """

    last: dict[str, F32]
    softmaxed: set[str]

    def run(self, image: F32, lidar: F32) -> dict[str, F32]:
        out = self.as_probabilities(super().run(image, lidar))
        self.last = out
        return out

    def unrecorded_probs(self, image: F32, lidar: F32) -> F32:
        """``probs`` of a side run (masked inputs), leaving the recorded batch as it is."""
        return self.as_probabilities(FusionModel.run(self, image, lidar))['probs']

    def reset(self) -> None:
        """Forget the last batch and the softmax decisions (a new bag starts)."""
        self.last = {}
        self.softmaxed = set()

    def as_probabilities(self, out: dict[str, F32]) -> dict[str, F32]:
        for name in SCORE_OUTPUTS:
            if name in out and (name in self.softmaxed or not is_distribution(out[name])):
                self.softmaxed.add(name)
                out[name] = softmax(out[name])
        return out


_MODELS: dict[tuple[Any, ...], _RecordingModel] = {}


def load_model(options: BagOptions) -> _RecordingModel:
    """The model for ``options``, loaded once per process and thread for as long as its file
    is unchanged: a worker auditing many bags would otherwise spend ~0.1 s per bag creating
    the same ONNX Runtime session (benchmarks/bench_audit.py)."""
    path = Path(options.model)
    stat = path.stat() if path.is_file() else None
    key: tuple[Any, ...] | None = None
    if stat is not None:
        # one per thread too: a model records its last outputs
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
        key += (stat.st_ctime_ns, options.threads, threading.get_ident())
        key += (json.dumps(external_data(options.model)),)
        cached = _MODELS.get(key)
        if cached is not None:
            cached.reset()
            return cached
    model = _RecordingModel(options.model, provider='cpu', threads=options.threads, adapt=True)
    model.outputs = model.info.outputs  # every output, not only the node's
    model.reset()
    if key is not None:
        if len(_MODELS) >= 4:
            _MODELS.clear()
        _MODELS[key] = model
    return model


class _Collector:
    """Accumulates per-frame arrays from pipeline results and the recorded model outputs."""

    def __init__(self, model: _RecordingModel, options: BagOptions) -> None:
        self.model = model
        self.options = options
        self.heads = model.has('probs_camera') and model.has('probs_lidar')
        self.rows: dict[str, list[npt.NDArray[Any]]] = {
            k: []
            for k in (
                'stamp',
                'lidar_stamp',  # the paired sweep's (degraded frames are not audited)
                'probs',
                'gates',
                'p_camera',
                'p_lidar',
                'p_joint',
                'feat_camera',
                'feat_lidar',
                'self_lsmi',
                'self_broja',
                'alert',
            )
        }
        self.pending: list[Job] = []
        self.profile_jobs: list[Job] = []
        self.stats: MaskStats | None = None
        self.degraded = 0
        self.inference_s = 0.0
        self.pipeline: FusionPipeline | None = None
        self.alert_source: str | None = None  # the output the node's synergy monitor reads

    def add(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.degraded:
                self.degraded += 1
            self.pending.append(job)
        if len(self.pending) >= self.options.batch:
            self.flush()

    def flush(self, final: bool = False) -> None:
        if self.pending:
            if not self.heads and self.stats is None:
                self.profile_jobs.extend(j for j in self.pending if not j.degraded)
                if len(self.profile_jobs) < self.options.profile_frames and not final:
                    self._run(self.pending, masked=False)
                    return
                self._make_stats()
            self._run(self.pending, masked=not self.heads and self.stats is not None)
        elif final and not self.heads and self.stats is None:
            # a bag shorter than the profile whose last batch came out full: nothing is
            # pending, but every frame inferred so far still needs its masked predictions
            self._make_stats()

    @property
    def mask_missing(self) -> bool:
        """True when the model needs masking but its profile could not be built."""
        return not self.heads and self.stats is None

    def _make_stats(self) -> None:
        image, lidar = Profile(), Profile()
        jobs = self.profile_jobs[: self.options.profile_frames]
        if len(jobs) < 2:
            return
        image.add(np.stack([j.image for j in jobs]))
        lidar.add(np.stack([j.lidar for j in jobs]))
        self.stats = MaskStats.from_profiles(image, lidar)
        # frames inferred before the profile was complete get their masked predictions now
        self._mask_backfill()

    def _run(self, jobs: list[Job], masked: bool) -> None:
        # at most ``batch`` frames per model call, as in the replay: one message, or the end
        # of the bag, can complete several frames at once (the audit's session is a CPU one,
        # so this bounds the call's memory; no padded GPU shape is involved)
        self.pending = []
        for start in range(0, len(jobs), self.options.batch):
            self._run_batch(jobs[start : start + self.options.batch], masked)

    def _run_batch(self, jobs: list[Job], masked: bool) -> None:
        assert self.pipeline is not None
        t0 = time.perf_counter()
        results = self.pipeline.infer(jobs)
        out = self.model.last
        self.inference_s += time.perf_counter() - t0
        keep = [k for k, j in enumerate(jobs) if not j.degraded]
        if not keep:
            return
        self._append([results[k] for k in keep], {n: v[keep] for n, v in out.items()})
        if masked:
            self._append_masked([jobs[k] for k in keep])

    def _append(self, results: list[FrameResult], out: dict[str, F32]) -> None:
        n = len(results)
        nan4 = np.full((n, 4), np.nan, np.float32)
        probs = np.asarray(out['probs'], np.float32)
        self.rows['stamp'].append(np.array([r.header.ns for r in results], np.int64))
        self.rows['lidar_stamp'].append(
            np.array([-1 if r.lidar_stamp_ns is None else r.lidar_stamp_ns for r in results])
        )
        self.rows['probs'].append(probs)
        self.rows['gates'].append(out.get('gates', nan4))
        self.rows['p_joint'].append(out.get('probs_joint', probs))
        self.rows['self_lsmi'].append(out.get('pid_lsmi', nan4))
        self.rows['self_broja'].append(out.get('pid_broja', nan4))
        if self.alert_source is None:
            self.alert_source = next((r.pid_source for r in results if r.pid_source), None)
        self.rows['alert'].append(np.array([r.alert for r in results], bool))
        if self.heads:
            self.rows['p_camera'].append(out['probs_camera'])
            self.rows['p_lidar'].append(out['probs_lidar'])
        self._features(out)

    def _features(self, out: dict[str, F32]) -> None:
        if 'feat_camera' in out and 'feat_lidar' in out:
            self.rows['feat_camera'].append(np.asarray(out['feat_camera'], np.float32))
            self.rows['feat_lidar'].append(np.asarray(out['feat_lidar'], np.float32))
        elif self.heads:
            self.rows['feat_camera'].append(np.log(np.clip(out['probs_camera'], 1e-6, 1.0)))
            self.rows['feat_lidar'].append(np.log(np.clip(out['probs_lidar'], 1e-6, 1.0)))
        # masked models: features are appended with the masked predictions

    def _masked_probs(self, jobs: list[Job]) -> tuple[F32, F32]:
        assert self.stats is not None
        image = np.stack([j.image for j in jobs])
        lidar = np.stack([j.lidar for j in jobs])
        stamps = np.array([j.header.ns for j in jobs], np.int64)
        p_cam = np.zeros((len(jobs), len(ACTIONS)), np.float64)
        p_lid = np.zeros_like(p_cam)
        t0 = time.perf_counter()
        for draw in range(self.options.mask_samples):
            cam_only, lid_only = masked_inputs(
                self.stats, image, lidar, stamps, seed=self.options.seed, draw=draw
            )
            # the plain run: the recorded outputs stay the pipeline's batch
            p_cam += self.model.unrecorded_probs(*cam_only)
            p_lid += self.model.unrecorded_probs(*lid_only)
        self.inference_s += time.perf_counter() - t0
        k = float(self.options.mask_samples)
        return (p_cam / k).astype(np.float32), (p_lid / k).astype(np.float32)

    def _append_masked(self, jobs: list[Job]) -> None:
        p_cam, p_lid = self._masked_probs(jobs)
        self.rows['p_camera'].append(p_cam)
        self.rows['p_lidar'].append(p_lid)
        if 'feat_camera' not in self.model.outputs:
            self.rows['feat_camera'].append(np.log(np.clip(p_cam, 1e-6, 1.0)))
            self.rows['feat_lidar'].append(np.log(np.clip(p_lid, 1e-6, 1.0)))

    def _mask_backfill(self) -> None:
        done = sum(len(a) for a in self.rows['stamp'])
        if done == 0:
            return
        jobs = [j for j in self.profile_jobs if not j.degraded][:done]
        for start in range(0, len(jobs), self.options.batch):
            self._append_masked(jobs[start : start + self.options.batch])
        self.profile_jobs = []

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        out: dict[str, npt.NDArray[Any]] = {}
        for key, parts in self.rows.items():
            if parts:
                out[key] = np.concatenate(parts)
        if 'stamp' not in out:
            return {}
        n = len(out['stamp'])
        for key in ('p_camera', 'p_lidar', 'feat_camera', 'feat_lidar'):
            if len(out.get(key, ())) != n:  # too few frames to profile a mask
                out[key] = np.full((n, len(ACTIONS)), np.nan, np.float32)
        return out


def _labels(
    stamps: npt.NDArray[np.int64],
    truth: dict[int, FrameLabels],
    actions: dict[int, int],
    camera_log: dict[int, int],
    *,
    lidar_stamps: npt.NDArray[np.int64] | None = None,
    sweeps: SweepScenes | None = None,
) -> tuple[dict[str, npt.NDArray[np.int64]], int]:
    """Per frame: label, family, segment and latents; and how many frames' sweeps had no
    usable scene truth (family -1, :data:`dmil_ros.scenes.UNCONFIRMED`)."""
    n = len(stamps)
    out = {
        k: np.full(n, -1, np.int64)
        for k in ('label', 'family', 'segment', 'camera_latent', 'lidar_latent')
    }
    unconfirmed = 0
    log_times = np.array(sorted(actions), np.int64)
    for i, stamp in enumerate(stamps.tolist()):
        gt = truth.get(stamp)
        if gt is not None:
            out['label'][i] = gt.action
            out['family'][i] = gt.family
            out['segment'][i] = gt.segment
            out['camera_latent'][i] = gt.camera_latent
            out['lidar_latent'][i] = gt.lidar_latent
            if lidar_stamps is not None and sweeps is not None and lidar_stamps[i] >= 0:
                verdict = sweeps.verdict(gt.segment, int(lidar_stamps[i]))
                if verdict != ONE_SCENE:  # two scenes, or not known: no family
                    out['family'][i] = -1
                    unconfirmed += verdict == UNCONFIRMED
            continue
        if log_times.size:
            t = camera_log.get(stamp, stamp)
            j = int(np.searchsorted(log_times, t))
            near = [k for k in (j - 1, j) if 0 <= k < log_times.size]
            best = min(near, key=lambda k: abs(int(log_times[k]) - t))
            if abs(int(log_times[best]) - t) <= LABEL_SLOP_NS:
                out['label'][i] = actions[int(log_times[best])]
    return out, unconfirmed


def sidecar_path(bag: Path) -> Path:
    """Where the simulator's ``ground_truth.json`` of ``bag`` (a folder or one file) lies."""
    return (bag if bag.is_dir() else bag.parent) / SIDE_CAR


def read_sidecar(bag: Path) -> dict[str, Any] | None:
    """The simulator's ``ground_truth.json`` next to the bag, if any (not an error when absent)."""
    path = sidecar_path(bag)
    try:
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
        logger.warning('%s: unreadable ground truth sidecar (%s)', path, exc)
        return None
    return data if isinstance(data, dict) else None


def audit_bag(path: Path, name: str, options: BagOptions) -> BagResult:
    """Run one bag through the pipeline; never raises for a damaged bag (see ``info``)."""
    from dmil_ros.bagio.reader import BagReadError, RobustReader

    t0 = time.perf_counter()
    info: dict[str, Any] = {'path': str(path), 'status': 'ok', 'errors': []}
    model = load_model(options)
    info['model_kind'] = model.info.kind  # metadata dmil_ros.kind, else 'foreign'
    info['unimodal'] = (
        'heads' if model.has('probs_camera') and model.has('probs_lidar') else ('masking')
    )
    config = PipelineConfig(camera_topic=options.camera_topic, lidar_topic=options.lidar_topic)
    pipeline = FusionPipeline(model, config)
    collector = _Collector(model, options)
    collector.pipeline = pipeline
    truth: dict[int, FrameLabels] = {}
    actions: dict[int, int] = {}
    camera_log: dict[int, int] = {}
    # stamps that name two frames (labels join frames on the stamp: after a clock reset the
    # later run's would be taken for the earlier frames); their frames get no labels
    repeated: set[int] = set()
    sweeps = SweepScenes()
    unusable: Counter[tuple[str, str]] = Counter()  # (topic, why) of skipped truth / labels
    topics = [options.camera_topic, options.lidar_topic, GROUND_TRUTH_TOPIC, LIDAR_TRUTH_TOPIC,
              ACTION_TOPIC]  # fmt: skip
    reader = None
    cameras = 0
    try:
        reader = RobustReader(path, topics=topics)
        for raw, msg in reader.decoded():
            if raw.topic == options.camera_topic:
                if options.max_frames and cameras >= options.max_frames:
                    break
                cameras += 1
                stamp = getattr(getattr(msg, 'header', None), 'stamp', None)
                if stamp is not None:
                    ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
                    if abs(camera_log.get(ns, raw.timestamp) - raw.timestamp) > LABEL_SLOP_NS:
                        repeated.add(ns)  # the stamp again, much later: a clock reset
                    camera_log[ns] = raw.timestamp
                collector.add(pipeline.feed_camera(msg))
            elif raw.topic == options.lidar_topic:
                collector.add(pipeline.feed_lidar(msg))
            else:
                try:
                    if raw.topic == GROUND_TRUTH_TOPIC:
                        ns, read = stamp_ns(msg), FrameLabels.of(msg)
                        if truth.setdefault(ns, read) != read:
                            repeated.add(ns)  # two truths for one stamp: which frame's?
                    elif raw.topic == LIDAR_TRUTH_TOPIC:
                        sweeps.add_message(msg)
                    elif raw.topic == ACTION_TOPIC:
                        if isinstance(msg.data, str) and msg.data in ACTION_INDEX:
                            actions[raw.timestamp] = ACTION_INDEX[msg.data]
                        else:
                            unusable[(raw.topic, 'naming no known action')] += 1
                except LabelRangeError:
                    unusable[(raw.topic, 'with a field out of range')] += 1
                except UNREADABLE:
                    unusable[(raw.topic, 'without the fields read')] += 1
    except BagReadError as exc:
        info['status'] = 'failed'
        info['errors'].append({'message': str(exc)})
    collector.add(pipeline.finish())  # frames waiting for a sweep the bag no longer has
    collector.flush(final=True)  # frames read before a read error are audited too
    audited = sum(len(a) for a in collector.rows['stamp'])
    if audited and collector.mask_missing:
        _degrade(
            info,
            {
                'message': f'masking: {len(collector.profile_jobs)} usable frame(s), at least 2 '
                'needed to profile the inputs: no unimodal predictions (p_camera, p_lidar NaN)'
            },
        )
    if model.softmaxed:
        info['softmax_applied'] = sorted(model.softmaxed)
        logger.warning(
            '%s: model outputs %s are raw scores, not probabilities: softmax applied',
            path,
            info['softmax_applied'],
        )
    non_finite = pipeline.errors[('model', 'non_finite_output')]
    if non_finite:
        _degrade(
            info,
            {
                'message': f'model {options.model!r}: non-finite action scores for {non_finite} '
                'frames: no action for them, left out of the model-level terms'
            },
        )
    for (topic, why), count in sorted(unusable.items()):
        _degrade(info, {'message': f'topic {topic!r}: {count} messages {why}, skipped'})
    # sensor messages the pipeline could not decode cost their frames: a partial bag, by reason
    skipped = sorted((k, n) for k, n in pipeline.errors.items() if k[0] != 'model')
    for (topic, why), count in skipped:
        last = f' (last: {pipeline.last_error})' if len(skipped) == 1 else ''
        _degrade(
            info,
            {'message': f'topic {topic!r}: {count} messages not usable ({why}), skipped{last}'},
        )
    if reader is not None:
        info['read'] = reader.report()
        if reader.issues or reader.skipped:
            _degrade(
                info,
                *(i.as_dict() for i in reader.issues),
                *(
                    {'message': f'topic {topic!r}: {count} undecodable messages'}
                    for topic, count in reader.skipped.items()
                ),
            )
    arrays = collector.arrays()
    if not arrays:
        result = BagResult.empty(name, info)
    else:
        lidar_stamps = arrays['lidar_stamp']
        labels, unconfirmed = _labels(
            arrays['stamp'], truth, actions, camera_log, lidar_stamps=lidar_stamps, sweeps=sweeps
        )
        ambiguous = np.isin(arrays['stamp'], np.fromiter(repeated, np.int64, len(repeated)))
        for column in labels.values():
            column[ambiguous] = -1
        arrays.update(labels)
        if ambiguous.any():
            _degrade(
                info,
                {
                    'message': f'{int(ambiguous.sum())} frames share their header stamp with '
                    f'another frame of the bag (clock jumps back: {pipeline.clock_jumps_back}; '
                    f'{pipeline.last_jump or "none seen by the pipeline"}): no label or ground '
                    'truth for them (labels join frames on the stamp)'
                },
            )
        if unconfirmed:
            _degrade(
                info,
                {
                    'message': f'topic {LIDAR_TRUTH_TOPIC!r}: the sweeps of {unconfirmed} frames '
                    'have no scene truth, or two that disagree: no family for them'
                },
            )
        result = BagResult(name, arrays, info)
    if result.frames == 0 and reader is not None:
        # nothing audited: say why. A sensor topic without messages (a wrong topic name, a
        # one-sensor recording) makes every frame run degraded, out of the tables
        sensors = (options.camera_topic, options.lidar_topic)
        others = sorted(t for t in reader.available if t not in sensors)
        missing = [
            {
                'message': f'topic {topic!r}: no {role} messages in the bag (its other topics: '
                f'{others}); frames need both sensors'
            }
            for role, topic in pipeline.silent_sensors()
        ]
        if missing:
            _degrade(info, *missing)
        elif not info['errors']:
            message = (
                f'no frame pairs: messages {dict(pipeline.received)}, none paired within '
                f'{config.slop} s (drops: {dict(pipeline.drops)}, degraded frames: '
                f'{collector.degraded})'
            )
            _degrade(info, {'message': message})
    sidecar = read_sidecar(path)
    if sidecar is not None:
        sidecar, problems = sidecar_atoms(sidecar)
        for problem in problems:
            text = f'ground truth sidecar {str(sidecar_path(path))!r}: {problem}'
            logger.warning('%s', text)
            _degrade(info, {'message': text})
    if result.frames == 0 and info['errors']:
        info['status'] = 'failed'  # nothing audited, for a reason named: not a partial result
    info.update(
        frames=result.frames,
        degraded_frames=collector.degraded,
        alert_source=collector.alert_source,
        pipeline={
            'received': dict(pipeline.received),
            'drops': dict(pipeline.drops),
            'last_error': pipeline.last_error,
            'clock_jumps_back': pipeline.clock_jumps_back,
            'last_jump': pipeline.last_jump,
        },
        labelled=int((result.arrays['label'] >= 0).sum()),
        ground_truth_frames=int((result.arrays['segment'] >= 0).sum()),
        family_frames=int((result.arrays['family'] >= 0).sum()),
        sidecar=sidecar,
        seconds=time.perf_counter() - t0,
        inference_seconds=collector.inference_s,
        duration=(
            float(result.arrays['stamp'][-1] - result.arrays['stamp'][0]) * 1e-9
            if result.frames > 1
            else 0.0
        ),
    )
    return result


__all__ = ['BagOptions', 'audit_bag', 'load_model', 'read_sidecar']
