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

"""Training arrays in memory and their on-disk cache (``.npz`` without pickle).

``Arrays`` holds model-ready tensors exactly as :mod:`dmil_ros.runtime.preprocess` made them,
plus labels, scene families (-1 where the bag has no ground truth, or where the pair's camera
frame and sweep come from two scene segments, or the sweep's scene is not known) and camera
stamps (integer nanoseconds, exact: they match ``/sim/ground_truth`` stamps).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dmil_ros.atomic import atomic_write
from dmil_ros.train.errors import DataError

if TYPE_CHECKING:
    from dmil_ros.train.config import DataConfig

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

FIELDS = ('image', 'lidar', 'action', 'family', 'stamp', 'segment')


@dataclass(frozen=True)
class Arrays:
    image: F32  # (N, 3, H, W)
    lidar: F32  # (N, 2, beams, bins)
    action: I64  # (N,)
    family: I64  # (N,) index into FAMILIES, -1 unknown
    stamp: I64  # (N,) camera header stamp, nanoseconds
    segment: I64  # (N,) recording id (bag index), for the time-block split

    def __post_init__(self) -> None:
        n = self.action.shape[0]
        for name in FIELDS:
            if getattr(self, name).shape[0] != n:
                msg = f'arrays: field {name!r} has {getattr(self, name).shape[0]} rows, not {n}'
                raise DataError(msg)

    def __len__(self) -> int:
        return int(self.action.shape[0])

    def subset(self, index: npt.NDArray[np.int64] | npt.NDArray[np.bool_]) -> Arrays:
        return Arrays(**{name: getattr(self, name)[index] for name in FIELDS})

    @staticmethod
    def concat(parts: list[Arrays]) -> Arrays:
        if not parts:
            msg = 'arrays: nothing to concatenate (no bag gave any pair)'
            raise DataError(msg)
        return Arrays(
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in FIELDS}
        )

    def save(self, path: Path) -> None:
        """Write an uncompressed ``.npz`` atomically (see :func:`dmil_ros.atomic.atomic_write`)."""
        atomic_write(path, lambda f: np.savez(f, **{name: getattr(self, name) for name in FIELDS}))

    @staticmethod
    def load(path: Path) -> Arrays:
        try:
            with np.load(path, allow_pickle=False) as data:
                raw = {name: data[name] for name in FIELDS}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            msg = f'cache {str(path)!r}: cannot be read ({exc})'
            raise DataError(msg) from exc
        return Arrays(
            image=raw['image'].astype(np.float32, copy=False),
            lidar=raw['lidar'].astype(np.float32, copy=False),
            action=raw['action'].astype(np.int64, copy=False),
            family=raw['family'].astype(np.int64, copy=False),
            stamp=_stamp_ns(raw['stamp']),
            segment=raw['segment'].astype(np.int64, copy=False),
        )


def _stamp_ns(raw: npt.NDArray[Any]) -> I64:
    """Stamps as int64 ns (early caches stored float seconds: converted)."""
    if np.issubdtype(raw.dtype, np.floating):
        return np.round(raw * 1e9).astype(np.int64)
    return raw.astype(np.int64, copy=False)


def run_split(arrays: Arrays, data: DataConfig) -> tuple[Arrays, Arrays]:
    """A run's training and validation frames when it has no validation bags: the
    :func:`time_block_split` of its bags, as the trainer splits them and the export leaves the
    validation blocks out of its PID fit (one function, so the two cannot drift apart)."""
    train_rows, val_rows = time_block_split(arrays, data.val_fraction, data.block_seconds)
    return arrays.subset(train_rows), arrays.subset(val_rows)


def time_block_split(
    arrays: Arrays, val_fraction: float, block_seconds: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Train / validation indices by contiguous time blocks, never by random frames.

    1. within each recording (``segment``), frame i falls in block floor((t_i - t_0) / T);
    2. blocks are numbered across recordings in time order;
    3. every block whose running index hits the validation stride goes to validation:
       block b is validation iff floor((b + 1) f) > floor(b f), which spreads a fraction f of
       the blocks evenly over the recordings (deterministic, no RNG);
    4. fallback: when the stride picks no block that holds frames (short recordings: with
       f = 0.2 the first validation block is block 4, so anything under 5 T long), the last
       block in time order (the highest block number) is validation instead; with a single
       block there is nothing to hold out and :class:`DataError` names the duration, T and f.

    Rule 3 alone decides the split wherever it yields a validation block, so runs that had one
    keep exactly the same validation frames.
    """
    if not 0 < val_fraction < 1:
        msg = f'split: val_fraction={val_fraction!r} must be in (0, 1)'
        raise DataError(msg)
    if not block_seconds > 0:
        msg = f'split: block_seconds={block_seconds!r} must be positive'
        raise DataError(msg)
    if not len(arrays):
        msg = 'split: no frames to split'
        raise DataError(msg)
    block = np.zeros(len(arrays), np.int64)
    offset = 0
    duration = 0.0
    for seg in np.unique(arrays.segment):
        rows = np.flatnonzero(arrays.segment == seg)
        t = (arrays.stamp[rows] - arrays.stamp[rows].min()) * 1e-9  # (n,) seconds
        duration = max(duration, float(t.max()))
        local = np.floor(t / block_seconds).astype(np.int64)
        block[rows] = local + offset
        offset += int(local.max()) + 1
    is_val = np.floor((block + 1) * val_fraction) > np.floor(block * val_fraction)
    if not is_val.any():
        if np.unique(block).size < 2:
            msg = (
                f'split: the recording lasts {duration:.1f} s, one block of block_seconds='
                f'{block_seconds} s: no time block left for validation (val_fraction='
                f'{val_fraction}); record longer or lower data.block_seconds'
            )
            raise DataError(msg)
        is_val = block == block.max()
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
