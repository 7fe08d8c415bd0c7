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

"""Synthetic tasks: latent joint, sampling, and the two ground truths."""

from __future__ import annotations

import numpy as np
import pytest

from dmil_ros.pid import catalogue
from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.tasks import ModalitySpec, family_joint, make_task


def test_single_family_joint_is_catalogue() -> None:
    t = make_task('AND')
    np.testing.assert_allclose(t.joint, catalogue.joint('AND') / catalogue.joint('AND').sum())
    ex = t.exact_truth
    np.testing.assert_allclose(
        (ex.redundancy, ex.unique_1, ex.unique_2, ex.synergy),
        catalogue.get('AND').atoms,
        atol=1e-6,
    )


def test_mixture_blocks_and_sampling_frequencies() -> None:
    t = make_task({'RDN': 1.0, 'XOR': 3.0}, ModalitySpec(3, 2.0, 0.1), ModalitySpec(5, 1.0, 0.2))
    assert t.weights == pytest.approx((0.25, 0.75))
    assert t.joint.shape == (4, 4, 2)
    assert t.joint[:2, 2:].sum() == 0  # families never mix across modalities
    s = t.sample(20000, seed=3)
    assert s.features_1.shape == (20000, 3)
    assert s.features_2.shape == (20000, 5)
    assert np.mean(s.family == 1) == pytest.approx(0.75, abs=0.015)
    emp = np.zeros_like(t.joint)
    np.add.at(emp, (s.latent_1, s.latent_2, s.labels), 1.0 / len(s))
    np.testing.assert_allclose(emp, t.joint, atol=0.015)
    # features sit at their codes, with the requested noise
    resid = s.features_2 - 1.0 * t.codes_2[s.latent_2]
    assert resid.std() == pytest.approx(0.2, rel=0.05)


def test_wide_unique_family() -> None:
    p = family_joint('UNQ1_WIDE')
    assert p.shape == (2, 8, 2)
    ex = make_task('UNQ1_WIDE').exact_truth
    assert ex.unique_1 == pytest.approx(1.0, abs=1e-6)
    assert ex.synergy == pytest.approx(0.0, abs=1e-6)


def test_continuous_truth_equals_latent_truth_where_mins_tie() -> None:
    # XOR and RDN: both specificities and both ambiguities are equal per cell, so the noise
    # density cancels in the min; the continuous I±_min is the latent one sample by sample.
    for name in ('XOR', 'RDN'):
        t = make_task(name)
        s = t.sample(2000, seed=1)
        cont = np.array(t.continuous_pointwise(s)[:4])
        disc = np.array(t.discrete_pointwise(s)[:4])
        np.testing.assert_allclose(cont, disc, atol=1e-6)


def test_continuous_truth_departs_from_latent_truth_on_and() -> None:
    # The measure, not an estimator: on AND the differential specificities of the two feature
    # spaces pick different argmins than the latent ones, even at low noise.
    t = make_task('AND')
    s = t.sample(20000, seed=1)
    cont_r = t.continuous_pointwise(s)[0].mean()
    assert t.pointwise_truth.mean_redundancy - cont_r > 0.1
    # the pointwise MIs agree (the noise density cancels in h(x) - h(x|y))
    np.testing.assert_allclose(t.continuous_pointwise(s)[4], t.discrete_pointwise(s)[4], atol=1e-6)


def test_bad_specs() -> None:
    with pytest.raises(PIDInputError, match='dim'):
        ModalitySpec(dim=0)
    with pytest.raises(PIDInputError, match='weights'):
        make_task({'XOR': 0.0})
    with pytest.raises(PIDInputError, match='unknown'):
        make_task('NOPE')
