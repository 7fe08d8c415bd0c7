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

"""A tiny camera + range-image task with known interaction families (tests only).

Per frame, two hidden bits: a colour bit c (red / blue patch in the image) and a side bit g (the
gap opens on the left or right of the range image). Families decide what the action depends on:

* R: action from g (left / right), and c is set equal to g, so both sensors carry it;
* U_camera: action from c (forward / stop); the LiDAR shows a plain wall (no gap);
* U_lidar: the image is dark noise; action from g (left / right);
* S: action = left if c XOR g else right (neither sensor alone tells it); the colour patch sits
  low in the image, so the camera knows the family but not the action.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dmil_ros.train.config import TrainConfig
from dmil_ros.train.dataset import Arrays


def toy_arrays(n: int, seed: int, families: tuple[int, ...] = (0, 1, 2, 3)) -> Arrays:
    rng = np.random.default_rng(seed)
    fam = rng.choice(np.asarray(families), size=n)
    c = rng.integers(0, 2, n)
    g = rng.integers(0, 2, n)
    c = np.where(fam == 0, g, c)
    action = np.select(
        [fam == 0, fam == 1, fam == 2],
        [1 + g, np.where(c == 1, 0, 3), 1 + g],
        default=np.where(c ^ g, 1, 2),
    ).astype(np.int64)
    image = rng.normal(0, 0.3, (n, 3, 48, 64)).astype(np.float32)
    lit = fam != 2
    # colour patch in the centre: red (channel 0) for c = 1, blue (channel 2) for c = 0
    for i in np.flatnonzero(lit):
        top = 30 if fam[i] == 3 else 8
        image[i, 0 if c[i] else 2, top : top + 14, 24:40] += 2.0
    lidar = np.full((n, 2, 16, 180), 0.5, np.float32)
    lidar += rng.normal(0, 0.02, lidar.shape).astype(np.float32)
    # a gap (far returns) on the left (cols 100..130) or right (cols 50..80)
    for i in np.flatnonzero(fam != 1):
        lo = 100 if g[i] == 0 else 50
        lidar[i, 0, :, lo : lo + 30] = 1.0
    stamp = np.arange(n, dtype=np.int64) * 50_000_000  # 20 Hz, ns
    return Arrays(
        image=image, lidar=lidar, action=action, family=fam.astype(np.int64), stamp=stamp,
        segment=np.zeros(n, np.int64),
    )  # fmt: skip


def small_model(width: int = 8) -> dict[str, Any]:
    """A tiny model config: channels width/2, width, width; features 2 width."""
    return {'camera_channels': [width // 2, width, width],
            'lidar_channels': [width // 2, width, width],
            'feature_dim': 2 * width, 'latent_dim': 4, 'hidden': 2 * width}  # fmt: skip


def small_config(kind: str, width: int = 8, batch_size: int = 64, **schedule: int) -> TrainConfig:
    """:func:`small_model` on a one-epoch-per-stage schedule."""
    sched = {'stage1_epochs': 1, 'stage2_epochs': 1, 'stage3_epochs': 1, 'baseline_epochs': 2,
             'batch_size': batch_size, 'threads': 1, **schedule}  # fmt: skip
    model = {**small_model(width), 'kind': kind}
    return TrainConfig.from_dict({'model': model, 'schedule': sched})
