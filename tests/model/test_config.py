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

"""Config validation: every bad value is refused on load, naming the section, key and value."""

from __future__ import annotations

from typing import Any

import pytest

from dmil_ros.model.config import LossWeights, ModelConfig
from dmil_ros.model.errors import ModelConfigError
from dmil_ros.train.config import TrainConfig
from dmil_ros.train.errors import TrainConfigError


@pytest.mark.parametrize(
    ('section', 'key', 'value'),
    [
        ('loss', 'alpha', '0.1'),
        ('loss', 'alpha', -5),
        ('loss', 'beta', float('nan')),
        ('loss', 'gamma', True),
        ('loss', 'profile_temperature', 0),
        ('loss', 'profile_tau', 1.5),
        ('schedule', 'batch_size', 12.5),
        ('schedule', 'batch_size', 0),
        ('schedule', 'stage1_epochs', 1.5),
        ('schedule', 'stage1_epochs', True),
        ('schedule', 'lidar_roll', 0.5),
        ('schedule', 'lr1', float('nan')),
        ('schedule', 'lr2', float('inf')),
        ('schedule', 'threads', 0),
        ('schedule', 'seed', -1),
        ('schedule', 'brightness', 1.0),
        ('data', 'camera_topic', 3),
        ('data', 'lidar_topic', ''),
        ('data', 'slop', '0.05'),
        ('data', 'block_seconds', float('inf')),
        ('data', 'val_fraction', 1),
        ('model', 'hidden', True),
        ('model', 'latent_dim', 4.0),
        ('model', 'id_encoder_grad', 'x'),
    ],
)
def test_bad_values_are_refused_naming_section_key_value(
    section: str, key: str, value: Any
) -> None:
    with pytest.raises(TrainConfigError) as info:
        TrainConfig.from_dict({section: {key: value}})
    text = str(info.value)
    assert key in text
    assert repr(value) in text
    assert section in text


def test_model_section_must_be_an_object() -> None:
    with pytest.raises(TrainConfigError, match="expected an object, got str 'dmil'"):
        TrainConfig.from_dict({'model': 'dmil'})
    with pytest.raises(ModelConfigError, match='got list'):
        ModelConfig.from_dict([])  # type: ignore[arg-type]


def test_good_values_are_kept() -> None:
    cfg = TrainConfig.from_dict({
        'loss': {'alpha': 1, 'profile_tau': 1.0},
        'schedule': {'weight_decay': 0, 'brightness': 0.5, 'batch_size': 2},
        'data': {'val_fraction': 0.5},
    })  # fmt: skip
    assert cfg.loss.alpha == 1
    assert cfg.schedule.weight_decay == 0
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert LossWeights() == TrainConfig().loss
