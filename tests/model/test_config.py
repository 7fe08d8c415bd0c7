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
import torch

from dmil_ros.actions import ACTIONS
from dmil_ros.model.config import LossWeights, ModelConfig, camera_feature_size
from dmil_ros.model.encoders import CameraEncoder
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
        ('schedule', 'batch_size', 1),  # every batch of one frame is skipped: no step at all
        ('schedule', 'stage1_epochs', 1.5),
        ('schedule', 'stage1_epochs', True),
        ('schedule', 'lidar_roll', 0.5),
        ('schedule', 'lr1', float('nan')),
        ('schedule', 'lr2', float('inf')),
        ('schedule', 'threads', 0),
        ('schedule', 'seed', -1),
        # torch.manual_seed overflowed, float() on an int past 1e308 raised (review 22a #6)
        ('schedule', 'seed', 2**63),
        ('schedule', 'threads', 2**40),  # torch.set_num_threads overflowed its C int
        ('schedule', 'threads', 1025),
        ('schedule', 'brightness', 1.0),
        ('data', 'camera_topic', 3),
        ('data', 'lidar_topic', ''),
        ('data', 'slop', '0.05'),
        ('data', 'block_seconds', float('inf')),
        ('data', 'val_fraction', 1),
        ('model', 'hidden', True),
        ('model', 'hidden', 1),  # DMIL's gate MLP is hidden // 2 = 0 wide: constant gates
        ('model', 'latent_dim', 4.0),
        ('model', 'id_encoder_grad', 'x'),
        ('model', 'num_actions', 3),  # the labels index the 4 ACTIONS
        ('model', 'num_actions', 5),  # the exported model would have a column with no label
        ('model', 'image_shape', 48),
        ('model', 'vertical_fov_deg', None),
        ('model', 'camera_channels', 'abc'),
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


def test_num_actions_is_the_number_of_actions() -> None:
    """The labels are indices into ACTIONS, and the export labels its columns with them."""
    assert ModelConfig().num_actions == len(ACTIONS)
    with pytest.raises(ModelConfigError, match=r"num_actions=3 must be 4, .*'stop'\]"):
        ModelConfig(num_actions=3)


@pytest.mark.parametrize('size', [(8, 64), (64, 8), (8, 8), (1, 1)])
def test_an_image_too_small_for_the_camera_encoder_is_refused_by_the_config(
    size: tuple[int, int],
) -> None:
    """Refused when the config is read, not by torch after every bag was decoded."""
    raw = {'image_shape': [3, *size]}
    with pytest.raises(ModelConfigError, match=r'image_shape=\(3, .*at least 9'):
        ModelConfig.from_dict(raw)


@pytest.mark.parametrize('size', [(9, 9), (9, 64), (17, 10), (48, 64)])
def test_the_smallest_accepted_images_run_through_the_camera_encoder(
    size: tuple[int, int],
) -> None:
    cfg = ModelConfig(image_shape=(3, *size), camera_channels=(2, 2, 2), feature_dim=4)
    encoder = CameraEncoder(cfg).eval()
    with torch.no_grad():
        assert encoder(torch.zeros(2, 3, *size)).shape == (2, 4)
        assert encoder.conv(torch.zeros(1, 3, *size)).shape[2:] == camera_feature_size(*size)


def test_the_largest_seed_and_thread_count_accepted_reach_torch() -> None:
    """The bounds are what torch takes: the seed an int64 (compared exactly, not as a float
    that rounds 2**63 - 1 up to 2**63), the thread count a small C int."""
    sched = TrainConfig.from_dict({'schedule': {'seed': 2**63 - 1, 'threads': 1024}}).schedule
    torch.Generator().manual_seed(sched.seed)
    with pytest.raises(TrainConfigError, match=r'seed=9223372036854775808 .* \[0, 922337'):
        TrainConfig.from_dict({'schedule': {'seed': 2**63}})
    with pytest.raises(TrainConfigError, match=r'seed=1000.* must be an integer in \[0, 9'):
        TrainConfig.from_dict({'schedule': {'seed': 10**400}})  # float() overflowed
    with pytest.raises(TrainConfigError, match=r'threads=1025 must be an integer in \[1, 1024\]'):
        TrainConfig.from_dict({'schedule': {'threads': 1025}})


def test_a_range_image_too_narrow_for_the_range_encoder_is_refused_by_the_config() -> None:
    """Its circular padding wraps 2 columns: a 1-column image passed every check, read every
    bag, then failed in the first forward pass (review 22a #6)."""
    raw = {'model': {'lidar_shape': [2, 16, 1]}, 'preprocess': {'azimuth_bins': 1}}
    with pytest.raises(
        TrainConfigError, match=r'lidar_shape=\(2, 16, 1\): azimuth_bins=1 .*\[2, inf'
    ):
        TrainConfig.from_dict(raw)
    TrainConfig.from_dict({**raw, 'model': {**raw['model'], 'lidar_encoder': 'point'}})


@pytest.mark.parametrize('shape', [(1, 2), (16, 2), (2, 3), (16, 7), (16, 180)])
def test_the_smallest_accepted_range_images_run_through_the_range_encoder(
    shape: tuple[int, int],
) -> None:
    from dmil_ros.model.config import range_feature_size
    from dmil_ros.model.encoders import RangeImageEncoder

    cfg = ModelConfig(lidar_shape=(2, *shape), lidar_channels=(2, 2, 2), feature_dim=4)
    encoder = RangeImageEncoder(cfg).eval()
    with torch.no_grad():
        assert encoder(torch.zeros(2, 2, *shape)).shape == (2, 4)
        assert encoder.conv(torch.zeros(1, 2, *shape)).shape[2:] == range_feature_size(*shape)


@pytest.mark.parametrize(('kind', 'hidden'), [('dmil', 2), ('joint', 1), ('ensemble', 1)])
def test_the_smallest_accepted_hidden_builds_no_empty_layer(kind: str, hidden: int) -> None:
    """The minimum comes from the model: DMIL's gate is hidden // 2 wide (hidden 1 trained a
    gate whose output ignored its input), the baselines' MLPs are hidden wide."""
    from dmil_ros.model import build_model

    small = {'camera_channels': (2, 2, 2), 'lidar_channels': (2, 2, 2), 'feature_dim': 4}
    model = build_model(ModelConfig(kind=kind, hidden=hidden, latent_dim=2, **small))
    assert all(p.numel() for p in model.parameters())
    if hidden > 1:
        with pytest.raises(ModelConfigError, match=rf'hidden={hidden - 1} .*\[{hidden}, inf\)'):
            ModelConfig(kind=kind, hidden=hidden - 1)


@pytest.mark.parametrize(
    ('kind', 'schedule', 'named'),
    [
        ('dmil', {'stage1_epochs': 0, 'stage2_epochs': 0, 'stage3_epochs': 0},
         'schedule.stage1_epochs=0, schedule.stage2_epochs=0, schedule.stage3_epochs=0'),
        ('joint', {'baseline_epochs': 0}, 'schedule.baseline_epochs=0'),
        ('ensemble', {'baseline_epochs': 0}, 'schedule.baseline_epochs=0'),
    ],
)  # fmt: skip
def test_a_schedule_without_an_epoch_is_refused_when_the_config_is_read(
    kind: str, schedule: dict[str, int], named: str
) -> None:
    """Refused by the trainer once, after a train --overwrite had rewritten the run's
    config.json and data.json (review 22a #3); the other kind's epochs do not count."""
    with pytest.raises(TrainConfigError, match=f'0 epochs for kind {kind} .*{named}'):
        TrainConfig.from_dict({'model': {'kind': kind}, 'schedule': schedule})
    other = 'joint' if kind == 'dmil' else 'dmil'
    assert TrainConfig.from_dict({'model': {'kind': other}, 'schedule': schedule})
