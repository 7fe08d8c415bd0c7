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

"""Family sampling, empirical ground truth and the expert's commands: behaviour no other test
pinned down (found by mutation testing)."""

from __future__ import annotations

import numpy as np
import pytest

from dmil_ros.actions import ACTION_INDEX, ACTIONS
from dmil_ros.sim.expert import COMMAND_NOISE, COMMANDS, expert_command
from dmil_ros.sim.families import DESIGNS, LAYOUTS, ground_truth_summary


def test_r_draws_one_layout_seen_by_both_sensors() -> None:
    """R: C = L = layout (tied), so every draw has c == l and the action is the layout."""
    rng = np.random.default_rng(0)
    draws = [DESIGNS['R'].sample(rng) for _ in range(200)]
    assert all(cam == lid == act for cam, lid, act in draws)
    assert {c for c, _, _ in draws} == set(range(len(LAYOUTS)))


def test_empirical_pid_given_family_is_frame_weighted() -> None:
    """8 R frames (each layout twice: 2 bits of redundancy) and 4 S frames (each XOR cell once:
    1 bit of synergy): the frame-weighted average is R 8/12 * 2 bits, S 4/12 * 1 bit."""
    r = [('R', k, k, k) for k in range(4)] * 2
    s = [('S', c, d, DESIGNS['S'].rule(c, d)) for c in (0, 1) for d in (0, 1)]
    out = ground_truth_summary(dict.fromkeys(('R', 'S'), 0.5), r + s)['empirical']
    assert out['family_pid']['R']['redundancy'] == pytest.approx(2.0, abs=1e-6)
    assert out['family_pid']['S']['synergy'] == pytest.approx(1.0, abs=1e-6)
    given = out['pid_given_family']
    assert given['redundancy'] == pytest.approx(8 / 12 * 2.0, abs=1e-6)
    assert given['synergy'] == pytest.approx(4 / 12 * 1.0, abs=1e-6)


def test_stop_is_an_exact_zero_command_and_the_others_are_noisy_around_nominal() -> None:
    rng = np.random.default_rng(0)
    stop = ACTION_INDEX['stop']
    assert all(expert_command(stop, rng) == (0.0, 0.0) for _ in range(50))
    for name in ('forward', 'left', 'right'):
        cmds = np.array([expert_command(ACTION_INDEX[name], rng) for _ in range(400)])
        nominal = np.array(COMMANDS[name])
        assert np.all(cmds != nominal)  # a teleoperator's noise on every command
        np.testing.assert_allclose(cmds.mean(0), nominal, atol=0.01)
        np.testing.assert_allclose(cmds.std(0), COMMAND_NOISE, rtol=0.2)
    assert {ACTIONS[i] for i in range(4)} == set(COMMANDS)
