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

"""An oracle "model" over simulator ground truth, for dataset-level audit tests.

Its features encode the latent cues (family + cue as points on a circle, plus noise), its
unimodal and joint conditionals are the exact ones of the simulator's design tables, and it
predicts the expert's action. An audit of it must recover the simulator's ground truth.
"""

from __future__ import annotations

import numpy as np

from dmil_ros.actions import FAMILIES
from dmil_ros.audit.bagresult import BagResult
from dmil_ros.sim import SimConfig, Simulator
from dmil_ros.sim.families import pooled_index, pooled_joint


def _circle(index: np.ndarray, size: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    angle = 2 * np.pi * index / size
    pts = 4.0 * np.column_stack([np.cos(angle), np.sin(angle)])
    return (pts + rng.normal(0.0, noise, pts.shape)).astype(np.float32)


def oracle_bag(frames: int, seed: int, name: str = 'oracle', noise: float = 0.05) -> BagResult:
    sim = Simulator(SimConfig(frames=frames, seed=seed))
    truths = sim.truths()
    rng = np.random.default_rng(seed)
    joint = pooled_joint(dict.fromkeys(FAMILIES, 1.0))  # (n1, n2, 4)
    n1, n2, _ = joint.shape
    rows = np.array([pooled_index(t.family, t.camera_latent, t.lidar_latent) for t in truths])
    i, j = rows[:, 0], rows[:, 1]
    eps = 1e-3
    p_cam = joint.sum(1)[i] + eps
    p_lid = joint.sum(0)[j] + eps
    p_joint = joint[i, j] + eps
    norm = [p / p.sum(1, keepdims=True) for p in (p_cam, p_lid, p_joint)]
    action = np.array([t.action for t in truths], np.int64)
    arrays = {
        'stamp': np.array([t.stamp_ns for t in truths], np.int64),
        'lidar_stamp': np.full(frames, -1, np.int64),  # the oracle pairs no sweeps
        'probs': norm[2].astype(np.float32),
        'gates': np.full((frames, 4), np.nan, np.float32),
        'p_camera': norm[0].astype(np.float32),
        'p_lidar': norm[1].astype(np.float32),
        'p_joint': norm[2].astype(np.float32),
        'feat_camera': _circle(i, n1, rng, noise),
        'feat_lidar': _circle(j, n2, rng, noise),
        'self_lsmi': np.full((frames, 4), np.nan, np.float32),
        'self_broja': np.full((frames, 4), np.nan, np.float32),
        'label': action,
        'family': np.array([FAMILIES.index(t.family) for t in truths], np.int64),
        'segment': np.array([t.segment for t in truths], np.int64),
        'camera_latent': np.array([t.camera_latent for t in truths], np.int64),
        'lidar_latent': np.array([t.lidar_latent for t in truths], np.int64),
        'alert': np.zeros(frames, bool),
    }
    return BagResult(name, arrays, {'status': 'ok', 'errors': []})
