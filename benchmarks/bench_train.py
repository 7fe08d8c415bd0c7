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

"""Training benchmark: three-stage DMIL wall time on 2 CPU threads, and the LiDAR encoder choice.

Usage::

    python benchmarks/bench_train.py --bags B1 B2 ... [--frames 20000] [--threads 2]
        [--config config/train_hallway.json] [--encoders] [--out /tmp/bench_train]

* ``--encoders``: for the range-image CNN and the point (PointNet) encoder, training throughput
  (frames/s, forward + backward of a LiDAR-only classifier) and the LiDAR-only validation
  accuracy after the same number of epochs; prints the ratios.
* ``--study OUT [--seeds 0 1 2] [--jobs 2] [--test-seeds 103 104]``: the rare-synergy study
  of DMIL against joint fusion and the late ensemble over training seeds (simulates its own
  bags; nine trainings of 4-6 minutes, two at a time on 2 cores; see
  ``benchmarks/train_study.py``); prints issue 6's targets per seed and on the seed means.
* default: full three-stage DMIL training (shipped config) on ``--frames`` training pairs
  (repeated from the bags' pairs when fewer), printing the wall time and its ratio to the
  15-minute target.

Bags are decoded once into the training cache (not timed).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from dmil_ros.actions import FAMILIES
from dmil_ros.model import ModelConfig
from dmil_ros.model.encoders import lidar_encoder
from dmil_ros.train.cli import default_cache_dir
from dmil_ros.train.config import TrainConfig
from dmil_ros.train.data import load_bags
from dmil_ros.train.dataset import Arrays, time_block_split
from dmil_ros.train.trainer import train

TARGET_S = 15 * 60


def encoders(data: Arrays, val: Arrays, threads: int, epochs: int) -> None:
    torch.set_num_threads(threads)
    x, y = torch.from_numpy(data.lidar), torch.from_numpy(data.action)
    xv, yv = torch.from_numpy(val.lidar), torch.from_numpy(val.action)
    lidar_fam = np.isin(val.family, [FAMILIES.index('R'), FAMILIES.index('U_lidar')])
    results = {}
    for name in ('range', 'point'):
        torch.manual_seed(0)
        cfg = ModelConfig(lidar_encoder=name)
        enc = lidar_encoder(cfg)
        head = torch.nn.Linear(cfg.feature_dim, 4)
        params = [*enc.parameters(), *head.parameters()]
        opt = torch.optim.Adam(params, 2e-3)
        t0 = time.perf_counter()
        seen = 0
        for _ in range(epochs):
            enc.train()
            for i in torch.randperm(len(y)).split(128):
                loss = F.cross_entropy(head(enc(x[i])), y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                seen += len(i)
        fps = seen / (time.perf_counter() - t0)
        enc.eval()
        with torch.no_grad():
            pred = torch.cat(
                [head(enc(xv[i : i + 512])).argmax(1) for i in range(0, len(yv), 512)]
            )
        right = (pred == yv).numpy()
        n_params = sum(p.numel() for p in enc.parameters())
        results[name] = (fps, float(right[lidar_fam].mean()), n_params)
        print(
            f'{name:>5} encoder: {fps:7.0f} frames/s (train), LiDAR-only accuracy on R + U_lidar '
            f'frames {100 * results[name][1]:.1f}% after {epochs} epochs, {n_params} parameters'
        )
    r, p = results['range'], results['point']
    print(f'range / point: throughput x{r[0] / p[0]:.2f}, accuracy {100 * (r[1] - p[1]):+.1f} pts')


def full(data: Arrays, val: Arrays, config: TrainConfig, frames: int, out: Path) -> None:
    reps = int(np.ceil(frames / len(data)))
    idx = np.tile(np.arange(len(data)), reps)[:frames]
    train_set = data.subset(idx)
    s = config.schedule
    print(f'three-stage DMIL on {len(train_set)} pairs, {s.threads} threads, schedule '
          f'{s.stage1_epochs}/{s.stage2_epochs}/{s.stage3_epochs} epochs, '
          f'load average {os.getloadavg()[0]:.1f}')  # fmt: skip
    t0 = time.perf_counter()
    summary = train(config.with_kind('dmil'), train_set, val, out, progress=False)
    wall = time.perf_counter() - t0
    print(f'wall {wall:.0f} s (epochs {summary["train_seconds"]:.0f} s); target {TARGET_S} s; '
          f'ratio wall / target = {wall / TARGET_S:.2f}')  # fmt: skip
    print(f'validation accuracy {summary["val"]["accuracy"]:.4f}')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--bags', type=Path, nargs='+')
    ap.add_argument('--study', type=Path, default=None, help='run the rare-synergy study here')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('--test-seeds', type=int, nargs='+', default=[103, 104])
    ap.add_argument('--config', type=Path, default=Path('config/train_hallway.json'))
    ap.add_argument('--frames', type=int, default=20_000)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--encoders', action='store_true')
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--encoder-frames', type=int, default=4000)
    ap.add_argument('--out', type=Path, default=Path('/tmp/bench_train'))
    args = ap.parse_args()
    if args.study is not None:
        from train_study import run_study  # benchmarks/train_study.py

        run_study(args.study, args.seeds, args.jobs, args.test_seeds)
        return
    if not args.bags:
        ap.error('--bags is required (except with --study)')
    config = TrainConfig.load(args.config)
    raw = config.to_dict()
    raw['schedule']['threads'] = args.threads
    config = TrainConfig.from_dict(raw)
    data, _ = load_bags(args.bags, config.data, config.preprocess, default_cache_dir())
    tr, va = time_block_split(data, config.data.val_fraction, config.data.block_seconds)
    if args.encoders:
        tr = tr[np.linspace(0, len(tr) - 1, min(len(tr), args.encoder_frames)).astype(np.int64)]
        encoders(data.subset(tr), data.subset(va), args.threads, args.epochs)
    else:
        full(data.subset(tr), data.subset(va), config, args.frames, args.out)


if __name__ == '__main__':
    main()
