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

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmil_ros.actions import FAMILIES
from dmil_ros.errors import ConfigError
from dmil_ros.sim import SimConfig, SimConfigError, parse_mix


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
