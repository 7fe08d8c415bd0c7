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

"""Synergy monitor: baseline, threshold, hysteresis, warm-up, parameter checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.runtime.errors import RuntimeConfigError
from dmil_ros.runtime.monitor import MonitorConfig, SynergyMonitor, _mad


def feed(m: SynergyMonitor, values: np.ndarray) -> np.ndarray:
    return np.array([m.update(float(v)).alert for v in values])


def test_step_switches_on_and_off_with_hysteresis() -> None:
    rng = np.random.default_rng(0)
    base = 0.1 + 0.01 * rng.standard_normal(300)
    s = base.copy()
    s[150:190] += 1.0  # a synergy segment of 40 frames
    cfg = MonitorConfig(on_frames=2, off_frames=5)
    alert = feed(SynergyMonitor(cfg), s)
    # on after exactly on_frames high frames, off after off_frames calm frames
    assert not alert[:151].any()
    assert alert[151:190].all()
    assert alert[190:194].all()
    assert not alert[194:].any()


def calm(n: int, seed: int = 0) -> np.ndarray:
    """A quiet synergy series: 0.1 bits, noise 0.01."""
    return 0.1 + 0.01 * np.random.default_rng(seed).standard_normal(n)


def test_alert_holds_while_z_stays_between_off_z_and_on_z() -> None:
    """Hysteresis: once on, the alert needs off_frames frames with z < off_z (1.5) to switch
    off; frames at z = 2 (below on_z 3, above off_z) keep it on."""
    m = SynergyMonitor(MonitorConfig(on_frames=2, off_frames=5, min_scale=0.1))
    feed(m, calm(100))
    base = m.update(0.1).baseline  # scale = min_scale 0.1: z = (s - base) / 0.1
    assert feed(m, np.full(2, base + 0.5))[-1]  # z = 5 twice: on
    states = [m.update(base + 0.2) for _ in range(20)]
    assert all(1.5 < s.z < 3.0 for s in states)
    assert all(s.alert for s in states)


def test_frames_scored_during_an_alert_do_not_enter_the_baseline() -> None:
    """Module rule 4: a long stretch of raised synergy under an alert does not become the new
    normal; the baseline stays the median of the calm frames before it."""
    m = SynergyMonitor(MonitorConfig(on_frames=2, off_frames=5, min_scale=0.1, window=20))
    values = calm(20)
    feed(m, values)
    before = float(np.median(values))
    assert m.update(0.1).baseline == pytest.approx(before)
    assert feed(m, np.full(2, before + 0.5))[-1]  # on
    states = [m.update(before + 0.2) for _ in range(30)]  # z ~ 2: not high, the alert holds
    assert all(s.alert for s in states)
    assert all(s.baseline == pytest.approx(np.median([*values[1:], 0.1])) for s in states)


def test_every_alert_lasts_off_frames_calm_frames() -> None:
    """The calm-frame count starts afresh at each switch-on: a second burst, like the first,
    stays on through off_frames - 1 calm frames and switches off at the off_frames-th."""
    cfg = MonitorConfig(on_frames=2, off_frames=5)
    quiet = calm(260)
    s = np.concatenate([quiet[:100], np.full(10, 2.0), quiet[100:200], [2.0, 2.0], quiet[200:]])
    alert = feed(SynergyMonitor(cfg), s)
    for burst, length in ((100, 10), (210, 2)):
        on = burst + cfg.on_frames - 1
        end = burst + length  # the first calm frame after the burst
        assert not alert[on - 1]
        assert alert[on : end + cfg.off_frames - 1].all()
        assert not alert[end + cfg.off_frames - 1 :][:50].any()


def test_single_frame_spike_ignored() -> None:
    s = np.full(100, 0.1)
    s[60] = 5.0
    m = SynergyMonitor(MonitorConfig(on_frames=2))
    assert not feed(m, s).any()
    assert m.alerts == 0


def test_z_score_is_robust_standardisation() -> None:
    m = SynergyMonitor(MonitorConfig(window=50, warmup=50, min_scale=1e-6))
    values = [0.0, 1.0] * 25  # median 0.5, MAD 0.5 -> sigma 0.7413
    for v in values:
        m.update(v)
    state = m.update(2.0)
    assert state.baseline == pytest.approx(0.5)
    assert state.scale == pytest.approx(1.4826 * 0.5)
    assert state.z == pytest.approx(1.5 / (1.4826 * 0.5))


def test_no_alert_before_warmup_unless_absolute() -> None:
    m = SynergyMonitor(MonitorConfig(warmup=20))
    assert not feed(m, np.array([0.0] * 5 + [10.0] * 5)).any()
    m = SynergyMonitor(MonitorConfig(warmup=20, absolute_on=1.0, on_frames=1))
    assert feed(m, np.array([0.0] * 5 + [10.0] * 5))[5:].all()


def test_nan_keeps_state() -> None:
    m = SynergyMonitor()
    st_ = m.update(math.nan)
    assert not st_.alert
    assert math.isnan(st_.z)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=300))
def test_alert_needs_on_frames_consecutive_highs(values: list[float]) -> None:
    cfg = MonitorConfig(on_frames=3, warmup=5, window=20)
    m = SynergyMonitor(cfg)
    highs = 0
    for v in values:
        before = m.alert
        state = m.update(v)
        high = not math.isnan(state.z) and state.z >= cfg.on_z and v >= cfg.min_synergy
        highs = highs + 1 if high else 0
        if state.started:
            assert not before
            assert highs >= cfg.on_frames


@pytest.mark.parametrize(
    'kwargs',
    [
        {'window': 1},
        {'warmup': 0},
        {'warmup': 500},
        {'on_z': 1.0, 'off_z': 2.0},
        {'on_frames': 0},
        {'min_scale': 0.0},
        {'absolute_on': -1.0},
    ],
)
def test_bad_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(RuntimeConfigError, match='breaks the rule') as info:
        MonitorConfig(**kwargs)  # type: ignore[arg-type]
    for name, value in kwargs.items():  # every value given is named, with the rule it breaks
        assert f'{name}={value!r}' in str(info.value)


def test_a_rule_names_the_value_it_is_checked_against() -> None:
    # on_z 1.0 alone broke 'off_z=1.5 is not valid': the default the user never set, no rule
    with pytest.raises(RuntimeConfigError) as info:
        MonitorConfig(on_z=1.0)
    assert str(info.value) == (
        'synergy monitor: on_z=1.0, off_z=1.5 breaks the rule off_z finite and <= on_z'
    )


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(st.floats(-2.0, 2.0), min_size=1, max_size=300), st.integers(2, 40))
def test_baseline_and_scale_match_numpy(values: list[float], window: int) -> None:
    """The sorted-window median / MAD equal numpy's on the window's contents (reference)."""
    mon = SynergyMonitor(MonitorConfig(window=window, warmup=1))
    for v in values:
        before = np.fromiter(mon._window, np.float64)
        state = mon.update(v)
        if before.size:
            m = float(np.median(before))
            assert state.baseline == m
            mad = float(np.median(np.abs(before - m)))
            assert state.scale == max(1.4826 * mad, mon.config.min_scale)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.sampled_from([-1.0, 0.0, 0.1, 0.1, 0.25, 0.5, 2.0]) | st.floats(-3, 3), min_size=1
    ),
    st.floats(-4.0, 4.0) | st.none(),
)
def test_bisected_mad_equals_numpy_for_any_centre(
    values: list[float], centre: float | None
) -> None:
    """Ties, runs on one side only, a centre outside the values: numpy's MAD, bit for bit."""
    ordered = sorted(values)
    c = float(np.median(ordered)) if centre is None else centre
    assert _mad(ordered, c) == float(np.median(np.abs(np.asarray(ordered) - c)))
