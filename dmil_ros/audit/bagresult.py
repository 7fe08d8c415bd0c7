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

"""What the per-bag stage of an audit produces, and how it is stored under ``DIR/bags/<name>/``.

``frames.npz`` holds the per-frame arrays (numpy ``savez``, loaded with ``allow_pickle=False``);
``bag.json`` the bag's account (status, counts, read problems, ground-truth sidecar) and the key
of the options it was computed with. ``bag.json`` is written last, atomically: a bag directory
with a ``bag.json`` whose key matches is finished, and a resumed audit skips it.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dmil_ros.atomic import atomic_write, atomic_write_text
from dmil_ros.audit.errors import AuditInputError

F32 = npt.NDArray[np.float32]
ARRAYS = (
    'stamp',  # (N,) int64 camera stamp, ns
    'lidar_stamp',  # (N,) int64 the paired sweep's stamp, ns (degraded frames: not audited)
    'probs',  # (N, 4) the model's action probabilities
    'gates',  # (N, 4) NaN without gates
    'p_camera',  # (N, 4) p(y|x_camera): head or calibrated masking
    'p_lidar',  # (N, 4)
    'p_joint',  # (N, 4) joint head, else probs
    'feat_camera',  # (N, D1) features for densities and clustering
    'feat_lidar',  # (N, D2)
    'self_lsmi',  # (N, 4) the model's own pid_lsmi output, NaN without
    'self_broja',  # (N, 4) the model's own pid_broja output (the node's alarm input), NaN without
    'label',  # (N,) int64 recorded action index, -1 without
    'family',  # (N,) int64 index into FAMILIES, -1 without ground truth
    'segment',  # (N,) int64 ground-truth segment id, -1 without
    'camera_latent',  # (N,) int64 ground-truth latent, -1 without
    'lidar_latent',  # (N,) int64
    'alert',  # (N,) bool runtime monitor alert
)


@dataclass
class BagResult:
    """Per-frame arrays of one bag plus its account (``info``)."""

    name: str
    arrays: dict[str, npt.NDArray[Any]]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [k for k in ARRAYS if k not in self.arrays]
        if missing:
            msg = f'bag {self.name!r}: result arrays missing {missing}'
            raise AuditInputError(msg)
        n = {k: len(v) for k, v in self.arrays.items()}
        if len(set(n.values())) > 1:
            msg = f'bag {self.name!r}: result arrays differ in length {n}'
            raise AuditInputError(msg)

    @property
    def frames(self) -> int:
        return len(self.arrays['stamp'])

    @classmethod
    def empty(
        cls, name: str, info: dict[str, Any], feat_dims: tuple[int, int] = (4, 4)
    ) -> BagResult:
        four = np.zeros((0, 4), np.float32)
        arrays: dict[str, npt.NDArray[Any]] = dict.fromkeys(ARRAYS, four)
        arrays['feat_camera'] = np.zeros((0, feat_dims[0]), np.float32)
        arrays['feat_lidar'] = np.zeros((0, feat_dims[1]), np.float32)
        for k in (
            'stamp',
            'lidar_stamp',
            'label',
            'family',
            'segment',
            'camera_latent',
            'lidar_latent',
        ):
            arrays[k] = np.zeros(0, np.int64)
        arrays['alert'] = np.zeros(0, bool)
        return cls(name, arrays, info)


def save(result: BagResult, directory: Path, key: str) -> None:
    """Write ``frames.npz`` then ``bag.json`` (the completion marker) atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {k: result.arrays[k] for k in ARRAYS}
    atomic_write(directory / 'frames.npz', lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
    info = dict(result.info, name=result.name, frames=result.frames, key=key)
    atomic_write_text(directory / 'bag.json', json.dumps(info, indent=1, default=str))


def load_if_done(directory: Path, key: str) -> BagResult | None:
    """The result in ``directory`` if it is finished and was computed with options ``key``,
    else None; :class:`AuditInputError` when it is marked so but its arrays do not read."""
    marker = directory / 'bag.json'
    if not marker.is_file() or not (directory / 'frames.npz').is_file():
        return None
    try:
        info = json.loads(marker.read_text(encoding='utf-8'))
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8 text
        return None
    if not isinstance(info, dict) or info.get('key') != key:
        return None
    try:
        with np.load(directory / 'frames.npz', allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ARRAYS}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        msg = f'{directory}: unreadable bag result ({type(exc).__name__}: {exc})'
        raise AuditInputError(msg) from exc
    return BagResult(str(info.get('name', directory.name)), arrays, info)


__all__ = ['ARRAYS', 'BagResult', 'load_if_done', 'save']
