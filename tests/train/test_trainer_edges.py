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

"""Trainer edge cases: short recordings, resume state, zero-epoch stages (review 6)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dmil_ros.train import trainer
from dmil_ros.train.checkpoint import load_checkpoint
from dmil_ros.train.config import DataConfig, TrainConfig
from dmil_ros.train.dataset import Arrays, time_block_split
from dmil_ros.train.errors import DataError, TrainConfigError, TrainError
from dmil_ros.train.trainer import train
from tests.train.toy import small_config as toy_small_config
from tests.train.toy import small_model, toy_arrays

torch.set_num_threads(1)


def small_config(kind: str, **schedule: int) -> TrainConfig:
    return toy_small_config(kind, width=4, **{'batch_size': 16, **schedule})


def _timed(seconds: float, n: int = 40, segment: int = 0) -> Arrays:
    a = toy_arrays(n, 0)
    stamp = np.round(np.linspace(0, seconds, n) * 1e9).astype(np.int64)
    return Arrays(**{**a.__dict__, 'stamp': stamp, 'segment': np.full(n, segment, np.int64)})


# 1. split of short recordings


def test_short_recording_gets_the_last_block_for_validation() -> None:
    a = _timed(29.9)  # blocks 0, 1, 2 at T = 10 s; the f = 0.2 stride first picks block 4
    tr, va = time_block_split(a, 0.2, 10.0)
    t = a.stamp * 1e-9
    assert len(va)
    assert len(tr)
    assert len(tr) + len(va) == len(a)
    np.testing.assert_array_equal(va, np.flatnonzero(t >= 20.0))


def test_stride_split_unchanged_where_it_already_validates() -> None:
    a = _timed(99.0, n=200)  # blocks 0..9: the stride picks 4 and 9
    _, va = time_block_split(a, 0.2, 10.0)
    block = np.floor(a.stamp * 1e-9 / 10.0)
    np.testing.assert_array_equal(va, np.flatnonzero((block == 4) | (block == 9)))


def test_single_block_recording_is_refused_with_figures() -> None:
    with pytest.raises(DataError, match=r'5\.0 s.*block_seconds=10\.0.*val_fraction=0\.2'):
        time_block_split(_timed(5.0), 0.2, 10.0)


def test_val_fraction_must_be_strictly_between_0_and_1() -> None:
    with pytest.raises(TrainConfigError, match='val_fraction'):
        DataConfig(val_fraction=0.0)


def test_train_refuses_an_empty_validation_set(tmp_path: Path) -> None:
    a = toy_arrays(20, 0)
    with pytest.raises(TrainError, match='20 training / 0 validation'):
        train(small_config('joint'), a, a.subset(np.zeros(0, np.int64)), tmp_path, progress=False)


def test_train_refuses_a_single_training_frame_before_touching_the_run(tmp_path: Path) -> None:
    """A batch of one frame is skipped (BatchNorm), so one training frame would ship the random
    initialisation as a trained model (review 19b #5)."""
    a = toy_arrays(20, 0)
    (tmp_path / 'model.pt').write_bytes(b'earlier run')
    with pytest.raises(TrainError, match=r'1 training / 20 validation.*at least 2'):
        train(small_config('joint'), a.subset(np.arange(1)), a, tmp_path, progress=False)
    assert (tmp_path / 'model.pt').read_bytes() == b'earlier run'


def test_an_epoch_without_an_optimizer_step_is_an_error(tmp_path: Path) -> None:
    """batch_size 1 is refused by the config; should one reach the trainer all the same (here:
    validation bypassed), the epoch that took no step stops the run instead of a model.pt
    holding the initial weights with train_loss 0."""
    cfg = small_config('joint', batch_size=2)
    object.__setattr__(cfg.schedule, 'batch_size', 1)
    with pytest.raises(TrainError, match='joint stage 1 epoch 1 took no optimizer step'):
        train(cfg, toy_arrays(8, 0), toy_arrays(4, 1), tmp_path, progress=False)
    assert not (tmp_path / 'model.pt').exists()


# 2, 3. resume restores the LR scheduler and the shuffle / augmentation generator


class _StopError(Exception):
    pass


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((path / 'metrics.csv').open()))


@pytest.mark.parametrize(('kind', 'stop_after'), [('joint', 1), ('dmil', 3)])
def test_interrupted_then_resumed_run_matches_the_uninterrupted_one(
    kind: str, stop_after: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tr, va = toy_arrays(48, 0), toy_arrays(24, 1)
    cfg = TrainConfig.from_dict({
        'model': {**small_model(4), 'kind': kind},
        'schedule': {'stage1_epochs': 2, 'stage2_epochs': 2, 'stage3_epochs': 2,
                     'baseline_epochs': 3, 'batch_size': 16, 'threads': 1, 'lidar_roll': 2,
                     'brightness': 0.1},
    })  # fmt: skip
    train(cfg, tr, va, tmp_path / 'full', progress=False)
    saves = {'n': 0}
    original = trainer.save_checkpoint

    def stopping(path: Path, *args: Any, **kwargs: Any) -> None:
        original(path, *args, **kwargs)
        if path.name == 'last.pt':
            saves['n'] += 1
            if saves['n'] == stop_after:
                raise _StopError

    monkeypatch.setattr(trainer, 'save_checkpoint', stopping)
    with pytest.raises(_StopError):
        train(cfg, tr, va, tmp_path / 'cut', progress=False)
    monkeypatch.setattr(trainer, 'save_checkpoint', original)
    train(cfg, tr, va, tmp_path / 'cut', resume=True, progress=False)
    full, cut = _csv(tmp_path / 'full'), _csv(tmp_path / 'cut')
    assert [r['lr'] for r in cut] == [r['lr'] for r in full]
    np.testing.assert_allclose(
        [float(r['train_loss']) for r in cut], [float(r['train_loss']) for r in full], atol=1e-5
    )
    a = load_checkpoint(tmp_path / 'full' / 'model.pt')[0]['state_dict']
    b = load_checkpoint(tmp_path / 'cut' / 'model.pt')[0]['state_dict']
    for k in a:
        torch.testing.assert_close(b[k].float(), a[k].float(), atol=1e-5, rtol=1e-5)


# 4. 0-epoch stages, stale files, resume without last.pt


def test_zero_epoch_final_stage_ships_the_last_stage_that_ran(tmp_path: Path) -> None:
    tr, va = toy_arrays(32, 0), toy_arrays(16, 1)
    summary = train(small_config('dmil', stage3_epochs=0), tr, va, tmp_path, progress=False)
    a = load_checkpoint(tmp_path / 'model.pt')[0]['state_dict']
    b = load_checkpoint(tmp_path / 'stage2_best.pt')[0]['state_dict']
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert summary['val']['accuracy'] is not None
    assert summary['best_epoch'] == 1
    assert not (tmp_path / 'stage3_best.pt').exists()


def test_zero_epoch_middle_stage_starts_from_the_stage_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tr, va = toy_arrays(32, 0), toy_arrays(16, 1)
    # a stale stage2_best.pt of an older run must be neither loaded nor kept
    cfg = small_config('dmil', stage2_epochs=0)
    train(small_config('dmil'), tr, va, tmp_path, progress=False)
    loaded: list[str] = []
    original = trainer.load_checkpoint

    def spy(path: Path) -> Any:
        loaded.append(path.name)
        return original(path)

    monkeypatch.setattr(trainer, 'load_checkpoint', spy)
    train(cfg, tr, va, tmp_path, progress=False)
    assert loaded == ['stage1_best.pt']
    assert not (tmp_path / 'stage2_best.pt').exists()


def test_resume_without_last_pt_starts_afresh(tmp_path: Path) -> None:
    tr, va = toy_arrays(32, 0), toy_arrays(16, 1)
    cfg = small_config('joint')
    train(cfg, tr, va, tmp_path, progress=False)
    (tmp_path / 'last.pt').unlink()
    train(cfg, tr, va, tmp_path, resume=True, progress=False)
    assert len(_csv(tmp_path)) == 2  # rewritten, not appended


def test_all_zero_epoch_schedule_is_refused(tmp_path: Path) -> None:
    tr = toy_arrays(16, 0)
    with pytest.raises(TrainError, match='0 epochs'):
        train(small_config('joint', baseline_epochs=0), tr, tr, tmp_path, progress=False)


def test_fresh_run_drops_the_earlier_runs_tensorboard_events(tmp_path: Path) -> None:
    pytest.importorskip('torch.utils.tensorboard')
    tr, va = toy_arrays(32, 0), toy_arrays(16, 1)
    cfg = small_config('joint')
    train(cfg, tr, va, tmp_path, progress=False)
    first = set((tmp_path / 'tb').glob('events.out.tfevents.*'))
    assert first
    train(cfg, tr, va, tmp_path, progress=False)
    second = set((tmp_path / 'tb').glob('events.out.tfevents.*'))
    assert second
    assert not first & second  # one run's events only


def test_an_interrupt_mid_epoch_closes_the_tensorboard_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C raises KeyboardInterrupt wherever the loop is: the writer is closed all the same
    (left open, its thread at exit once aborted the process, exit 134; review 20b #5) and the
    last finished epoch's last.pt is kept for --resume."""
    pytest.importorskip('torch.utils.tensorboard')
    loggers: list[Any] = []
    make_logger = trainer._Logger.__init__

    def spy(self: Any, *args: Any) -> None:
        make_logger(self, *args)
        loggers.append(self)

    calls = {'n': 0}
    metrics = trainer._metrics

    def interrupted(*args: Any) -> Any:
        calls['n'] += 1
        if calls['n'] == 2:
            raise KeyboardInterrupt
        return metrics(*args)

    monkeypatch.setattr(trainer._Logger, '__init__', spy)
    monkeypatch.setattr(trainer, '_metrics', interrupted)
    cfg = small_config('joint', baseline_epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, toy_arrays(32, 0), toy_arrays(16, 1), tmp_path, progress=False)
    assert len(loggers) == 1
    assert loggers[0].tb.all_writers is None  # SummaryWriter.close() ran
    assert load_checkpoint(tmp_path / 'last.pt')[2]['state']['epoch'] == 1


# 5. a diverged loss stops the run (review 22a #2)


def test_a_non_finite_loss_stops_the_run_before_the_optimizer_steps_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run used to finish (exit 0) and ship model.pt with loss inf or NaN weights. The
    error names the epoch and the learning rate; last.pt keeps the last finite epoch."""
    calls = {'n': 0}
    joint_loss = trainer.joint_loss

    def diverging(out: Any, y: Any) -> Any:
        calls['n'] += 1
        loss, parts = joint_loss(out, y)
        return (loss * float('nan'), parts) if calls['n'] > 3 else (loss, parts)  # epoch 2

    monkeypatch.setattr(trainer, 'joint_loss', diverging)
    cfg = small_config('joint', baseline_epochs=3)  # 48 frames in batches of 16: 3 per epoch
    stepped = {'n': 0}
    step = torch.optim.Adam.step

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        stepped['n'] += 1
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, 'step', counting)
    with pytest.raises(TrainError, match=r'joint stage 1 epoch 2/3: loss nan is not finite') as e:
        train(cfg, toy_arrays(48, 0), toy_arrays(16, 1), tmp_path, progress=False)
    assert 'learning rate 0.0015, schedule.lr1' in str(e.value)  # lr1 0.002, annealed
    assert 'lower schedule.lr1' in str(e.value)
    assert stepped['n'] == 3  # epoch 1's steps only
    assert not (tmp_path / 'model.pt').exists()
    blob, _, meta = load_checkpoint(tmp_path / 'last.pt')
    assert meta['state']['epoch'] == 1
    assert all(
        torch.isfinite(v).all() for v in blob['state_dict'].values() if v.is_floating_point()
    )


def test_a_learning_rate_typo_is_refused_as_divergence(tmp_path: Path) -> None:
    """lr1 2e3 for 2e-3: the loss was inf in every epoch and the run reported success."""
    cfg = small_config('dmil', lr1=2e3)  # type: ignore[arg-type]
    with pytest.raises(TrainError, match=r'dmil stage 1 epoch 1/1: .*not finite.*lr1') as e:
        train(cfg, toy_arrays(48, 0), toy_arrays(16, 1), tmp_path, progress=False)
    assert 'learning rate 2000' in str(e.value)
    assert not (tmp_path / 'model.pt').exists()


# 6. an epoch logged once, however the run was stopped (review 22a #7)


@pytest.mark.parametrize('kind', ['joint', 'dmil'])
def test_an_epoch_stopped_while_its_checkpoints_were_saved_is_logged_once(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its metrics row and TensorBoard step were written before its checkpoints, so --resume
    ran it again and logged it twice; now the resumed run's log equals the uninterrupted one's
    (weights too)."""
    tr, va = toy_arrays(48, 0), toy_arrays(24, 1)
    cfg = small_config(kind, stage1_epochs=2, stage2_epochs=2, stage3_epochs=1, baseline_epochs=3)
    train(cfg, tr, va, tmp_path / 'full', progress=False)
    original = trainer.save_checkpoint
    saves = {'n': 0}

    def interrupted(path: Path, *args: Any, **kwargs: Any) -> None:
        if path.name == 'last.pt':
            saves['n'] += 1
            if saves['n'] == 2:  # Ctrl-C while the second epoch's last.pt is written
                raise KeyboardInterrupt
        original(path, *args, **kwargs)

    monkeypatch.setattr(trainer, 'save_checkpoint', interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tr, va, tmp_path / 'cut', progress=False)
    monkeypatch.setattr(trainer, 'save_checkpoint', original)
    train(cfg, tr, va, tmp_path / 'cut', resume=True, progress=False)
    full, cut = _csv(tmp_path / 'full'), _csv(tmp_path / 'cut')
    keys = ('stage', 'epoch', 'lr', 'train_loss', 'val_accuracy')
    assert [[r[k] for k in keys] for r in cut] == [[r[k] for k in keys] for r in full]
    a = load_checkpoint(tmp_path / 'full' / 'model.pt')[0]['state_dict']
    b = load_checkpoint(tmp_path / 'cut' / 'model.pt')[0]['state_dict']
    assert all(torch.equal(a[k], b[k]) for k in a)
    accumulator = pytest.importorskip('tensorboard.backend.event_processing.event_accumulator')
    events = accumulator.EventAccumulator(str(tmp_path / 'cut' / 'tb'))
    events.Reload()
    assert [e.step for e in events.Scalars('train/loss')] == list(range(1, len(full) + 1))
