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

"""Training config, split, metrics and card behaviour no other test pinned down (found by
mutation testing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dmil_ros.actions import ACTION_INDEX
from dmil_ros.model import build_model
from dmil_ros.train.checkpoint import load_checkpoint, save_checkpoint
from dmil_ros.train.config import DataConfig, ScheduleConfig, TrainConfig
from dmil_ros.train.data import _nearest, discretise_twist
from dmil_ros.train.dataset import Arrays, time_block_split
from dmil_ros.train.errors import CheckpointError, TrainConfigError


def test_batch_size_one_is_refused() -> None:
    """A batch of one frame is skipped (BatchNorm): batch_size 1 would never take a step."""
    with pytest.raises(TrainConfigError, match='batch_size'):
        ScheduleConfig(batch_size=1)
    assert ScheduleConfig(batch_size=2).batch_size == 2


def test_cmd_vel_thresholds_are_inclusive() -> None:
    """config.py: |angular.z| >= turn_rate turns; otherwise linear.x >= forward_speed goes
    forward (both thresholds inclusive, exactly representable here)."""
    cfg = DataConfig(turn_rate=0.5, forward_speed=0.25)
    assert discretise_twist(0.0, 0.5, cfg) == ACTION_INDEX['left']
    assert discretise_twist(0.0, -0.5, cfg) == ACTION_INDEX['right']
    assert discretise_twist(0.25, 0.0, cfg) == ACTION_INDEX['forward']
    assert discretise_twist(0.25, 0.4999, cfg) == ACTION_INDEX['forward']
    assert discretise_twist(0.2499, 0.0, cfg) == ACTION_INDEX['stop']


def test_label_matching_takes_the_nearest_label_on_either_side_within_slop() -> None:
    """The nearest label by receive time, before or after the camera message."""
    times, values = [1_000, 2_000, 3_000], [10, 20, 30]
    assert _nearest(times, values, 1_400, 500) == 10  # the earlier label is nearer
    assert _nearest(times, values, 1_600, 500) == 20  # the later one is
    assert _nearest(times, values, 3_300, 500) == 30  # after the last label
    assert _nearest(times, values, 400, 500) is None  # none within slop
    assert _nearest(times, values, 3_501, 500) is None


def test_label_slop_is_inclusive_as_the_pairers() -> None:
    """``data.slop`` bounds camera <-> LiDAR (``|dt| <= slop``) and camera <-> label alike."""
    times, values = [1_000], [7]
    assert _nearest(times, values, 1_500, 500) == 7
    assert _nearest(times, values, 500, 500) == 7
    assert _nearest(times, values, 1_501, 500) is None


def _recording(start_s: float, seconds: float, n: int, segment: int) -> Arrays:
    stamp = np.round((start_s + np.arange(n) * seconds / n) * 1e9).astype(np.int64)
    return Arrays(
        image=np.zeros((n, 1), np.float32), lidar=np.zeros((n, 1), np.float32),
        action=np.zeros(n, np.int64), family=np.zeros(n, np.int64), stamp=stamp,
        segment=np.full(n, segment, np.int64),
    )  # fmt: skip


def test_time_blocks_start_at_each_recordings_own_start_and_never_merge() -> None:
    """Recording A (0..10 s) is block 0; recording B (stamped from 1005 s, 20 s long) has its
    own blocks 1 (1005..1015 s) and 2 (1015..1025 s). With f = 0.5 rule 3 picks block b iff
    floor((b + 1) / 2) > floor(b / 2): block 1 only, B's first 10 seconds."""
    a = _recording(0.0, 10.0, 20, segment=0)
    b = _recording(1005.0, 20.0, 40, segment=1)
    both = Arrays.concat([a, b])
    train_rows, val_rows = time_block_split(both, 0.5, 10.0)
    t = both.stamp * 1e-9
    expected = np.flatnonzero((both.segment == 1) & (t < 1015.0))
    np.testing.assert_array_equal(val_rows, expected)
    np.testing.assert_array_equal(np.sort(np.r_[train_rows, val_rows]), np.arange(len(both)))


def test_a_checkpoint_of_another_format_is_refused(tmp_path: Path) -> None:
    cfg = TrainConfig.from_dict({'model': {'kind': 'joint'}})
    path = tmp_path / 'c.pt'
    save_checkpoint(path, build_model(cfg.model), cfg, {'stage': 1})
    load_checkpoint(path)  # format 1 loads
    blob = torch.load(path, weights_only=True)
    meta = json.loads(blob['meta'])
    blob['meta'] = json.dumps({**meta, 'format': 2})
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match='format 2'):
        load_checkpoint(path)
