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

"""Information measures on a joint array against analytic values; bad axes are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.measures import (
    conditional_entropy,
    conditional_mutual_information,
    entropy,
    marginal,
    mutual_information,
)


def _xor() -> np.ndarray:
    """p[x1, x2, y] of two fair bits and y = x1 XOR x2."""
    p = np.zeros((2, 2, 2))
    for a in range(2):
        for b in range(2):
            p[a, b, a ^ b] = 0.25
    return p


def test_analytic_values() -> None:
    # x1, x2 uniform bits, y = x1 XOR x2: H(X1) = 1, I(X1;Y) = 0, I(X1,X2;Y) = 1
    p = _xor()
    assert entropy(p, [0]) == pytest.approx(1.0)
    assert entropy(p) == pytest.approx(2.0)
    assert mutual_information(p, [0], [2]) == pytest.approx(0.0, abs=1e-12)
    assert mutual_information(p, [0, 1], [2]) == pytest.approx(1.0)
    np.testing.assert_allclose(marginal(p, [-1]), [0.5, 0.5])  # negative axes count from the end


def test_conditional_measures_analytic() -> None:
    # XOR: each bit alone says nothing about y, given the other it says everything
    p = _xor()
    assert conditional_mutual_information(p, [0], [2], [1]) == pytest.approx(1.0)
    assert conditional_mutual_information(p, [0], [1], [2]) == pytest.approx(1.0)
    assert conditional_entropy(p, [2], [0, 1]) == pytest.approx(0.0, abs=1e-12)
    assert conditional_entropy(p, [2], [0]) == pytest.approx(1.0)
    # independent bits given y: I(X1;X2|Y) of a product joint is 0
    q = np.einsum('i,j,k->ijk', [0.3, 0.7], [0.6, 0.4], [0.5, 0.5])
    assert conditional_mutual_information(q, [0], [1], [2]) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(
    st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3)),
    st.integers(0, 2**32 - 1),
)
def test_chain_rules(shape: tuple[int, int, int], seed: int) -> None:
    """I(X1,X2;Y) = I(X1;Y) + I(X2;Y|X1) and H(X1,Y) = H(X1) + H(Y|X1) on random joints."""
    p = np.random.default_rng(seed).dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
    assert mutual_information(p, [0, 1], [2]) == pytest.approx(
        mutual_information(p, [0], [2]) + conditional_mutual_information(p, [1], [2], [0]),
        abs=1e-9,
    )
    assert entropy(p, [0, 2]) == pytest.approx(
        entropy(p, [0]) + conditional_entropy(p, [2], [0]), abs=1e-9
    )


@pytest.mark.parametrize('axis', [3, -4, 7])
def test_axis_out_of_range_is_refused(axis: int) -> None:
    p = np.full((2, 2, 2), 0.125)
    with pytest.raises(PIDInputError, match=f'axis {axis} out of range'):
        entropy(p, [axis])  # wrapped around to another axis before


def test_weights_whose_sum_overflows_still_normalise() -> None:
    from dmil_ros.pid.measures import normalise

    # finite entries, infinite sum: dividing by it gave all zeros, then an argmax error
    np.testing.assert_allclose(normalise(np.full((2, 2, 2), 1e308)), np.full((2, 2, 2), 1 / 8))


def test_a_non_integer_axis_is_refused() -> None:
    p = np.full((2, 2), 0.25)
    with pytest.raises(PIDInputError, match=r'axis 0\.5 is not an integer'):
        entropy(p, [0.5])  # type: ignore[list-item]
    assert entropy(p, [np.int64(0)]) == pytest.approx(1.0)
