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

"""Trainer behaviour no other test pinned down (found by mutation testing).

Augmentation ranges (contrast factor 1 +- brightness, azimuth roll within +-lidar_roll bins),
the per-frame weighting of the epoch loss, the refusal of a last.pt without its LR scheduler
state, and the metrics.csv trim logging only when a row goes.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from dmil_ros.model import build_model
from dmil_ros.train import trainer
from dmil_ros.train.config import ScheduleConfig, TrainConfig
from dmil_ros.train.errors import TrainError
from tests.train.toy import small_config, toy_arrays

torch.set_num_threads(1)


def test_brightness_factor_spans_both_sides_of_one() -> None:
    """Contrast factor 1 +- brightness: some frames darker, some brighter, none outside."""
    sched = ScheduleConfig(brightness=0.5)
    image = torch.ones(400, 3, 2, 2)
    out, _ = trainer.augment(
        image, torch.zeros(400, 2, 2, 4), sched, torch.Generator().manual_seed(0)
    )
    k = out[:, 0, 0, 0]  # the factor of each frame (the image was all ones)
    assert torch.allclose(out, k[:, None, None, None].expand_as(out))  # one factor per frame
    assert float(k.min()) >= 0.5
    assert float(k.max()) <= 1.5
    assert float(k.min()) < 0.75  # darker frames exist
    assert float(k.max()) > 1.25  # and brighter ones


def test_lidar_roll_is_an_azimuth_roll_over_the_whole_range() -> None:
    """The range image rolls along its azimuth axis (bins) by every shift in [-r, r]."""
    r = 2
    sched = ScheduleConfig(lidar_roll=r)
    lidar = torch.arange(2 * 3 * 7, dtype=torch.float32).reshape(1, 2, 3, 7)
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        _, rolled = trainer.augment(torch.zeros(1, 3, 2, 2), lidar, sched, gen)
        matches = [s for s in range(-r, r + 1) if torch.equal(rolled, torch.roll(lidar, s, -1))]
        assert len(matches) == 1, 'not an azimuth roll within +-lidar_roll'
        seen.add(matches[0])
    assert seen == set(range(-r, r + 1))


def test_epoch_loss_is_the_per_frame_mean_over_uneven_batches() -> None:
    """train_loss and its parts weight each batch by its size: a per-frame mean."""
    cfg = small_config('joint', width=4, batch_size=3)
    model = build_model(cfg.model)
    model.set_stage(1)  # type: ignore[operator]
    data = toy_arrays(5, 0)  # batches of 3 and 2 frames
    tensors = trainer._tensors(data)

    def loss_fn(out: dict[str, Tensor], y: Tensor, fam: Tensor) -> tuple[Tensor, dict[str, Any]]:
        size = float(y.shape[0])  # a batch's loss is its frame count
        return out['probs'].sum() * 0.0 + size, {'part': 2 * size}

    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    epoch = trainer._run_epoch(
        model, tensors, opt, loss_fn=loss_fn, cached=None, sched=cfg.schedule,
        gen=torch.Generator().manual_seed(0), where=(Path('run'), 1, 'test'), progress=False,
    )  # fmt: skip
    values = epoch.values()
    assert epoch.count == 5
    assert values['train_loss'] == pytest.approx((3 * 3 + 2 * 2) / 5)
    assert values['parts']['part'] == pytest.approx(2 * (3 * 3 + 2 * 2) / 5)


def test_resume_refuses_a_last_pt_with_an_optimizer_but_no_scheduler(tmp_path: Path) -> None:
    cfg = small_config('joint', width=4, batch_size=16, baseline_epochs=1)
    tr, va = toy_arrays(32, 0), toy_arrays(8, 1)
    trainer.train(cfg, tr, va, tmp_path, progress=False)
    blob = torch.load(tmp_path / 'last.pt', weights_only=True)
    assert 'optimizer' in blob
    del blob['scheduler']
    torch.save(blob, tmp_path / 'last.pt')
    with pytest.raises(TrainError, match='scheduler'):
        trainer.train(cfg, tr, va, tmp_path, resume=True, progress=False)


def test_trimming_metrics_logs_only_when_a_row_goes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / 'metrics.csv'
    rows = [['kind', 'epoch'], ['dmil', '1'], ['dmil', '2']]
    with path.open('w', newline='', encoding='utf-8') as f:
        csv.writer(f).writerows(rows)
    with caplog.at_level(logging.INFO, logger='dmil_ros.train.trainer'):
        trainer._trim_rows(path, 2)  # last.pt holds both epochs: nothing to drop
    assert 'dropping' not in caplog.text
    assert list(csv.reader(path.open(newline='', encoding='utf-8'))) == rows
    with caplog.at_level(logging.INFO, logger='dmil_ros.train.trainer'):
        trainer._trim_rows(path, 1)
    assert 'dropping 1 row' in caplog.text
    assert list(csv.reader(path.open(newline='', encoding='utf-8'))) == rows[:2]


def test_metrics_rows_log_the_learning_rate_each_epoch_trained_with(tmp_path: Path) -> None:
    """Cosine annealing over the phase: epoch e (0-based) of E trains at
    lr (1 + cos(pi e / E)) / 2, the value its metrics.csv row shows."""
    lr, epochs = 0.01, 3
    raw = small_config('joint', width=4, batch_size=16, baseline_epochs=epochs).to_dict()
    raw['schedule']['lr1'] = lr
    cfg = TrainConfig.from_dict(raw)
    trainer.train(cfg, toy_arrays(32, 0), toy_arrays(8, 1), tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / 'metrics.csv').open(newline='', encoding='utf-8')))
    expected = [lr * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)]
    assert [float(r['lr']) for r in rows] == pytest.approx(expected)


class _PoisoningSGD(torch.optim.SGD):
    """SGD whose step leaves a NaN in the first weight (a finite loss, then bad weights)."""

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        out = super().step(closure)
        with torch.no_grad():
            self.param_groups[0]['params'][0].view(-1)[0] = float('nan')
        return out


def test_non_finite_weights_after_a_finite_loss_stop_the_epoch() -> None:
    cfg = small_config('joint', width=4, batch_size=8)
    model = build_model(cfg.model)
    model.set_stage(1)  # type: ignore[operator]
    tensors = trainer._tensors(toy_arrays(8, 0))
    opt = _PoisoningSGD(model.parameters(), lr=0.0)

    def loss_fn(out: dict[str, Tensor], y: Tensor, fam: Tensor) -> tuple[Tensor, dict[str, Any]]:
        return out['probs'].sum() * 0.0, {}

    with pytest.raises(TrainError, match='not finite after the last step'):
        trainer._run_epoch(
            model, tensors, opt, loss_fn=loss_fn, cached=None, sched=cfg.schedule,
            gen=torch.Generator().manual_seed(0), where=(Path('run'), 1, 'test'),
            progress=False,
        )  # fmt: skip


class _FixedHeads(torch.nn.Module):
    """Outputs fixed per-frame predictions: ``probs`` picks action 0, ``probs_joint`` 1."""

    def forward(self, image: Tensor, lidar: Tensor) -> dict[str, Tensor]:
        n = image.shape[0]
        eye = torch.eye(4)
        return {'probs': eye[[0] * n], 'probs_joint': eye[[1] * n]}


def test_joint_accuracy_is_scored_on_the_joint_head() -> None:
    n = 4
    val = (
        torch.zeros(n, 3, 2, 2),
        torch.zeros(n, 2, 2, 4),
        torch.tensor([1, 1, 1, 0]),  # actions: the joint head is right on 3, probs on 1
        torch.full((n,), -1),
    )
    m = trainer._metrics(_FixedHeads(), val)
    assert m['accuracy'] == pytest.approx(1 / 4)
    assert m['accuracy_joint'] == pytest.approx(3 / 4)
