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

"""Exact pointwise I±_min decomposition of a discrete distribution p(x1, x2, y).

This is the ground truth for LSMI (arXiv 2506.17248, methods.md §3). For every outcome
(x1, x2, y) with p > 0, in bits (Finn & Lizier 2018, "Pointwise partial information
decomposition using the specificity and ambiguity lattices", Entropy 20(4):297):

1. specificities   h(xm) = -log p(xm),  ambiguities  h(xm|y) = -log p(xm|y)
2. pointwise MI    i(xm;y) = h(xm) - h(xm|y),  i(x1,x2;y) = log p(y|x1,x2) - log p(y)
3. redundancy      r = min(h(x1), h(x2)) - min(h(x1|y), h(x2|y))       (I±_min)
4. uniques         u1 = i(x1;y) - r,   u2 = i(x2;y) - r
5. synergy         s = i(x1,x2;y) - r - u1 - u2

Expectations over p give the dataset-level I±_min atoms. They are *not* the BROJA atoms (OR of
two fair bits: R 0.561, U -0.25, S 0.75; UNQ: R 1, U2 -1, S 1). The LSMI reference code shifts
every sample by one dataset-level constant δ (r+δ, u1-δ, u2-δ, s+δ); :func:`shift_delta` picks
the δ of least magnitude that makes all four mean atoms non-negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dmil_ros.pid.measures import normalise

FloatArray = NDArray[np.float64]

__all__ = ['PointwisePID', 'normalise_joint', 'pointwise_pid', 'shift_delta']


@dataclass(frozen=True)
class PointwisePID:
    """Per-outcome I±_min terms (arrays shaped like the joint, NaN where p = 0) and their means.

    ``mean_*`` are the raw expectations E_p[.]; ``shifted_*`` the means after the dataset-level
    shift ``delta`` (r+δ, u1-δ, u2-δ, s+δ). All values in bits.
    """

    joint: FloatArray
    redundancy: FloatArray
    unique_1: FloatArray
    unique_2: FloatArray
    synergy: FloatArray
    pmi_1: FloatArray
    pmi_2: FloatArray
    pmi_12: FloatArray
    mean_redundancy: float
    mean_unique_1: float
    mean_unique_2: float
    mean_synergy: float
    delta: float

    @property
    def shifted_redundancy(self) -> float:
        return self.mean_redundancy + self.delta

    @property
    def shifted_unique_1(self) -> float:
        return self.mean_unique_1 - self.delta

    @property
    def shifted_unique_2(self) -> float:
        return self.mean_unique_2 - self.delta

    @property
    def shifted_synergy(self) -> float:
        return self.mean_synergy + self.delta

    def means(self, shifted: bool = False) -> tuple[float, float, float, float]:
        """(R, U1, U2, S) means, raw or shifted."""
        if shifted:
            return (
                self.shifted_redundancy,
                self.shifted_unique_1,
                self.shifted_unique_2,
                self.shifted_synergy,
            )
        return self.mean_redundancy, self.mean_unique_1, self.mean_unique_2, self.mean_synergy


def normalise_joint(joint: ArrayLike) -> FloatArray:
    """Validate a joint p[x1, x2, y] (3-D, finite, non-negative, positive sum); normalise it."""
    return normalise(joint, ndim=3, name='joint')


def shift_delta(redundancy: float, unique_1: float, unique_2: float, synergy: float) -> float:
    """The dataset-level shift δ of least magnitude making every mean atom non-negative.

    The shifted atoms are R+δ, U1-δ, U2-δ, S+δ, so δ must lie in
    [max(-R, -S), min(U1, U2)]; δ is 0 clipped to that interval (its midpoint if it is empty,
    which happens when an estimated mean information, I(X1;Y) = R + U1, I(X2;Y) = R + U2,
    I(X1;Y|X2) = U1 + S or I(X2;Y|X1) = U2 + S, is negative by estimation error).
    """
    lo = max(-redundancy, -synergy)
    hi = min(unique_1, unique_2)
    if lo > hi:
        return 0.5 * (lo + hi)
    return float(min(max(0.0, lo), hi))


def _log2(a: FloatArray) -> FloatArray:
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.log2(a)


def pointwise_pid(joint: ArrayLike) -> PointwisePID:
    """Exact per-outcome I±_min terms of a discrete p[x1, x2, y] and their expectations."""
    p = normalise_joint(joint)  # (n1, n2, ny)
    support = p > 0
    # 1. marginals
    p1y = p.sum(axis=1, keepdims=True)  # (n1, 1, ny)
    p2y = p.sum(axis=0, keepdims=True)  # (1, n2, ny)
    py = p.sum(axis=(0, 1), keepdims=True)  # (1, 1, ny)
    p1 = p1y.sum(axis=2, keepdims=True)  # (n1, 1, 1)
    p2 = p2y.sum(axis=2, keepdims=True)  # (1, n2, 1)
    p12 = p.sum(axis=2, keepdims=True)  # (n1, n2, 1)
    shape = p.shape
    with np.errstate(divide='ignore', invalid='ignore'):
        # 2. specificities and ambiguities, broadcast to every cell
        h1 = np.broadcast_to(-_log2(p1), shape)
        h2 = np.broadcast_to(-_log2(p2), shape)
        h1y = np.broadcast_to(-_log2(p1y / py), shape)
        h2y = np.broadcast_to(-_log2(p2y / py), shape)
        # 3. pointwise mutual informations
        i1 = h1 - h1y
        i2 = h2 - h2y
        i12 = _log2(p / p12) - _log2(py)
        # 4. I±_min redundancy and the rest
        r = np.minimum(h1, h2) - np.minimum(h1y, h2y)
        u1 = i1 - r
        u2 = i2 - r
        s = i12 - r - u1 - u2
    nan = np.full(shape, np.nan)
    out = [np.where(support, a, nan) for a in (r, u1, u2, s, i1, i2, i12)]
    means = [float(np.sum(p[support] * a[support])) for a in out[:4]]
    return PointwisePID(
        joint=p,
        redundancy=out[0],
        unique_1=out[1],
        unique_2=out[2],
        synergy=out[3],
        pmi_1=out[4],
        pmi_2=out[5],
        pmi_12=out[6],
        mean_redundancy=means[0],
        mean_unique_1=means[1],
        mean_unique_2=means[2],
        mean_synergy=means[3],
        delta=shift_delta(*means),
    )
