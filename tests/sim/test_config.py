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

"""SimConfig validation and the --mix parser."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmil_ros.actions import FAMILIES
from dmil_ros.errors import ConfigError
from dmil_ros.sim import SimConfig, SimConfigError, Simulator, parse_mix


def test_parse_mix_normalises_and_fills_missing_families() -> None:
    mix = parse_mix('R=2, S=2')
    assert mix == {'R': 0.5, 'U_camera': 0.0, 'U_lidar': 0.0, 'S': 0.5}


@pytest.mark.parametrize(
    ('text', 'needle'),
    [
        ('R=1,X=1', "'X'"),
        ('R=1,R=2', "'R' given twice"),
        ('R', "'R' is not NAME=WEIGHT"),
        ('R=abc', "'abc'"),
        ('R=-1', '-1'),
        ('R=0,S=0', 'sum to 0'),
        ('R=nan', 'nan'),
    ],
)
def test_parse_mix_rejects_bad_input_naming_it(text: str, needle: str) -> None:
    with pytest.raises(SimConfigError, match=needle):
        parse_mix(text)


@given(st.lists(st.floats(0.01, 100.0), min_size=4, max_size=4))
def test_parse_mix_sums_to_one(weights: list[float]) -> None:
    text = ','.join(f'{f}={w!r}' for f, w in zip(FAMILIES, weights, strict=True))
    mix = parse_mix(text)
    assert math.isclose(sum(mix.values()), 1.0)
    total = sum(weights)
    for f, w in zip(FAMILIES, weights, strict=True):
        assert math.isclose(mix[f], w / total, rel_tol=1e-9)


@pytest.mark.parametrize(
    ('field', 'value'),
    [('frames', 0), ('width', 2), ('beams', 0), ('dropout', 1.0), ('segment_frames', (5, 2))],
)
def test_config_rejects_out_of_range_values(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        SimConfig(**{field: value})  # type: ignore[arg-type]


def test_config_to_dict_round_trips() -> None:
    cfg = SimConfig(frames=12, seed=4, mix={'S': 3.0})
    again = SimConfig(**cfg.to_dict())
    assert again == cfg
    assert again.mix['S'] == 1.0


def test_config_errors_name_the_allowed_range() -> None:
    with pytest.raises(SimConfigError, match=r'width=2 is out of range \(8 <= width <= 4096\)'):
        SimConfig(width=2)


def test_mix_weights_whose_sum_overflows_are_normalised() -> None:
    """Two weights of 1e308 sum to inf: they were divided by it and reported as "weights
    {R: 0.0, ..., S: 0.0} sum to 0" (review 22d F6)."""
    assert parse_mix('R=1e308,S=1e308') == {'R': 0.5, 'U_camera': 0.0, 'U_lidar': 0.0, 'S': 0.5}
    big = dict.fromkeys(FAMILIES, 1.7e308)
    assert SimConfig(mix=big).mix == dict.fromkeys(FAMILIES, 0.25)


def test_segment_frames_are_bounded() -> None:
    """A segment length past int64 ended in numpy's 'high is out of bounds' (review 22d F5)."""
    with pytest.raises(SimConfigError, match=r'segment_frames=.*<= 2147483647'):
        SimConfig(segment_frames=(1, 2**63))
    SimConfig(frames=3, segment_frames=(2**31 - 1, 2**31 - 1))


def test_jitter_is_bounded_by_the_faster_sensor() -> None:
    """The bound followed the camera period only: at lidar_rate_hz=200 the default 2 ms
    jitter put consecutive sweeps out of stamp order (review 22d F1)."""
    with pytest.raises(SimConfigError, match=r'jitter_s=0\.002 .*<= 0\.0005 s'):
        SimConfig(lidar_rate_hz=200.0)
    for rate in (20.0, 200.0, 1000.0):  # the largest jitter allowed, up to the fastest LiDAR
        cfg = SimConfig(frames=40, seed=3, lidar_rate_hz=rate, jitter_s=0.1 / max(rate, 20.0))
        sim = Simulator(cfg)
        for times in (sim.camera_times, sim.lidar_times):
            stamps = np.array([sim.stamp_ns(float(t)) for t in times])
            assert np.all(np.diff(stamps) > 0)
    sim = Simulator(SimConfig(frames=3, seed=1, lidar_rate_hz=1000.0, jitter_s=1e-4))
    stamps = [e.stamp_ns for e in sim.events()]
    assert stamps == sorted(stamps)
    assert len(stamps) > 100


def test_start_time_keeps_every_stamp_positive_and_within_int32_seconds() -> None:
    """start_time_ns was only checked >= 0: a start of 0 gave a negative first stamp with some
    seeds, and a start past 2038 overflowed Time.sec, both crashing record_bag with foreign
    exceptions (review 22d F2)."""
    early = math.ceil(3 * 0.002 * 1e9)
    for start in (0, early):
        with pytest.raises(SimConfigError, match=f'start_time_ns={start} is out of range'):
            SimConfig(start_time_ns=start)
    for seed in range(20):  # the earliest allowed start: every stamp is > 0
        sim = Simulator(SimConfig(frames=4, seed=seed, start_time_ns=early + 1))
        first = min(sim.camera_times[0], sim.lidar_times[0])
        assert sim.stamp_ns(float(first)) >= 1
    top = 2**31 * 1_000_000_000  # first stamp whose seconds overflow int32
    with pytest.raises(SimConfigError, match='start_time_ns=3000000000000000000'):
        SimConfig(start_time_ns=3_000_000_000_000_000_000)
    with pytest.raises(SimConfigError, match='start_time_ns'):  # 4 frames last 0.18 s
        SimConfig(frames=4, start_time_ns=top - 100_000_000)
    cfg = SimConfig(frames=4, start_time_ns=top - 300_000_000)
    sim = Simulator(cfg)
    last = max(sim.camera_times[-1], sim.lidar_times[-1])
    assert sim.stamp_ns(float(last)) < top
    with pytest.raises(SimConfigError, match=r'frames=100000000000 .*int32 seconds'):
        SimConfig(frames=10**11)
