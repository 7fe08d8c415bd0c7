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

"""The trainer: DMIL's three-stage schedule (methods.md §4) or a one-stage baseline, on arrays.

Phases: DMIL runs stage 1 (encoders + ID), stage 2 (stage 1 frozen: CD, synergy, gate; the
frozen encoders' features are computed once and reused every epoch) and stage 3 (joint
fine-tune); each stage starts from the best validation checkpoint of the latest earlier stage
that ran (a 0-epoch stage is skipped; ``model.pt`` is the best of the last stage that ran).
``joint`` and ``ensemble`` run one phase of ``baseline_epochs``.

A fresh run removes the checkpoints, summary and TensorBoard events an earlier run left (logged);
``resume`` continues from ``last.pt`` (weights, optimizer, LR scheduler, global RNG and the
shuffle / augmentation generator), or warns and starts afresh when there is none; the metrics of
an epoch that ``last.pt`` does not hold (the run stopped while its checkpoints were saved) are
dropped, so the epoch run again is logged once.

A non-finite loss raises :class:`TrainError` before the optimizer steps with it (and non-finite
weights after an epoch before it is validated or saved), naming the stage, epoch and learning
rate; the checkpoints of the epochs before are left as they were.

Files in the run directory: ``metrics.csv`` (one row per epoch), ``tb/`` (TensorBoard),
``last.pt`` (for ``resume``), ``stage<k>_best.pt``, ``model.pt`` (the final best),
``summary.json``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from dmil_ros.actions import FAMILIES
from dmil_ros.atomic import atomic_write_text
from dmil_ros.model import build_model, dmil_loss, ensemble_loss, joint_loss
from dmil_ros.model.dmil import DMIL
from dmil_ros.train.checkpoint import load_checkpoint, save_checkpoint
from dmil_ros.train.config import ScheduleConfig, TrainConfig
from dmil_ros.train.dataset import Arrays
from dmil_ros.train.errors import TrainError
from dmil_ros.train.metrics import evaluate_predictions
from dmil_ros.train.rundir import config_changes, earlier_run

logger = logging.getLogger(__name__)

CSV_COLUMNS = (
    'kind', 'stage', 'epoch', 'seconds', 'lr', 'train_loss', 'val_accuracy',
    *(f'val_{f}' for f in FAMILIES), 'val_accuracy_camera', 'val_accuracy_lidar',
    'val_accuracy_joint', 'val_synergy_indicator', 'val_gate_family_agreement', 'loss_parts',
)  # fmt: skip


@dataclass(frozen=True)
class Phase:
    stage: int
    epochs: int
    lr: float


def phases(config: TrainConfig) -> list[Phase]:
    s = config.schedule
    if config.model.kind == 'dmil':
        return [
            Phase(1, s.stage1_epochs, s.lr1),
            Phase(2, s.stage2_epochs, s.lr2),
            Phase(3, s.stage3_epochs, s.lr3),
        ]
    return [Phase(1, s.baseline_epochs, s.lr1)]


_Tensors = tuple[Tensor, Tensor, Tensor, Tensor]  # image, lidar, action, family
_LossFn = Callable[[dict[str, Tensor], Tensor, Tensor], tuple[Tensor, dict[str, float]]]


def _tensors(a: Arrays) -> _Tensors:
    return (
        torch.from_numpy(a.image),
        torch.from_numpy(a.lidar),
        torch.from_numpy(a.action),
        torch.from_numpy(a.family),
    )


@torch.no_grad()
def predict(model: nn.Module, image: Tensor, lidar: Tensor, batch: int = 512) -> dict[str, Any]:
    """Eval-mode outputs as numpy arrays (the keys the ONNX export publishes)."""
    model.eval()
    keys = ('probs', 'probs_camera', 'probs_lidar', 'probs_joint', 'gates', 'sub_probs',
            'feat_camera', 'feat_lidar')  # fmt: skip
    chunks: dict[str, list[np.ndarray[Any, Any]]] = {}
    for i in range(0, image.shape[0], batch):
        out = model(image[i : i + batch], lidar[i : i + batch])
        for k in keys:
            if k in out:
                chunks.setdefault(k, []).append(out[k].numpy())
    return {k: np.concatenate(v) for k, v in chunks.items()}


def _metrics(model: nn.Module, val: _Tensors) -> dict[str, Any]:
    image, lidar, action, family = val
    p = predict(model, image, lidar)
    m = evaluate_predictions(
        p['probs'], action.numpy(), family.numpy(), probs_camera=p.get('probs_camera'),
        probs_lidar=p.get('probs_lidar'), gates=p.get('gates'),
    )  # fmt: skip
    if 'probs_joint' in p:
        m['accuracy_joint'] = float((p['probs_joint'].argmax(1) == action.numpy()).mean())
    return m


def _selection_score(kind: str, stage: int, m: dict[str, Any]) -> float:
    """Stage 1 of DMIL is judged on its heads (joint + unimodal); otherwise on ``probs``."""
    if kind == 'dmil' and stage == 1:
        return float(m['accuracy_joint'] + 0.5 * (m['accuracy_camera'] + m['accuracy_lidar']))
    return float(m['accuracy'])


class _Logger:
    """``metrics.csv`` and TensorBoard, one row / step per epoch.

    An epoch's row is written before its checkpoints, so a run stopped while they were being
    saved has a row for an epoch that ``last.pt`` does not hold. A resume at ``done`` finished
    epochs therefore keeps only the first ``done`` rows and purges the TensorBoard steps after
    ``done``: the epoch that runs again is logged once.
    """

    def __init__(self, out: Path, resume: bool, done: int = 0) -> None:
        self.csv_path = out / 'metrics.csv'
        if resume and self.csv_path.exists():
            _trim_rows(self.csv_path, done)
        else:
            with self.csv_path.open('w', newline='', encoding='utf-8') as f:
                csv.writer(f).writerow(CSV_COLUMNS)
        self.tb: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            # steps are 1-based: the first step logged again is done + 1
            self.tb = SummaryWriter(str(out / 'tb'), purge_step=done + 1 if resume else None)
        except ImportError:  # tensorboard is optional at run time
            logger.warning('tensorboard not installed: metrics go to metrics.csv only')

    def row(self, kind: str, stage: int, epoch: int, step: int, values: dict[str, Any]) -> None:
        m = values['val']
        fam = m['per_family']
        row = [
            kind, stage, epoch, round(values['seconds'], 2), values['lr'],
            round(values['train_loss'], 5), m['accuracy'], *(fam[f] for f in FAMILIES),
            m.get('accuracy_camera'), m.get('accuracy_lidar'), m.get('accuracy_joint'),
            m.get('synergy_indicator'), m.get('gate_family_agreement'),
            json.dumps({k: round(v, 5) for k, v in values['parts'].items()}),
        ]  # fmt: skip
        with self.csv_path.open('a', newline='', encoding='utf-8') as f:
            csv.writer(f).writerow(row)
        if self.tb is not None:
            self.tb.add_scalar('train/loss', values['train_loss'], step)
            for k, v in values['parts'].items():
                self.tb.add_scalar(f'train/{k}', v, step)
            scalars = {'accuracy': m['accuracy'], **{f'acc_{f}': fam[f] for f in FAMILIES}}
            for k in ('synergy_indicator', 'gate_family_agreement', 'accuracy_joint'):
                scalars[k] = m.get(k)
            for k, v in scalars.items():
                if v is not None:
                    self.tb.add_scalar(f'val/{k}', v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _trim_rows(path: Path, done: int) -> None:
    """Keep the header and the first ``done`` rows of ``metrics.csv`` (logged when any go)."""
    with path.open(newline='', encoding='utf-8') as f:
        rows = list(csv.reader(f))
    extra = len(rows) - 1 - done
    if extra > 0:
        logger.info(
            '%s: dropping %d row(s) of an epoch whose checkpoint was not saved (it runs again)',
            path, extra,
        )  # fmt: skip
        text = io.StringIO()
        csv.writer(text).writerows(rows[: done + 1])
        atomic_write_text(path, text.getvalue())


def augment(
    image: Tensor, lidar: Tensor, sched: ScheduleConfig, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Photometric jitter of the image, a small azimuth roll of the range image.

    Neither changes the action: colours keep their hue, the roll (a few degrees) keeps every
    opening on its side.
    """
    b = image.shape[0]
    if sched.brightness > 0:
        k = 1.0 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * sched.brightness
        image = image * k  # (B, 3, H, W)
    if sched.image_noise > 0:
        image = image + torch.randn(image.shape, generator=gen) * sched.image_noise
    if sched.lidar_roll > 0:
        shift = int(torch.randint(-sched.lidar_roll, sched.lidar_roll + 1, (1,), generator=gen))
        lidar = torch.roll(lidar, shifts=shift, dims=-1)  # (B, 2, beams, bins)
    return image, lidar


def _loss_fn(kind: str, stage: int, config: TrainConfig) -> _LossFn:
    if kind == 'dmil':
        return lambda out, y, fam: dmil_loss(out, y, fam, stage, config.loss)
    if kind == 'joint':
        return lambda out, y, fam: joint_loss(out, y)
    return lambda out, y, fam: ensemble_loss(out, y)


@dataclass
class _Epoch:
    """One pass over the training frames: the summed loss and parts, weighted by batch size."""

    total: float = 0.0
    count: int = 0
    parts: dict[str, float] = field(default_factory=dict)

    def add(self, loss: float, parts: dict[str, float], size: int) -> None:
        self.total += loss * size
        self.count += size
        for k, v in parts.items():
            self.parts[k] = self.parts.get(k, 0.0) + v * size

    def values(self) -> dict[str, Any]:
        return {
            'train_loss': self.total / max(self.count, 1),
            'parts': {k: v / max(self.count, 1) for k, v in self.parts.items()},
        }


def check_sets(train_set: Arrays, val_set: Arrays, out: Path) -> None:
    if len(train_set) < 2 or not len(val_set):
        msg = (
            f'train {str(out)!r}: {len(train_set)} training / {len(val_set)} validation frames; '
            'training needs at least 2 frames (a batch of one is skipped: BatchNorm) and '
            'validation at least 1 (see data.val_fraction and data.block_seconds)'
        )
        raise TrainError(msg)


def _resume(
    out: Path, config: TrainConfig, model: nn.Module, gen: torch.Generator
) -> tuple[dict[str, Any], Any, Any]:
    """Load ``last.pt`` into the model and generators; returns (state, optimizer, scheduler)."""
    blob, saved_cfg, meta = load_checkpoint(out / 'last.pt')
    if saved_cfg != config:
        changed = config_changes(saved_cfg, config)
        msg = (
            f'resume {str(out)!r}: the run was started with a different config (last.pt '
            f"differs in {changed}); resume with the run's own config (dmil-ros train "
            '--resume without --config; --config with the file the run was started with '
            'when its config.json is gone), or start a new run'
        )
        raise TrainError(msg)
    if 'generator' not in blob or ('optimizer' in blob and 'scheduler' not in blob):
        msg = (
            f'resume {str(out)!r}: last.pt lacks the shuffle generator / LR scheduler '
            'state (written by an older version); train afresh'
        )
        raise TrainError(msg)
    model.load_state_dict(blob['state_dict'])
    torch.set_rng_state(blob['rng'])
    gen.set_state(blob['generator'])
    state: dict[str, Any] = meta['state']
    logger.info('resuming %s at phase %d epoch %d', out, state['phase'], state['epoch'])
    return state, blob.get('optimizer'), blob.get('scheduler')


def _remove_earlier_run(out: Path) -> None:
    stale = earlier_run(out)
    if stale:
        names = [str(p.relative_to(out)) for p in stale]
        logger.info('%s: removing files of an earlier run: %s', out, names)
        for p in stale:
            p.unlink()


def _frozen_features(model: DMIL, tr: _Tensors) -> tuple[Tensor, Tensor]:
    """DMIL stage 2: the frozen encoders' features (eval mode), once per stage."""
    n = tr[0].shape[0]
    with torch.no_grad():
        zs = [model.encode(tr[0][i : i + 512], tr[1][i : i + 512]) for i in range(0, n, 512)]
    return torch.cat([z[0] for z in zs]), torch.cat([z[1] for z in zs])  # (N, D) each


def _diverged(out: Path, desc: str, what: str, stage: int, opt: torch.optim.Optimizer) -> str:
    """The message for a non-finite loss or weight: where, the learning rate, what to do."""
    lr = opt.param_groups[0]['lr']
    return (
        f'train {str(out)!r}: {desc}: {what} (learning rate {lr:g}, schedule.lr{stage}): '
        f'training diverged; lower schedule.lr{stage} and train again (--overwrite, or '
        'another --out)'
    )


def _run_epoch(
    model: nn.Module,
    tr: _Tensors,
    opt: torch.optim.Optimizer,
    *,
    loss_fn: _LossFn,
    cached: tuple[Tensor, Tensor] | None,
    sched: ScheduleConfig,
    gen: torch.Generator,
    where: tuple[Path, int, str],
    progress: bool,
) -> _Epoch:
    """One shuffled pass of optimizer steps (a batch of one frame is skipped: BatchNorm).

    ``where``: the run directory, the stage and the epoch's description, for the progress bar
    and the error a non-finite loss or weight raises (before the optimizer steps with it, so
    the checkpoints of the epochs before stay as they were).
    """
    out_dir, stage, desc = where
    n = tr[0].shape[0]
    order = torch.randperm(n, generator=gen)
    epoch = _Epoch()
    batches = range(0, n, sched.batch_size)
    bar = tqdm(batches, disable=not progress, leave=False, desc=desc)
    for i in bar:
        idx = order[i : i + sched.batch_size]
        if idx.numel() < 2:
            continue
        if cached is not None:
            out = model.forward_features(cached[0][idx], cached[1][idx])  # type: ignore[operator]
        else:
            out = model(*augment(tr[0][idx], tr[1][idx], sched, gen))
        loss, parts = loss_fn(out, tr[2][idx], tr[3][idx])
        value = float(loss.detach())  # one read of the loss per batch
        if not math.isfinite(value):
            shown = {k: f'{v:.4g}' for k, v in parts.items()}
            what = f'loss {value} is not finite (parts {shown})'
            raise TrainError(_diverged(out_dir, desc, what, stage, opt))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        epoch.add(value, parts, idx.numel())
        bar.set_postfix(loss=f'{value:.3f}')
    # a finite loss can still take a step to inf / NaN weights: never validated nor saved
    bad = [k for k, v in model.named_parameters() if not bool(torch.isfinite(v).all())]
    if bad:
        what = f'{len(bad)} weight tensor(s) not finite after the last step ({bad[:3]} ...)'
        raise TrainError(_diverged(out_dir, desc, what, stage, opt))
    return epoch


def train(
    config: TrainConfig,
    train_set: Arrays,
    val_set: Arrays,
    out: Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every phase; returns (and writes to ``summary.json``) the training summary."""
    check_sets(train_set, val_set, out)
    out.mkdir(parents=True, exist_ok=True)
    kind = config.model.kind
    sched = config.schedule
    plan = phases(config)  # at least one epoch: TrainConfig refuses a schedule without
    torch.set_num_threads(sched.threads)
    torch.manual_seed(sched.seed)
    model = build_model(config.model)
    gen = torch.Generator().manual_seed(sched.seed)
    if resume and not (out / 'last.pt').exists():
        logger.warning('resume %s: no last.pt there, starting from scratch', out)
        resume = False
    state: dict[str, Any] = {'phase': 0, 'epoch': 0, 'best': {}, 'seconds': 0.0}
    opt_state: Any = None
    lr_state: Any = None
    if resume:
        state, opt_state, lr_state = _resume(out, config, model, gen)
    else:
        _remove_earlier_run(out)
    tr, va = _tensors(train_set), _tensors(val_set)
    step = sum(p.epochs for p in plan[: state['phase']]) + state['epoch']  # epochs done
    log = _Logger(out, resume, step)
    try:  # closed on an error or Ctrl-C too: a writer left open at exit could abort (134)
        for pi in range(state['phase'], len(plan)):
            ph = plan[pi]
            if ph.epochs == 0:
                continue
            # 1. the stage starts from the best checkpoint of the latest earlier stage that ran
            #    (0-epoch stages are skipped), or from last.pt mid-stage
            prev = [p for p in plan[:pi] if p.epochs > 0]
            if prev and state['epoch'] == 0:
                blob, _, _ = load_checkpoint(out / f'stage{prev[-1].stage}_best.pt')
                model.load_state_dict(blob['state_dict'])
            model.set_stage(ph.stage)  # type: ignore[operator]
            params = [p for p in model.parameters() if p.requires_grad]
            opt = torch.optim.Adam(params, lr=ph.lr, weight_decay=sched.weight_decay)
            sched_lr = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=ph.epochs)
            if opt_state is not None and state['epoch'] > 0:
                # the saved states, not a replay of scheduler steps (which anneals twice)
                opt.load_state_dict(opt_state)
                sched_lr.load_state_dict(lr_state)
            opt_state = lr_state = None
            loss_fn = _loss_fn(kind, ph.stage, config)
            cached: tuple[Tensor, Tensor] | None = None
            if isinstance(model, DMIL) and ph.stage == 2:
                cached = _frozen_features(model, tr)
            key = f'stage{ph.stage}'
            for epoch in range(state['epoch'], ph.epochs):
                # 2. one pass of optimizer steps, then the LR step
                t0 = time.perf_counter()
                model.set_stage(ph.stage)  # type: ignore[operator]
                desc = f'{kind} stage {ph.stage} epoch {epoch + 1}/{ph.epochs}'
                done = _run_epoch(
                    model, tr, opt, loss_fn=loss_fn, cached=cached, sched=sched, gen=gen,
                    where=(out, ph.stage, desc), progress=progress,
                )  # fmt: skip
                if not done.count:  # every batch held one frame: the weights did not move
                    msg = (
                        f'train {str(out)!r}: {kind} stage {ph.stage} epoch {epoch + 1} took '
                        f'no optimizer step ({len(train_set)} training frame(s), batch_size '
                        f'{sched.batch_size}; a batch of one frame is skipped): at least 2 '
                        'training frames and batch_size >= 2 are needed'
                    )
                    raise TrainError(msg)
                lr_used = opt.param_groups[0]['lr']
                sched_lr.step()
                # 3. validation, the metrics row, the stage's best and last.pt
                metrics = _metrics(model, va)
                seconds = time.perf_counter() - t0
                state['seconds'] += seconds
                step += 1
                values = {'val': metrics, 'seconds': seconds, 'lr': lr_used, **done.values()}
                log.row(kind, ph.stage, epoch + 1, step, values)
                score = _selection_score(kind, ph.stage, metrics)
                logger.info(
                    '%s stage %d epoch %d/%d: loss %.4f val acc %.4f (score %.4f) %.1fs',
                    kind, ph.stage, epoch + 1, ph.epochs, values['train_loss'],
                    metrics['accuracy'], score, seconds,
                )  # fmt: skip
                if key not in state['best'] or score > state['best'][key]['score']:
                    state['best'][key] = {'score': score, 'epoch': epoch + 1, 'metrics': metrics}
                    save_checkpoint(out / f'{key}_best.pt', model, config, {'stage': ph.stage})
                state['epoch'] = epoch + 1
                if state['epoch'] == ph.epochs:
                    state['phase'], state['epoch'] = pi + 1, 0
                save_checkpoint(
                    out / 'last.pt', model, config, {'state': state}, optimizer=opt,
                    extra={'scheduler': sched_lr.state_dict(), 'generator': gen.get_state()},
                )  # fmt: skip
            state['phase'], state['epoch'] = pi + 1, 0
    finally:
        log.close()
    return _finish(out, config, state, frames=(len(train_set), len(val_set)))


def _finish(
    out: Path, config: TrainConfig, state: dict[str, Any], *, frames: tuple[int, int]
) -> dict[str, Any]:
    """``model.pt`` (the best of the last stage that ran) and ``summary.json``."""
    plan = phases(config)
    final_key = f'stage{[p for p in plan if p.epochs > 0][-1].stage}'
    if (out / f'{final_key}_best.pt').exists():
        shutil.copyfile(out / f'{final_key}_best.pt', out / 'model.pt')
    best = state['best'].get(final_key, {})
    summary = {
        'kind': config.model.kind,
        'train_frames': frames[0],
        'val_frames': frames[1],
        'train_seconds': round(state['seconds'], 1),
        'threads': config.schedule.threads,
        'schedule': [{'stage': p.stage, 'epochs': p.epochs, 'lr': p.lr} for p in plan],
        'best_epoch': best.get('epoch'),
        'val': {
            k: best.get('metrics', {}).get(k)
            for k in ('accuracy', 'per_family', 'synergy_indicator', 'gate_family_agreement')
        },
    }
    (out / 'summary.json').write_text(json.dumps(summary, indent=1), encoding='utf-8')
    return summary
