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

"""Family designs: rules, independence structure and ground-truth PID from exact_pid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.actions import ACTION_INDEX, COMPONENTS, FAMILIES
from dmil_ros.pid import exact_pid, mutual_information
from dmil_ros.sim import DESIGNS, family_pid, ground_truth_summary, pooled_joint
from dmil_ros.sim.families import empirical_joint, pooled_index

LEFT, RIGHT = ACTION_INDEX['left'], ACTION_INDEX['right']


def test_s_rule_is_xor_of_sign_colour_and_opening_side() -> None:
    s = DESIGNS['S']
    assert s.camera_values == ('sign_green', 'sign_amber')
    assert s.lidar_values == ('opening_left', 'opening_right')
    assert s.rule(0, 0) == LEFT  # green: take the opening (left)
    assert s.rule(0, 1) == RIGHT
    assert s.rule(1, 0) == RIGHT  # amber: the service door, opposite side
    assert s.rule(1, 1) == LEFT


@pytest.mark.parametrize('family', FAMILIES)
def test_design_joint_is_a_distribution_with_a_deterministic_rule(family: str) -> None:
    p = DESIGNS[family].joint()
    assert p.shape[2] == 4
    assert np.isclose(p.sum(), 1.0)
    # H(Y | C, L) = 0: one action per latent pair
    assert np.all(np.count_nonzero(p, axis=2) <= 1)


def test_non_decisive_sensor_carries_no_information_about_the_action() -> None:
    # (camera, action) and (lidar, action) mutual informations, from the design joints
    mi = {
        f: (
            mutual_information(DESIGNS[f].joint(), [0], [2]),
            mutual_information(DESIGNS[f].joint(), [1], [2]),
        )
        for f in FAMILIES
    }
    assert mi['U_camera'][1] == pytest.approx(0.0, abs=1e-12)
    assert mi['U_lidar'][0] == pytest.approx(0.0, abs=1e-12)
    assert mi['S'][0] == pytest.approx(0.0, abs=1e-12)
    assert mi['S'][1] == pytest.approx(0.0, abs=1e-12)
    assert mi['R'][0] == pytest.approx(2.0)
    assert mi['R'][1] == pytest.approx(2.0)


EXPECTED = {
    'R': {'redundancy': 2.0},
    'U_camera': {'unique_camera': 2.0},
    'U_lidar': {'unique_lidar': 2.0},
    'S': {'synergy': 1.0},
}


@pytest.mark.parametrize('family', FAMILIES)
def test_family_ground_truth_pid_matches_its_design(family: str) -> None:
    pid = family_pid(family)
    for comp in COMPONENTS:
        want = EXPECTED[family].get(comp, 0.0)
        assert pid[comp] == pytest.approx(want, abs=1e-6), (family, comp, pid)
    if family == 'S':
        assert pid['synergy'] >= 0.9
    dominant = max(pid, key=pid.__getitem__)
    assert dominant == next(iter(EXPECTED[family]))


def test_mix_given_family_is_the_weighted_family_pid() -> None:
    mix = {'R': 0.1, 'U_camera': 0.2, 'U_lidar': 0.3, 'S': 0.4}
    gt = ground_truth_summary(mix)
    for comp in COMPONENTS:
        want = sum(mix[f] * family_pid(f)[comp] for f in FAMILIES)
        assert gt['mix_pid_given_family'][comp] == pytest.approx(want)


def test_mix_pid_is_exact_pid_of_the_pooled_joint() -> None:
    mix = {'R': 0.25, 'U_camera': 0.25, 'U_lidar': 0.25, 'S': 0.25}
    gt = ground_truth_summary(mix)
    res = exact_pid(pooled_joint(mix))
    assert gt['mix_pid']['redundancy'] == pytest.approx(res.redundancy)
    assert gt['mix_pid']['synergy'] == pytest.approx(res.synergy)
    # the atoms add up to I(X1,X2;Y) of the pooled joint
    total = mutual_information(pooled_joint(mix), [0, 1], [2])
    assert sum(gt['mix_pid'].values()) == pytest.approx(total, abs=1e-6)


def test_single_family_mix_reduces_to_that_family() -> None:
    gt = ground_truth_summary({'S': 1.0})
    for comp in COMPONENTS:
        assert gt['mix_pid'][comp] == pytest.approx(family_pid('S')[comp], abs=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4).filter(lambda w: sum(w) > 0.05))
def test_pooled_joint_marginal_over_family_matches_weights(weights: list[float]) -> None:
    mix = {f: w / sum(weights) for f, w in zip(FAMILIES, weights, strict=True)}
    p = pooled_joint(mix)
    assert np.isclose(p.sum(), 1.0)
    for fam in FAMILIES:
        design = DESIGNS[fam]
        r0, c0 = pooled_index(fam, 0, 0)
        block = p[r0 : r0 + len(design.camera_values), c0 : c0 + len(design.lidar_values)]
        assert block.sum() == pytest.approx(mix[fam], abs=1e-12)


def test_empirical_joint_counts_frames() -> None:
    recs = [('S', 0, 0, LEFT), ('S', 0, 1, RIGHT), ('R', 2, 2, RIGHT), ('R', 2, 2, RIGHT)]
    p = empirical_joint(recs)
    i, j = pooled_index('R', 2, 2)
    assert p[i, j, RIGHT] == pytest.approx(0.5)
    assert p.sum() == pytest.approx(1.0)
