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

"""Model configuration: a frozen, validated dataclass that travels with every checkpoint.

Pure Python (no torch) so command-line modules can read and validate it cheaply.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Final, cast

from dmil_ros.actions import ACTIONS
from dmil_ros.model.errors import ModelConfigError

KINDS: Final[tuple[str, ...]] = ('dmil', 'joint', 'ensemble')
LIDAR_ENCODERS: Final[tuple[str, ...]] = ('range', 'point')
SEQUENCES: Final[tuple[str, ...]] = (
    'camera_channels',
    'lidar_channels',
    'image_shape',
    'lidar_shape',
    'vertical_fov_deg',
)
"""The fields a JSON config gives as lists (tuples in :class:`ModelConfig`)."""


RANGE_LAYERS: Final[tuple[tuple[tuple[int, int], tuple[int, int]], ...]] = (
    ((3, 5), (2, 3)),
    ((3, 3), (2, 2)),
    ((3, 3), (2, 2)),
)
"""(kernel, stride) of the range encoder's three circular convolutions, (beams, azimuth)."""


def camera_feature_size(height: int, width: int) -> tuple[int, int]:
    """The feature map (h, w) of :class:`dmil_ros.model.encoders.CameraEncoder` for an image
    of ``height`` x ``width``: three 3x3 stride-2 convolutions padded by 1 (each gives
    ceil(n / 2)), then a 2x2 average pool (floor(n / 2)); 0: the image is too small.
    """
    sizes = [height, width]
    for _ in range(3):
        sizes = [(n - 1) // 2 + 1 for n in sizes]
    return sizes[0] // 2, sizes[1] // 2


def range_feature_size(beams: int, bins: int) -> tuple[int, int]:
    """The feature map (h, w) of :class:`dmil_ros.model.encoders.RangeImageEncoder` for a range
    image of ``beams`` x ``bins``, layer by layer as :data:`RANGE_LAYERS` builds it: zero padding
    of kernel // 2 rows along beams, circular padding of kernel // 2 columns along azimuth;
    (0, 0) when the image is too small (a circular pad wider than the columns it wraps copies
    fewer columns than the layer's shape arithmetic counts).
    """
    h, w = beams, bins
    for (kh, kw), (sh, sw) in RANGE_LAYERS:
        if w < kw // 2:
            return 0, 0
        h = (h + 2 * (kh // 2) - kh) // sh + 1
        w = (w + 2 * (kw // 2) - kw) // sw + 1
        if min(h, w) < 1:
            return 0, 0
    return h, w


def gate_width(hidden: int) -> int:
    """The width of DMIL's gate MLP (:class:`dmil_ros.model.dmil.DMIL`) for ``hidden``."""
    return hidden // 2


def _bound(value: float) -> str:
    # ints exactly: '{:g}' would print 2**63 as 9.22337e+18
    return str(value) if isinstance(value, int) else f'{value:g}'


def check_value(
    section: str,
    name: str,
    value: object,
    *,
    integer: bool = False,
    low: float = 0.0,
    low_open: bool = False,
    high: float | None = None,
    high_open: bool = False,
    error: type[Exception] = ModelConfigError,
) -> None:
    """Raise ``error`` naming ``section``, ``name`` and ``value`` unless ``value`` is a number of
    the right kind (``integer``: an int, else an int or finite float; never a bool) in
    ``[low, high]`` (``low_open`` / ``high_open``: that end excluded; ``high`` None: no bound).
    """
    kind = 'an integer' if integer else 'a finite number'
    ok_type = isinstance(value, int) or (not integer and isinstance(value, float))
    if isinstance(value, bool) or not ok_type:
        msg = f'{section}: {name}={value!r} must be {kind}, not {type(value).__name__}'
        raise error(msg)
    # an int is compared as it is (Python compares int and float exactly): float() would round
    # 2**63 - 1 up to 2**63, and raise OverflowError past 1e308
    v = cast('int | float', value)
    ok = (isinstance(v, int) or math.isfinite(v)) and (v > low if low_open else v >= low)
    if high is not None:
        ok = ok and (v < high if high_open else v <= high)
    if not ok:
        lo = f'{"(" if low_open else "["}{_bound(low)}'
        hi = 'inf)' if high is None else f'{_bound(high)}{")" if high_open else "]"}'
        msg = f'{section}: {name}={value!r} must be {kind} in {lo}, {hi}'
        raise error(msg)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the networks (defaults: the shipped hallway models).

    ``feature_dim`` is D, the encoder output; ``latent_dim`` is E, the size of every variational
    latent (M, N, R, U, S); ``hidden`` the width of the small MLPs (joint head, synergy, gate).
    """

    kind: str = 'dmil'
    lidar_encoder: str = 'range'
    feature_dim: int = 64
    latent_dim: int = 16
    hidden: int = 64
    camera_channels: tuple[int, int, int] = (16, 32, 32)
    lidar_channels: tuple[int, int, int] = (16, 32, 32)
    image_shape: tuple[int, int, int] = (3, 48, 64)
    lidar_shape: tuple[int, int, int] = (2, 16, 180)
    num_actions: int = 4
    vertical_fov_deg: tuple[float, float] = (-15.0, 15.0)
    id_encoder_grad: float = 0.0  # share of the ID losses' gradient reaching the encoders
    # share of the stage-1 pair head's gradient (linear on [N1, N2, N1 * N2]) reaching the
    # encoders; None: the same as id_encoder_grad (the shipped models)
    pair_encoder_grad: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            msg = f'model config: kind={self.kind!r} is not one of {list(KINDS)}'
            raise ModelConfigError(msg)
        if self.lidar_encoder not in LIDAR_ENCODERS:
            msg = (
                f'model config: lidar_encoder={self.lidar_encoder!r} is not one of '
                f'{list(LIDAR_ENCODERS)}'
            )
            raise ModelConfigError(msg)
        positive = {
            'feature_dim': self.feature_dim,
            'latent_dim': self.latent_dim,
            'hidden': self.hidden,
            'num_actions': self.num_actions,
        }
        for name, value in positive.items():
            check_value('model config', name, value, integer=True, low_open=True)
        if self.num_actions != len(ACTIONS):  # the labels index dmil_ros.actions.ACTIONS
            msg = (
                f'model config: num_actions={self.num_actions!r} must be {len(ACTIONS)}, the '
                f'number of actions {list(ACTIONS)} the labels and the exported model use'
            )
            raise ModelConfigError(msg)
        for name in ('camera_channels', 'lidar_channels', 'image_shape', 'lidar_shape'):
            value = getattr(self, name)
            if (
                not isinstance(value, tuple | list)
                or len(value) != 3
                or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in value)
            ):
                msg = f'model config: {name}={value!r} must be three positive integers'
                raise ModelConfigError(msg)
        check_value('model config', 'id_encoder_grad', self.id_encoder_grad, high=1.0)
        if self.pair_encoder_grad is not None:
            check_value('model config', 'pair_encoder_grad', self.pair_encoder_grad, high=1.0)
        fov: Any = self.vertical_fov_deg  # loaded from JSON: type and length unchecked
        if not isinstance(fov, tuple | list) or len(fov) != 2:
            msg = f'model config: vertical_fov_deg={fov!r} must be two numbers'
            raise ModelConfigError(msg)
        for v in fov:
            check_value('model config', 'vertical_fov_deg', v, low=-90.0, high=90.0)
        if self.image_shape[0] != 3 or self.lidar_shape[0] != 2:
            msg = (
                f'model config: image_shape={self.image_shape!r} / lidar_shape='
                f'{self.lidar_shape!r}: expected 3 image channels and 2 range-image channels'
            )
            raise ModelConfigError(msg)
        if min(camera_feature_size(*self.image_shape[1:])) < 1:
            msg = (
                f'model config: image_shape={self.image_shape!r} is too small for the camera '
                'encoder (three stride-2 convolutions and a 2x2 pool): height and width must '
                'be at least 9'
            )
            raise ModelConfigError(msg)
        _, beams, bins = self.lidar_shape
        if self.lidar_encoder == 'range' and min(range_feature_size(beams, bins)) < 1:
            least = next(w for w in itertools.count(1) if min(range_feature_size(beams, w)) >= 1)
            msg = (
                f'model config: lidar_shape={self.lidar_shape!r}: azimuth_bins={bins!r} must be '
                f'an integer in [{least}, inf) for lidar_encoder range (its circular padding '
                f'wraps {RANGE_LAYERS[0][0][1] // 2} columns on each side of the range image)'
            )
            raise ModelConfigError(msg)
        if self.kind == 'dmil' and gate_width(self.hidden) < 1:
            least = next(h for h in itertools.count(1) if gate_width(h) >= 1)
            msg = (
                f'model config: hidden={self.hidden!r} must be an integer in [{least}, inf) for '
                f'kind dmil: its gate MLP is {gate_width(self.hidden)} wide at this hidden, and '
                'a 0-wide layer gives every frame the same gates'
            )
            raise ModelConfigError(msg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, raw: Any) -> ModelConfig:
        if not isinstance(raw, dict):
            msg = f'model config: expected an object, got {type(raw).__name__} {raw!r}'
            raise ModelConfigError(msg)
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            msg = f'model config: unknown keys {sorted(unknown)}'
            raise ModelConfigError(msg)
        values = dict(raw)
        for key in SEQUENCES:
            if key not in values:
                continue
            value = values[key]
            if not isinstance(value, list | tuple):
                msg = f'model config: {key}={value!r} must be a list, not {type(value).__name__}'
                raise ModelConfigError(msg)
            values[key] = tuple(value)
        try:
            return cls(**values)
        except TypeError as exc:
            msg = f'model config: {exc}'
            raise ModelConfigError(msg) from exc


@dataclass(frozen=True)
class LossWeights:
    alpha: float = 0.01  # variational KL (I(Z; M), I(Z; N), R, U)
    beta: float = 0.1  # CD alignment of the R posteriors
    gamma: float = 0.1  # decoupling I(U_m; R)
    recon: float = 0.1
    sub: float = 1.0
    pair: float = 1.0  # stage-1 joint-task head on [N1, N2, N1 * N2]
    complexity: float = 0.0
    gate_profile: float = 1.0  # gate cross-entropy to the discriminators' interaction profile
    profile_tau: float = 0.75  # p(y|x_m) above which modality m alone 'knows' the action
    profile_temperature: float = 0.05
    sub_floor: float = 0.1  # every sub-head also learns every frame with this weight
    gate_family: float = 0.0

    def __post_init__(self) -> None:
        """Finite non-negative weights; ``profile_tau`` a probability; a positive temperature."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == 'profile_tau':
                check_value('loss', f.name, value, high=1.0)
            elif f.name == 'profile_temperature':
                check_value('loss', f.name, value, low_open=True)
            else:
                check_value('loss', f.name, value)
