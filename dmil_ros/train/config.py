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

"""Training configuration: data, schedule, loss weights and model, one JSON file.

Pure Python (no torch). ``TrainConfig.load(path)`` reads JSON; unknown keys are errors so that a
typo never silently falls back to a default. See ``config/train_hallway.json``.

Labels (``data.label_source``):

* ``action``: a ``std_msgs/String`` topic whose data is one of ``dmil_ros.actions.ACTIONS``,
  matched to each camera image by the bag's receive time (nearest within ``slop``);
* ``cmd_vel``: ``geometry_msgs/Twist`` or ``TwistStamped`` (Nav2 on Jazzy) discretised with
  the thresholds below, in this order:
  |angular.z| >= ``turn_rate`` -> ``left`` if angular.z > 0 else ``right``;
  otherwise linear.x >= ``forward_speed`` -> ``forward``; otherwise ``stop``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Final, TypeVar

from dmil_ros.errors import ConfigError
from dmil_ros.model.config import LossWeights, ModelConfig, check_value
from dmil_ros.model.errors import ModelConfigError
from dmil_ros.runtime.preprocess import PreprocessSpec
from dmil_ros.train.errors import TrainConfigError

LABEL_SOURCES: Final[tuple[str, ...]] = ('action', 'cmd_vel')
SEED_LIMIT: Final = 2**63
"""Seeds are int64 (torch takes up to 2**64 - 1, numpy int64 arrays and JSON int64 readers not)."""
MAX_THREADS: Final = 1024
"""More than any machine this trains on has cores: torch's C int overflows at 2**31, and below
that OpenMP would try to start every thread asked for."""


@dataclass(frozen=True)
class DataConfig:
    camera_topic: str = '/camera/image_raw'
    lidar_topic: str = '/lidar/points'
    label_source: str = 'action'
    action_topic: str = '/expert/action'
    cmd_vel_topic: str = '/cmd_vel'
    ground_truth_topic: str = '/sim/ground_truth'
    lidar_truth_topic: str = '/sim/lidar_truth'  # per-sweep scene (simulator bags)
    slop: float = 0.06  # seconds, camera <-> LiDAR and camera <-> label
    forward_speed: float = 0.25  # m/s, cmd_vel discretisation
    turn_rate: float = 0.4  # rad/s, cmd_vel discretisation
    val_fraction: float = 0.2
    block_seconds: float = 10.0  # time blocks for the train / validation split

    def __post_init__(self) -> None:
        for name in ('camera_topic', 'lidar_topic', 'action_topic', 'cmd_vel_topic',
                     'ground_truth_topic', 'lidar_truth_topic', 'label_source'):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                msg = f'data: {name}={value!r} must be a non-empty string'
                raise TrainConfigError(msg)
        if self.label_source not in LABEL_SOURCES:
            msg = f'data: label_source={self.label_source!r} is not one of {list(LABEL_SOURCES)}'
            raise TrainConfigError(msg)
        e = TrainConfigError
        check_value('data', 'slop', self.slop, low_open=True, error=e)
        check_value('data', 'forward_speed', self.forward_speed, error=e)
        check_value('data', 'turn_rate', self.turn_rate, low_open=True, error=e)
        check_value('data', 'val_fraction', self.val_fraction, low_open=True, high=1.0,
                    high_open=True, error=e)  # fmt: skip
        check_value('data', 'block_seconds', self.block_seconds, low_open=True, error=e)


@dataclass(frozen=True)
class ScheduleConfig:
    """Three-stage schedule (methods.md §4); baselines train ``baseline_epochs`` at ``lr1``.

    Adam instead of the authors' SGD with momentum: on our short CPU budget it converges in far
    fewer epochs. Each stage starts from the previous stage's best checkpoint (validation).
    """

    stage1_epochs: int = 8
    stage2_epochs: int = 4
    stage3_epochs: int = 2
    baseline_epochs: int = 10
    lr1: float = 2e-3
    lr2: float = 2e-3
    lr3: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 128
    seed: int = 0
    threads: int = 1
    # augmentation of training batches (stages that run the encoders): per-frame contrast
    # factor 1 +- brightness, additive noise (standardised units), azimuth roll +- lidar_roll bins;
    # off by default: on the hallway bags it slowed learning (joint-head validation accuracy 0.95
    # with, 0.99 without, after 4 epochs) and held-out seeds did not need it
    brightness: float = 0.0
    image_noise: float = 0.0
    lidar_roll: int = 0

    def __post_init__(self) -> None:
        """Integers for counts, finite numbers for rates; ranges as the trainer needs them."""
        e = TrainConfigError
        for name in ('stage1_epochs', 'stage2_epochs', 'stage3_epochs', 'baseline_epochs',
                     'lidar_roll'):  # fmt: skip
            check_value('schedule', name, getattr(self, name), integer=True, error=e)
        check_value('schedule', 'seed', self.seed, integer=True, high=SEED_LIMIT, high_open=True,
                    error=e)  # fmt: skip
        check_value('schedule', 'threads', self.threads, integer=True, low=1, high=MAX_THREADS,
                    error=e)  # fmt: skip
        # a batch of one frame is skipped (BatchNorm needs two): with batch_size 1 no step is
        # ever taken and the run would ship its random initialisation
        check_value('schedule', 'batch_size', self.batch_size, integer=True, low=2, error=e)
        for name in ('lr1', 'lr2', 'lr3'):
            check_value('schedule', name, getattr(self, name), low_open=True, error=e)
        check_value('schedule', 'weight_decay', self.weight_decay, error=e)
        check_value('schedule', 'image_noise', self.image_noise, error=e)
        # contrast factor 1 +- brightness must stay positive
        check_value('schedule', 'brightness', self.brightness, high=1.0, high_open=True, error=e)


_T = TypeVar('_T')


def _section(cls: type[_T], raw: Any, name: str) -> _T:
    if not isinstance(raw, dict):
        msg = f'config: section {name!r} must be an object, got {type(raw).__name__}'
        raise TrainConfigError(msg)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(raw) - known
    if unknown:
        msg = f'config: section {name!r} has unknown keys {sorted(unknown)}'
        raise TrainConfigError(msg)
    try:
        return cls(**raw)
    except TypeError as exc:
        msg = f'config: section {name!r}: {exc}'
        raise TrainConfigError(msg) from exc
    except ModelConfigError as exc:  # LossWeights lives in dmil_ros.model
        msg = f'config: section {name!r}: {exc}'
        raise TrainConfigError(msg) from exc


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)

    def __post_init__(self) -> None:
        spec, m = self.preprocess, self.model
        if spec.image_shape != m.image_shape or spec.lidar_shape != m.lidar_shape:
            msg = (
                f'config: model shapes image {m.image_shape} / lidar {m.lidar_shape} do not '
                f'match the preprocess spec ({spec.image_shape} / {spec.lidar_shape})'
            )
            raise TrainConfigError(msg)
        if tuple(spec.vertical_fov_deg) != tuple(m.vertical_fov_deg):
            msg = (
                f'config: model vertical_fov_deg {m.vertical_fov_deg} differs from the '
                f'preprocess spec {spec.vertical_fov_deg}'
            )
            raise TrainConfigError(msg)
        # refused here, not by the trainer: a refused run must not have rewritten config.json
        s = self.schedule
        epochs = (
            {'stage1_epochs': s.stage1_epochs, 'stage2_epochs': s.stage2_epochs,
             'stage3_epochs': s.stage3_epochs}
            if m.kind == 'dmil' else {'baseline_epochs': s.baseline_epochs}
        )  # fmt: skip
        if not any(epochs.values()):
            msg = (
                f'config: every stage of the schedule has 0 epochs for kind {m.kind} '
                f'({", ".join(f"schedule.{k}=0" for k in epochs)}): at least one must be >= 1'
            )
            raise TrainConfigError(msg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    def with_kind(self, kind: str) -> TrainConfig:
        raw = self.to_dict()
        raw['model']['kind'] = kind
        return TrainConfig.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> TrainConfig:
        if not isinstance(raw, dict):
            msg = f'config: expected an object, got {type(raw).__name__}'
            raise TrainConfigError(msg)
        unknown = set(raw) - {'model', 'data', 'schedule', 'loss', 'preprocess'}
        if unknown:
            msg = f'config: unknown sections {sorted(unknown)}'
            raise TrainConfigError(msg)
        try:
            model = ModelConfig.from_dict(raw.get('model', {}))
        except ModelConfigError as exc:
            raise TrainConfigError(str(exc)) from exc
        try:
            spec = PreprocessSpec.from_json(json.dumps(raw.get('preprocess', {})))
        except ConfigError as exc:
            raise TrainConfigError(str(exc)) from exc
        return cls(
            model=model,
            preprocess=spec,
            data=_section(DataConfig, raw.get('data', {}), 'data'),
            schedule=_section(ScheduleConfig, raw.get('schedule', {}), 'schedule'),
            loss=_section(LossWeights, raw.get('loss', {}), 'loss'),
        )

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            text = path.read_text(encoding='utf-8')
        except OSError as exc:
            msg = f'config {str(path)!r}: cannot read ({exc})'
            raise TrainConfigError(msg) from exc
        except UnicodeDecodeError as exc:
            msg = f'config {str(path)!r}: not a JSON text file (not UTF-8: {exc})'
            raise TrainConfigError(msg) from exc
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f'config {str(path)!r}: not JSON ({exc})'
            raise TrainConfigError(msg) from exc
        try:
            return cls.from_dict(raw)
        except TrainConfigError as exc:
            msg = f'config {str(path)!r}: {exc}'
            raise TrainConfigError(msg) from exc
