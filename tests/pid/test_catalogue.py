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

"""The canonical distributions: valid joints whose analytic atoms satisfy the PID identities."""

from __future__ import annotations

import numpy as np
import pytest

from dmil_ros.pid import catalogue
from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.measures import pid_informations


@pytest.mark.parametrize('name', sorted(catalogue.CATALOGUE))
def test_entries_are_distributions_with_consistent_atoms(name: str) -> None:
    c = catalogue.CATALOGUE[name]
    assert c.joint.ndim == 3
    assert np.all(c.joint >= 0)
    assert c.joint.sum() == pytest.approx(1.0)
    # The analytic atoms must reproduce the mutual informations computed from the joint.
    i1, i2, i12 = pid_informations(c.joint)
    r, u1, u2, s = c.atoms
    assert r + u1 == pytest.approx(i1, abs=1e-12)
    assert r + u2 == pytest.approx(i2, abs=1e-12)
    assert r + u1 + u2 + s == pytest.approx(i12, abs=1e-12)
    assert min(c.atoms) >= 0


def test_lookup_by_name() -> None:
    assert np.array_equal(catalogue.joint('xor'), catalogue.CATALOGUE['XOR'].joint)
    j = catalogue.joint('AND')
    j[0, 0, 0] = 5.0  # a copy: the catalogue itself is untouched
    assert catalogue.CATALOGUE['AND'].joint[0, 0, 0] == pytest.approx(0.25)
    with pytest.raises(PIDInputError, match='NOPE'):
        catalogue.get('NOPE')


def test_mixture_weight_is_validated() -> None:
    with pytest.raises(PIDInputError, match='weight'):
        catalogue.disjoint_mixture(catalogue.xor_gate(), catalogue.rdn(), 1.0)
    with pytest.raises(PIDInputError, match='source'):
        catalogue.unq(3)
