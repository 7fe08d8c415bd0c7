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

"""Baselines sharing DMIL's encoders: joint (early/intermediate) fusion and a late ensemble.

* :class:`JointFusion`: ``MLP([Z1, Z2])``. Unimodal predictions (for the synergy indicator and
  as LSMI discriminators) come from linear probes on the *detached* features, so they do not
  change what the joint model learns.
* :class:`LateEnsemble`: two unimodal classifiers trained independently; the prediction is the
  mean of their probabilities. It cannot represent synergy (methods.md §4).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dmil_ros.model.config import ModelConfig
from dmil_ros.model.encoders import CameraEncoder, lidar_encoder
from dmil_ros.model.layers import mlp

Outputs = dict[str, Tensor]


class JointFusion(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, h, k = cfg.feature_dim, cfg.hidden, cfg.num_actions
        self.camera_encoder = CameraEncoder(cfg)
        self.lidar_encoder = lidar_encoder(cfg)
        self.head_joint = mlp(2 * d, h, k)
        self.probe_camera = nn.Linear(d, k)
        self.probe_lidar = nn.Linear(d, k)
        self.stage = 3

    def set_stage(self, stage: int) -> None:
        self.stage = stage
        self.train()

    def forward(self, image: Tensor, lidar: Tensor) -> Outputs:
        z1, z2 = self.camera_encoder(image), self.lidar_encoder(lidar)  # (B, D) each
        logits = self.head_joint(torch.cat([z1, z2], dim=1))  # (B, K)
        return {
            'feat_camera': z1,
            'feat_lidar': z2,
            'logits_joint': logits,
            'logits_camera': self.probe_camera(z1.detach()),
            'logits_lidar': self.probe_lidar(z2.detach()),
            'probs': torch.softmax(logits, dim=1),
            'probs_joint': torch.softmax(logits, dim=1),
            'probs_camera': torch.softmax(self.probe_camera(z1.detach()), dim=1),
            'probs_lidar': torch.softmax(self.probe_lidar(z2.detach()), dim=1),
        }


class LateEnsemble(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, h, k = cfg.feature_dim, cfg.hidden, cfg.num_actions
        self.camera_encoder = CameraEncoder(cfg)
        self.lidar_encoder = lidar_encoder(cfg)
        self.head_camera = mlp(d, h, k)
        self.head_lidar = mlp(d, h, k)
        self.stage = 3

    def set_stage(self, stage: int) -> None:
        self.stage = stage
        self.train()

    def forward(self, image: Tensor, lidar: Tensor) -> Outputs:
        z1, z2 = self.camera_encoder(image), self.lidar_encoder(lidar)  # (B, D) each
        l1, l2 = self.head_camera(z1), self.head_lidar(z2)  # (B, K) each
        p1, p2 = torch.softmax(l1, dim=1), torch.softmax(l2, dim=1)  # (B, K) each
        probs = 0.5 * (p1 + p2)  # (B, K)
        return {
            'feat_camera': z1,
            'feat_lidar': z2,
            'logits_camera': l1,
            'logits_lidar': l2,
            'probs': probs,
            'probs_camera': p1,
            'probs_lidar': p2,
        }
