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

"""pointwise_pid: analytic I±_min values, shift, and per-cell identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.pid import catalogue
from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.measures import mutual_information
from dmil_ros.pid.pointwise import pointwise_pid, shift_delta

# AND / OR of two fair bits, by hand (Finn & Lizier 2018): the y = 1 cell of AND has r = 1,
# the three y = 0 cells r = 1 - log2(3/2); I(Xi;Y) = h(1/4) - 1/2, I(X1,X2;Y) = h(1/4).
_H14 = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
_R_AND = 0.25 + 0.75 * (1 - math.log2(1.5))
_AND = (_R_AND, _H14 - 0.5 - _R_AND, _H14 - 0.5 - _R_AND, _H14 - 2 * (_H14 - 0.5) + _R_AND)


@pytest.mark.parametrize(
    ('name', 'raw'),
    [
        ('AND', _AND),
        ('OR', _AND),
        ('XOR', (0.0, 0.0, 0.0, 1.0)),
        ('RDN', (1.0, 0.0, 0.0, 0.0)),
        ('UNQ1', (1.0, 0.0, -1.0, 1.0)),
        ('UNQ2', (1.0, -1.0, 0.0, 1.0)),
    ],
)
def test_raw_means_match_analytic_values(name: str, raw: tuple[float, ...]) -> None:
    res = pointwise_pid(catalogue.joint(name))
    np.testing.assert_allclose(res.means(), raw, atol=1e-12)


def test_issue_figures_for_or() -> None:
    res = pointwise_pid(catalogue.joint('OR'))
    np.testing.assert_allclose(res.means(), (0.5613, -0.25, -0.25, 0.75), atol=1e-4)


@pytest.mark.parametrize('name', ['AND', 'OR', 'XOR', 'RDN', 'UNQ1', 'UNQ2'])
def test_shifted_means_match_broja_on_catalogue(name: str) -> None:
    res = pointwise_pid(catalogue.joint(name))
    np.testing.assert_allclose(res.means(shifted=True), catalogue.get(name).atoms, atol=1e-9)


def test_and_cells() -> None:
    res = pointwise_pid(catalogue.joint('AND'))
    assert res.redundancy[1, 1, 1] == pytest.approx(1.0)
    assert res.redundancy[0, 1, 0] == pytest.approx(1 - math.log2(1.5))
    assert np.isnan(res.redundancy[1, 1, 0])  # impossible outcome


def test_shift_delta_interval() -> None:
    assert shift_delta(0.5613, -0.25, -0.25, 0.75) == pytest.approx(-0.25)
    assert shift_delta(0.2, 0.1, 0.3, 0.0) == 0.0
    assert shift_delta(-0.1, 0.3, 0.4, 0.2) == pytest.approx(0.1)


def test_shift_delta_of_an_empty_interval_is_its_midpoint() -> None:
    # lo = max(-R, -S) = 0.3 above hi = min(U1, U2) = 0.1: no delta makes all four >= 0
    assert shift_delta(-0.3, 0.1, 0.2, 0.1) == pytest.approx(0.2)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(st.floats(-2.0, 2.0), min_size=4, max_size=4))
def test_shift_delta_is_the_least_shift_or_balances_the_deficits(atoms: list[float]) -> None:
    """A feasible interval: the delta of least magnitude leaving all four shifted atoms >= 0.
    An empty one: the midpoint, where the most negative of (R+d, S+d) equals the most
    negative of (U1-d, U2-d)."""
    r, u1, u2, s = atoms
    d = shift_delta(r, u1, u2, s)
    lo, hi = max(-r, -s), min(u1, u2)
    if lo <= hi:
        assert min(r + d, u1 - d, u2 - d, s + d) >= -1e-12
        assert abs(d) == pytest.approx(max(lo, -hi, 0.0))
    else:
        assert min(r, s) + d == pytest.approx(min(u1, u2) - d)


def test_bad_joint() -> None:
    with pytest.raises(PIDInputError, match='joint'):
        pointwise_pid(np.ones((2, 2)))
    with pytest.raises(PIDInputError, match='negative'):
        pointwise_pid(-np.ones((2, 2, 2)))


@settings(max_examples=40, deadline=None)
@given(
    st.tuples(st.integers(2, 4), st.integers(2, 4), st.integers(2, 3)).flatmap(
        lambda s: st.lists(
            st.floats(0.0, 1.0), min_size=s[0] * s[1] * s[2], max_size=s[0] * s[1] * s[2]
        ).map(lambda v, s=s: np.reshape(np.asarray(v) + 1e-3, s))
    )
)
def test_cell_identities(p: np.ndarray) -> None:
    res = pointwise_pid(p)
    q = res.joint
    ok = q > 0
    np.testing.assert_allclose((res.redundancy + res.unique_1)[ok], res.pmi_1[ok], atol=1e-9)
    np.testing.assert_allclose((res.redundancy + res.unique_2)[ok], res.pmi_2[ok], atol=1e-9)
    total = res.redundancy + res.unique_1 + res.unique_2 + res.synergy
    np.testing.assert_allclose(total[ok], res.pmi_12[ok], atol=1e-9)
    # means of the pointwise MIs are the mutual informations (independent computation)
    assert np.sum(q * res.pmi_1) == pytest.approx(mutual_information(q, [0], [2]), abs=1e-9)
    assert np.sum(q * res.pmi_12) == pytest.approx(mutual_information(q, [0, 1], [2]), abs=1e-9)
    # I±_min redundancy is bounded by the smaller pointwise specificity gap; shift keeps sums
    r, u1, u2, s = res.means()
    rs, u1s, u2s, ss = res.means(shifted=True)
    assert rs + u1s == pytest.approx(r + u1)
    assert rs + u1s + u2s + ss == pytest.approx(r + u1 + u2 + s)
    if max(-r, -s) <= min(u1, u2):
        assert min(rs, u1s, u2s, ss) >= -1e-12


@pytest.mark.parametrize('seed', range(8))
def test_means_match_dit_pointwise_on_sparse_joints(seed: int) -> None:
    """Raw means against dit's PID_PM (Finn & Lizier's I±_min), an independent implementation,
    on random joints with zero cells (the strategy above never makes one)."""
    dit = pytest.importorskip('dit')
    from dit.pid import PID_PM

    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(2, 4, size=3))
    p = rng.dirichlet(np.full(int(np.prod(shape)), 0.5)).reshape(shape)
    if seed % 2:
        p[rng.random(shape) < 0.4] = 0.0
    p /= p.sum()
    idx = np.argwhere(p > 0)
    d = dit.Distribution(
        [tuple(int(v) for v in i) for i in idx], [float(p[tuple(i)]) for i in idx]
    )
    ref = PID_PM(d, [[0], [1]], [2])
    expected = [ref.get_pi(a) for a in (((0,), (1,)), ((0,),), ((1,),), ((0, 1),))]
    np.testing.assert_allclose(pointwise_pid(p).means(), expected, atol=1e-9)
