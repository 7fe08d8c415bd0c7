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

"""Synergy indicator of a multimodal model (DMIL, methods.md §4).

The share of samples where the joint (multimodal) prediction is right and both unimodal
predictions are wrong: (1/N) Σ_i [ŷ12_i = y_i] [ŷ1_i ≠ y_i] [ŷ2_i ≠ y_i]. A joint prediction
that always takes one head's answer scores 0, and so does a late ensemble that averages the
heads' probabilities on a binary task; with three or more classes the average can be right
where both heads are wrong (p1 = [.4, 0, .6], p2 = [.4, .6, 0], y = 0), so a late ensemble
scores near 0, not exactly 0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dmil_ros.pid.errors import PIDInputError

__all__ = ['synergy_indicator']


def _predictions(a: NDArray[np.generic], n: int, name: str) -> NDArray[np.int64]:
    """Class indices (N,) from indices (N,) or scores/probabilities (N, C) (argmax)."""
    arr = np.asarray(a)
    if arr.ndim == 2 and arr.shape[0] == n:
        if not np.all(np.isfinite(arr)):
            raise PIDInputError(f'{name}: non-finite scores')
        return np.asarray(np.argmax(arr, axis=1), dtype=np.int64)
    if arr.shape == (n,) and np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    msg = f'{name}: expected ({n},) class indices or ({n}, C) scores, got {arr.dtype} {arr.shape}'
    raise PIDInputError(msg)


def synergy_indicator(
    labels: NDArray[np.integer],
    pred_joint: NDArray[np.generic],
    pred_1: NDArray[np.generic],
    pred_2: NDArray[np.generic],
) -> float:
    """Share of samples with the joint prediction right and both unimodal ones wrong.

    Predictions are class indices (N,) or scores / probabilities (N, C) (argmax taken).
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        msg = f'labels: expected a non-empty (N,) integer array, got {y.dtype} {y.shape}'
        raise PIDInputError(msg)
    n = len(y)
    j = _predictions(pred_joint, n, 'pred_joint')
    a = _predictions(pred_1, n, 'pred_1')
    b = _predictions(pred_2, n, 'pred_2')
    return float(np.mean((j == y) & (a != y) & (b != y)))
