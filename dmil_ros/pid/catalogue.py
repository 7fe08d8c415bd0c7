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

"""Canonical two-source distributions p[x1, x2, y] with their analytic BROJA atoms (bits).

Each entry is built from its defining rule, never from a solver. Values and derivations:

- XOR   X1, X2 fair independent bits, Y = X1 xor X2: I(X1;Y) = I(X2;Y) = 0, I(X1,X2;Y) = 1,
        so R = U1 = U2 = 0 and S = 1.
- AND   Y = X1 and X2: I(Xi;Y) = H(Y) - H(Y|Xi) = h(1/4) - 1/2 = 0.311278; the optimum of Δp
        makes X1, X2 conditionally dependent enough that U1 = U2 = 0 (Bertschinger et al. 2014,
        Example 30), so R = 0.311278 and S = I(X1,X2;Y) - R = h(1/4) - R = 0.5.
- OR    Y = X1 or X2: the relabelling x -> 1 - x of both sources and the target maps it to AND,
        so its atoms are AND's.
- RDN   X1 = X2 = Y, one fair bit: R = 1.
- UNQ1  X1, X2 fair independent bits, Y = X1: U1 = 1 (UNQ2: Y = X2, U2 = 1).
- COPY  X1, X2 fair independent bits, Y = (X1, X2) (4 outcomes): U1 = U2 = 1 (Bertschinger
        et al. 2014, Example 31; R = 0 because X1 and X2 are independent).
- RDN_XOR (Griffith & Koch 2014 'RdnXor'): X1 = (r, a), X2 = (r, b), Y = (r, a xor b) with r,
        a, b fair bits: R = 1, S = 1.
- RDN_UNQ_XOR (Griffith & Koch 2014 'RdnUnqXor'): X1 = (r, u1, a), X2 = (r, u2, b),
        Y = (r, u1, u2, a xor b): R = U1 = U2 = S = 1.
- Mixtures: :func:`disjoint_mixture` of two catalogue entries on disjoint alphabets
        (a hidden switch W that every variable reveals) has atoms w·A + (1-w)·B, plus h(w) bits
        of redundancy because W is known to both sources and the target. The
        dataclass :class:`Canonical` carries the atoms of any such mixture.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dmil_ros.pid.errors import PIDInputError

__all__ = [
    'CATALOGUE',
    'Canonical',
    'and_gate',
    'copy_gate',
    'disjoint_mixture',
    'from_rule',
    'get',
    'joint',
    'or_gate',
    'rdn',
    'rdn_unq_xor',
    'rdn_xor',
    'unq',
    'xor_gate',
]

FloatArray = NDArray[np.float64]


def _h2(w: float) -> float:
    """Binary entropy in bits."""
    if w <= 0.0 or w >= 1.0:
        return 0.0
    return -(w * math.log2(w) + (1.0 - w) * math.log2(1.0 - w))


@dataclass(frozen=True, eq=False)
class Canonical:
    """A named joint p[x1, x2, y] and its analytic atoms (R, U1, U2, S) in bits."""

    name: str
    joint: FloatArray
    redundancy: float
    unique_1: float
    unique_2: float
    synergy: float

    @property
    def atoms(self) -> tuple[float, float, float, float]:
        return (self.redundancy, self.unique_1, self.unique_2, self.synergy)


def from_rule(
    sources: list[tuple[int, int]],
    rule: Callable[[int, int], int],
    shape: tuple[int, int, int],
    weights: list[float] | None = None,
) -> FloatArray:
    """Joint p[x1, x2, y] putting weight on (x1, x2, rule(x1, x2)) for each source pair."""
    p = np.zeros(shape)
    w = weights if weights is not None else [1.0] * len(sources)
    if len(w) != len(sources):
        msg = f'weights: {len(w)} given for {len(sources)} source pairs'
        raise PIDInputError(msg)
    for (a, b), wi in zip(sources, w, strict=True):
        p[a, b, rule(a, b)] += wi
    return np.asarray(p / p.sum(), dtype=np.float64)


_BITS = [(a, b) for a in range(2) for b in range(2)]
_AND_R = _h2(0.25) - 0.5  # I(X1;Y) for AND = 0.311278 bits


def xor_gate() -> Canonical:
    return Canonical('XOR', from_rule(_BITS, lambda a, b: a ^ b, (2, 2, 2)), 0.0, 0.0, 0.0, 1.0)


def and_gate() -> Canonical:
    return Canonical('AND', from_rule(_BITS, lambda a, b: a & b, (2, 2, 2)), _AND_R, 0, 0, 0.5)


def or_gate() -> Canonical:
    return Canonical('OR', from_rule(_BITS, lambda a, b: a | b, (2, 2, 2)), _AND_R, 0, 0, 0.5)


def rdn() -> Canonical:
    return Canonical('RDN', from_rule([(0, 0), (1, 1)], lambda a, _b: a, (2, 2, 2)), 1, 0, 0, 0)


def unq(source: int = 1) -> Canonical:
    if source == 1:
        return Canonical('UNQ1', from_rule(_BITS, lambda a, _b: a, (2, 2, 2)), 0, 1, 0, 0)
    if source == 2:
        return Canonical('UNQ2', from_rule(_BITS, lambda _a, b: b, (2, 2, 2)), 0, 0, 1, 0)
    msg = f'source: must be 1 or 2, got {source!r}'
    raise PIDInputError(msg)


def copy_gate() -> Canonical:
    return Canonical('COPY', from_rule(_BITS, lambda a, b: 2 * a + b, (2, 2, 4)), 0, 1, 1, 0)


def rdn_xor() -> Canonical:
    # X1 = 2r + a, X2 = 2r + b, Y = 2r + (a xor b).
    pairs = [(2 * r + a, 2 * r + b) for r in range(2) for a in range(2) for b in range(2)]
    joint = from_rule(pairs, lambda x1, x2: 2 * (x1 // 2) + ((x1 % 2) ^ (x2 % 2)), (4, 4, 4))
    return Canonical('RDN_XOR', joint, 1, 0, 0, 1)


def rdn_unq_xor() -> Canonical:
    # X1 = 4r + 2u1 + a, X2 = 4r + 2u2 + b, Y = 8r + 4u1 + 2u2 + (a xor b).
    pairs = [
        (4 * r + 2 * u1 + a, 4 * r + 2 * u2 + b)
        for r in range(2)
        for u1 in range(2)
        for u2 in range(2)
        for a in range(2)
        for b in range(2)
    ]

    def rule(x1: int, x2: int) -> int:
        r, u1, a = x1 // 4, (x1 // 2) % 2, x1 % 2
        u2, b = (x2 // 2) % 2, x2 % 2
        return 8 * r + 4 * u1 + 2 * u2 + (a ^ b)

    return Canonical('RDN_UNQ_XOR', from_rule(pairs, rule, (8, 8, 16)), 1, 1, 1, 1)


def disjoint_mixture(first: Canonical, second: Canonical, weight: float) -> Canonical:
    """weight·first + (1-weight)·second on disjoint alphabets (block-diagonal joint).

    A hidden switch W ~ Bernoulli(weight) selects the component; every variable reveals W, so
    the atoms mix linearly and W adds H(W) bits of redundancy:
    R = w R_a + (1-w) R_b + h(w), U_i = w U_i,a + (1-w) U_i,b, S = w S_a + (1-w) S_b.
    """
    if not 0.0 < weight < 1.0:
        msg = f'weight: must lie in (0, 1), got {weight!r}'
        raise PIDInputError(msg)
    a, b = first.joint, second.joint
    joint = np.zeros(tuple(i + j for i, j in zip(a.shape, b.shape, strict=True)))
    joint[: a.shape[0], : a.shape[1], : a.shape[2]] = weight * a
    joint[a.shape[0] :, a.shape[1] :, a.shape[2] :] = (1.0 - weight) * b
    w, v = weight, 1.0 - weight
    return Canonical(
        f'{first.name}+{second.name}@{weight:g}',
        joint,
        w * first.redundancy + v * second.redundancy + _h2(weight),
        w * first.unique_1 + v * second.unique_1,
        w * first.unique_2 + v * second.unique_2,
        w * first.synergy + v * second.synergy,
    )


def _catalogue() -> dict[str, Canonical]:
    base = [
        xor_gate(),
        and_gate(),
        or_gate(),
        rdn(),
        unq(1),
        unq(2),
        copy_gate(),
        rdn_xor(),
        rdn_unq_xor(),
    ]
    mixes = [
        disjoint_mixture(xor_gate(), rdn(), 0.5),
        disjoint_mixture(unq(1), unq(2), 0.25),
        disjoint_mixture(and_gate(), copy_gate(), 0.7),
    ]
    return {c.name: c for c in [*base, *mixes]}


CATALOGUE: dict[str, Canonical] = _catalogue()
"""Every canonical distribution by name (XOR, AND, OR, RDN, UNQ1, UNQ2, COPY, RDN_XOR,
RDN_UNQ_XOR and three disjoint mixtures)."""


def get(name: str) -> Canonical:
    """The catalogue entry called ``name`` (case-insensitive)."""
    entry = CATALOGUE.get(name.upper())
    if entry is None:
        msg = f'name: unknown canonical distribution {name!r}; known: {sorted(CATALOGUE)}'
        raise PIDInputError(msg)
    return entry


def joint(name: str) -> FloatArray:
    """A fresh copy of the joint p[x1, x2, y] of the catalogue entry ``name``."""
    return get(name).joint.copy()
