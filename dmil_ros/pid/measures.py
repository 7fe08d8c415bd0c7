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

"""Small information measures on joint probability arrays, in bits.

Every function takes a joint distribution as an ``n``-D array ``p[x_0, ..., x_{n-1}]`` (one axis
per variable) and works on marginals of it. Zero cells contribute nothing (``0 log 0 = 0``).

Formulas (Cover & Thomas, *Elements of Information Theory*, ch. 2):

    H(A) = -sum_a p(a) log2 p(a)
    I(A;B) = H(A) + H(B) - H(A,B)
    I(A;B|C) = H(A,C) + H(B,C) - H(A,B,C) - H(C)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dmil_ros.pid.errors import PIDInputError

__all__ = [
    'conditional_entropy',
    'conditional_mutual_information',
    'entropy',
    'marginal',
    'mutual_information',
    'normalise',
    'pid_informations',
]

_LN2 = float(np.log(2.0))


def normalise(
    joint: ArrayLike, ndim: int | None = None, name: str = 'joint'
) -> NDArray[np.float64]:
    """Validate a joint array of probabilities or counts and return it as float64 summing to 1.

    Raises :class:`PIDInputError` (naming ``name``) for a wrong number of dimensions, an empty
    array, negative or non-finite entries, or an all-zero array; and for a masked array (its
    hidden cells would count as data) or complex entries (their imaginary parts would be
    dropped with a mere warning).
    """
    if np.ma.isMaskedArray(joint):
        msg = f'{name}: a masked array (fill the masked cells, e.g. with .filled(0))'
        raise PIDInputError(msg)
    if np.iscomplexobj(joint):
        msg = f'{name}: complex entries (probabilities and counts are real)'
        raise PIDInputError(msg)
    try:
        arr = np.asarray(joint, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        msg = f'{name}: cannot be read as a float array ({exc})'
        raise PIDInputError(msg) from exc
    if ndim is not None and arr.ndim != ndim:
        msg = f'{name}: expected a {ndim}-D array, got shape {arr.shape}'
        raise PIDInputError(msg)
    if arr.size == 0:
        msg = f'{name}: empty array of shape {arr.shape}'
        raise PIDInputError(msg)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        msg = f'{name}: non-finite entry {arr[tuple(bad)]!r} at index {tuple(int(i) for i in bad)}'
        raise PIDInputError(msg)
    if np.any(arr < 0):
        bad = np.argwhere(arr < 0)[0]
        msg = f'{name}: negative entry {arr[tuple(bad)]!r} at index {tuple(int(i) for i in bad)}'
        raise PIDInputError(msg)
    total = float(arr.sum())
    if not total > 0:
        msg = f'{name}: all entries are zero'
        raise PIDInputError(msg)
    if not np.isfinite(total):  # finite entries whose sum overflows: dividing gives zeros
        scale = float(arr.max())
        arr = arr / scale
        total = float(arr.sum())
    return arr / total


def marginal(joint: NDArray[np.float64], keep: Iterable[int]) -> NDArray[np.float64]:
    """Marginal of ``joint`` on the axes ``keep`` (kept in increasing axis order)."""
    keep_set = set()
    for k in keep:
        if not isinstance(k, int | np.integer) or isinstance(k, bool):
            msg = f'axis {k!r} is not an integer'  # int(0.5) would have read it as axis 0
            raise PIDInputError(msg)
        if not -joint.ndim <= int(k) < joint.ndim:
            msg = f'axis {int(k)} out of range for a {joint.ndim}-d joint'
            raise PIDInputError(msg)
        keep_set.add(int(k) % joint.ndim)
    drop = tuple(i for i in range(joint.ndim) if i not in keep_set)
    return np.asarray(joint.sum(axis=drop), dtype=np.float64) if drop else joint


def _h(p: NDArray[np.float64]) -> float:
    """Entropy in bits of an (already normalised) array of probabilities."""
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum() / _LN2)


def entropy(joint: ArrayLike, axes: Sequence[int] | None = None) -> float:
    """H of the variables on ``axes`` (all axes when None), in bits."""
    p = normalise(joint)
    return _h(p if axes is None else marginal(p, axes))


def conditional_entropy(joint: ArrayLike, axes: Sequence[int], given: Sequence[int]) -> float:
    """H(A|C) = H(A,C) - H(C) in bits; ``axes`` are A, ``given`` are C."""
    p = normalise(joint)
    return _h(marginal(p, [*axes, *given])) - _h(marginal(p, given))


def mutual_information(joint: ArrayLike, a: Sequence[int], b: Sequence[int]) -> float:
    """I(A;B) = H(A) + H(B) - H(A,B) in bits between the variables on axes ``a`` and ``b``."""
    p = normalise(joint)
    value = _h(marginal(p, a)) + _h(marginal(p, b)) - _h(marginal(p, [*a, *b]))
    return max(value, 0.0)


def conditional_mutual_information(
    joint: ArrayLike, a: Sequence[int], b: Sequence[int], c: Sequence[int]
) -> float:
    """I(A;B|C) = H(A,C) + H(B,C) - H(A,B,C) - H(C) in bits."""
    p = normalise(joint)
    value = (
        _h(marginal(p, [*a, *c]))
        + _h(marginal(p, [*b, *c]))
        - _h(marginal(p, [*a, *b, *c]))
        - _h(marginal(p, c))
    )
    return max(value, 0.0)


def pid_informations(joint: ArrayLike) -> tuple[float, float, float]:
    """(I(X1;Y), I(X2;Y), I(X1,X2;Y)) in bits for a joint ``p[x1, x2, y]``."""
    p = normalise(joint, ndim=3)
    h_y = _h(marginal(p, [2]))
    h_1 = _h(marginal(p, [0]))
    h_2 = _h(marginal(p, [1]))
    h_12 = _h(marginal(p, [0, 1]))
    i_1 = h_1 + h_y - _h(marginal(p, [0, 2]))
    i_2 = h_2 + h_y - _h(marginal(p, [1, 2]))
    i_12 = h_12 + h_y - _h(p)
    return max(i_1, 0.0), max(i_2, 0.0), max(i_12, 0.0)
