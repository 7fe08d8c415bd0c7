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

"""synergy_indicator: hand-counted cases and when a late ensemble scores zero."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.indicator import synergy_indicator


def test_hand_counted() -> None:
    y = np.array([0, 1, 2, 3])
    joint = np.array([0, 1, 2, 0])  # right, right, right, wrong
    p1 = np.array([1, 1, 0, 0])  # wrong, right, wrong, wrong
    p2 = np.array([2, 0, 1, 3])  # wrong, wrong, wrong, right
    # sample 0: joint right, both wrong; sample 2: joint right, both wrong
    assert synergy_indicator(y, joint, p1, p2) == pytest.approx(0.5)


def test_accepts_probabilities() -> None:
    y = np.array([0, 1])
    joint = np.array([[0.9, 0.1], [0.2, 0.8]])
    uni = np.array([[0.1, 0.9], [0.7, 0.3]])
    assert synergy_indicator(y, joint, uni, uni) == 1.0


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), min_size=1))
def test_a_joint_taking_one_heads_answer_scores_zero(rows: list[tuple[int, int, int]]) -> None:
    # a prediction that always equals one of the unimodal ones can never beat both
    arr = np.array(rows)
    y, p1, p2 = arr[:, 0], arr[:, 1], arr[:, 2]
    joint = np.where(np.arange(len(y)) % 2 == 0, p1, p2)
    assert synergy_indicator(y, joint, p1, p2) == 0.0


@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.floats(0.01, 0.99), st.floats(0.01, 0.99)), min_size=1
    )
)
def test_averaged_heads_score_zero_on_a_binary_task(rows: list[tuple[int, float, float]]) -> None:
    arr = np.array(rows)
    y = arr[:, 0].astype(np.int64)
    p1 = np.stack([1 - arr[:, 1], arr[:, 1]], 1)
    p2 = np.stack([1 - arr[:, 2], arr[:, 2]], 1)
    # exact ties (0.5) are argmax'd to class 0 by all three; both wrong -> the mean is wrong
    assert synergy_indicator(y, (p1 + p2) / 2, p1, p2) == 0.0


def test_averaged_heads_can_beat_both_with_three_classes() -> None:
    y = np.array([0])
    p1, p2 = np.array([[0.4, 0.0, 0.6]]), np.array([[0.4, 0.6, 0.0]])
    assert synergy_indicator(y, (p1 + p2) / 2, p1, p2) == 1.0


def test_bad_shapes() -> None:
    with pytest.raises(PIDInputError, match='pred_1'):
        synergy_indicator(np.array([0, 1]), np.array([0, 1]), np.array([0]), np.array([0, 1]))
    with pytest.raises(PIDInputError, match='labels'):
        synergy_indicator(np.array([]), np.array([]), np.array([]), np.array([]))


def test_float_labels_and_predictions_are_named_with_their_dtype() -> None:
    # (3,) float labels read "got (3,)": the shape asked for, so the message hid the dtype
    ok = np.array([0, 1, 2])
    with pytest.raises(PIDInputError, match=r'labels: .* got float64 \(3,\)'):
        synergy_indicator(ok.astype(float), ok, ok, ok)
    with pytest.raises(PIDInputError, match=r'pred_2: .* got float64 \(3,\)'):
        synergy_indicator(ok, ok, ok, ok.astype(float))
