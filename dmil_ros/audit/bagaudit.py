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
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dmil_ros.actions import ACTION_INDEX
from dmil_ros.audit.bagresult import BagResult
from dmil_ros.audit.collector import Collector
from dmil_ros.audit.dataset_pid import sidecar_atoms
from dmil_ros.audit.errors import AuditError
from dmil_ros.audit.labels import (
    ACTION_TOPIC,
    GROUND_TRUTH_TOPIC,
    LABEL_SLOP_NS,
    LIDAR_TRUTH_TOPIC,
    frame_labels,
    read_sidecar,
    sidecar_path,
)
from dmil_ros.audit.model import external_data, load_model
from dmil_ros.runtime.faults import stamp_ns
from dmil_ros.runtime.pipeline import FusionPipeline, PipelineConfig
from dmil_ros.scenes import (
    UNREADABLE,
    FrameLabels,
    LabelRangeError,
    SweepScenes,
)

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
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


def _degrade(info: dict[str, Any], *errors: dict[str, Any]) -> None:
    """Add error entries to a bag's ``info``; an ``ok`` bag becomes ``partial``."""
    if info['status'] == 'ok':
        info['status'] = 'partial'
    info['errors'].extend(errors)


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
    collector = Collector(model, options)
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
        labels, unconfirmed = frame_labels(
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


__all__ = ['BagOptions', 'audit_bag']
