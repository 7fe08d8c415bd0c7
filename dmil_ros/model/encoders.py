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

"""Camera and LiDAR encoders: small CNNs sized for 2 CPU cores.

Both consume exactly what :mod:`dmil_ros.runtime.preprocess` produces:

* camera: ``(B, 3, H, W)`` standardised RGB -> ``(B, D)``;
* LiDAR: ``(B, 2, beams, bins)`` range image (range / max_range, intensity) -> ``(B, D)``, either
  as an image with circular padding along azimuth (:class:`RangeImageEncoder`, the RangeNet++ /
  SqueezeSeg reading) or as a set of points lifted from the range image's valid cells and pooled
  with a shared MLP (:class:`PointEncoder`, PointNet, Qi et al. 2017). ``benchmarks/bench_train.py
  --encoders`` measures both; the shipped models use the one recorded in their model card.

Spatial layout is kept (no global average pooling): left / right decisions depend on where a cue
is in the image or at which azimuth a gap opens.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dmil_ros.model.config import (
    RANGE_LAYERS,
    ModelConfig,
    camera_feature_size,
    range_feature_size,
)


class CameraEncoder(nn.Module):
    """Three stride-2 conv blocks, a 2x2 average pool, then a linear layer to D."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.camera_channels
        layers: list[nn.Module] = []
        cin = 3
        for cout in (c1, c2, c3):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU()]
            cin = cout
        layers.append(nn.AvgPool2d(2))
        h, w = camera_feature_size(*cfg.image_shape[1:])  # the map these layers leave
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(c3 * h * w, cfg.feature_dim), nn.ReLU())

    def forward(self, image: Tensor) -> Tensor:
        x = self.conv(image)  # (B, C, h, w)
        out: Tensor = self.fc(x.flatten(1))  # (B, D)
        return out


class CircularConv(nn.Module):
    """Conv2d padded circularly along azimuth (last axis) and with zeros along beams.

    The wrap is written with slices and ``cat`` so that it exports to plain ONNX ops.
    """

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], stride: tuple[int, int]):
        super().__init__()
        self.wrap = kernel[1] // 2
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=(kernel[0] // 2, 0))

    def forward(self, x: Tensor) -> Tensor:
        k = self.wrap
        if k:
            x = torch.cat([x[..., -k:], x, x[..., :k]], dim=-1)  # (B, C, H, W + 2k)
        out: Tensor = self.conv(x)
        return out


class RangeImageEncoder(nn.Module):
    """Range-image CNN: circular convs (:data:`RANGE_LAYERS`: strides (2,3), (2,2), (2,2)),
    then linear to D."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 2
        for cout, (kernel, stride) in zip(cfg.lidar_channels, RANGE_LAYERS, strict=True):
            layers += [CircularConv(cin, cout, kernel, stride), nn.BatchNorm2d(cout), nn.ReLU()]
            cin = cout
        h, w = range_feature_size(*cfg.lidar_shape[1:])  # the map these layers leave
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(cin * h * w, cfg.feature_dim), nn.ReLU())

    def forward(self, lidar: Tensor) -> Tensor:
        x = self.conv(lidar)  # (B, C, h, w)
        out: Tensor = self.fc(x.flatten(1))  # (B, D)
        return out


class PointEncoder(nn.Module):
    """PointNet over the range image's cells.

    1. each cell (row i, column j) with range r > 0 becomes a point: azimuth
       a_j = -pi + (j + 0.5) 2 pi / bins, elevation e_i on the configured vertical FOV,
       xyz = r (cos e cos a, cos e sin a, sin e), plus its intensity;
    2. a shared MLP lifts each point to ``hidden`` features;
    3. masked max-pool over the valid points (empty clouds give zeros), then linear to D.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        _, beams, bins = cfg.lidar_shape
        lo, hi = (math.radians(v) for v in cfg.vertical_fov_deg)
        az = -math.pi + (torch.arange(bins, dtype=torch.float32) + 0.5) * (2 * math.pi / bins)
        el = torch.linspace(lo, hi, beams) if beams > 1 else torch.zeros(1)
        el_g, az_g = torch.meshgrid(el, az, indexing='ij')  # (beams, bins)
        dirs = torch.stack(
            [el_g.cos() * az_g.cos(), el_g.cos() * az_g.sin(), el_g.sin()], dim=0
        )  # (3, beams, bins)
        self.register_buffer('dirs', dirs.reshape(1, 3, beams * bins), persistent=False)
        width = cfg.hidden
        self.mlp = nn.Sequential(
            nn.Conv1d(4, 32, 1), nn.ReLU(), nn.Conv1d(32, width, 1), nn.ReLU()
        )
        self.fc = nn.Sequential(nn.Linear(width, cfg.feature_dim), nn.ReLU())

    def forward(self, lidar: Tensor) -> Tensor:
        rng = lidar[:, 0].flatten(1).unsqueeze(1)  # (B, 1, P)
        inten = lidar[:, 1].flatten(1).unsqueeze(1)  # (B, 1, P)
        dirs: Tensor = self.dirs  # type: ignore[assignment]
        pts = torch.cat([rng * dirs, inten], dim=1)  # (B, 4, P)
        feat = self.mlp(pts)  # (B, F, P)
        valid = (rng > 0).to(feat.dtype)  # (B, 1, P)
        # ReLU features are >= 0, so zeroing invalid points before the max is a masked max
        pooled = (feat * valid).amax(dim=2)  # (B, F)
        out: Tensor = self.fc(pooled)  # (B, D)
        return out


def lidar_encoder(cfg: ModelConfig) -> nn.Module:
    """The LiDAR encoder the configuration names."""
    if cfg.lidar_encoder == 'point':
        return PointEncoder(cfg)
    return RangeImageEncoder(cfg)
