"""Regression tests for review 6 (split, resume, stages, config, cache, export, data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dmil_ros.train.config import DataConfig, TrainConfig
from dmil_ros.train.dataset import Arrays, time_block_split
from dmil_ros.train.errors import DataError, TrainConfigError, TrainError
from dmil_ros.train.trainer import train
from tests.train.toy import toy_arrays

torch.set_num_threads(1)

SMALL_MODEL = {'camera_channels': [2, 4, 4], 'lidar_channels': [2, 4, 4], 'feature_dim': 8,
               'latent_dim': 4, 'hidden': 8}  # fmt: skip


def small_config(kind: str, **schedule: int) -> TrainConfig:
    sched = {'stage1_epochs': 1, 'stage2_epochs': 1, 'stage3_epochs': 1, 'baseline_epochs': 2,
             'batch_size': 16, 'threads': 1, **schedule}  # fmt: skip
    return TrainConfig.from_dict({'model': {**SMALL_MODEL, 'kind': kind}, 'schedule': sched})


def _timed(seconds: float, n: int = 40, segment: int = 0) -> Arrays:
    a = toy_arrays(n, 0)
    stamp = np.round(np.linspace(0, seconds, n) * 1e9).astype(np.int64)
    return Arrays(**{**a.__dict__, 'stamp': stamp, 'segment': np.full(n, segment, np.int64)})


# 1. split of short recordings


def test_short_recording_gets_the_last_block_for_validation() -> None:
    a = _timed(29.9)  # blocks 0, 1, 2 at T = 10 s; the f = 0.2 stride first picks block 4
    tr, va = time_block_split(a, 0.2, 10.0)
    t = a.stamp * 1e-9
    assert len(va) and len(tr) and len(tr) + len(va) == len(a)
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
