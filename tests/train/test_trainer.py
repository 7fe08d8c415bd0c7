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

"""Trainer, checkpoints, config, split and metrics on small synthetic data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dmil_ros.actions import ACTION_INDEX
from dmil_ros.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from dmil_ros.train.config import DataConfig, TrainConfig
from dmil_ros.train.data import discretise_twist
from dmil_ros.train.dataset import Arrays, time_block_split
from dmil_ros.train.errors import CheckpointError, TrainConfigError
from dmil_ros.train.metrics import evaluate_predictions
from dmil_ros.train.trainer import train
from tests.train.toy import small_config as toy_small_config
from tests.train.toy import toy_arrays


def small_config(kind: str, **schedule: int) -> TrainConfig:
    return toy_small_config(kind, width=8, **{'batch_size': 64, **schedule})


@pytest.mark.parametrize('kind', ['dmil', 'joint', 'ensemble'])
def test_training_writes_run_files(kind: str, tmp_path: Path) -> None:
    tr, va = toy_arrays(96, 0), toy_arrays(64, 1)
    cfg = small_config(kind, stage1_epochs=3, baseline_epochs=4)
    train(cfg, tr, va, tmp_path, progress=False)
    for name in ('metrics.csv', 'model.pt', 'last.pt', 'summary.json'):
        assert (tmp_path / name).is_file()
    assert list((tmp_path / 'tb').iterdir())
    rows = list(csv.DictReader((tmp_path / 'metrics.csv').open()))
    assert len(rows) == (5 if kind == 'dmil' else 4)
    if kind == 'dmil':
        assert [r['stage'] for r in rows] == ['1', '1', '1', '2', '3']
    _, loaded_cfg, _ = load_model(tmp_path / 'model.pt')
    assert loaded_cfg == cfg


def test_dmil_learns_the_toy_task(tmp_path: Path) -> None:
    tr, va = toy_arrays(480, 0), toy_arrays(200, 1)
    cfg = small_config('dmil', stage1_epochs=6, stage2_epochs=4, stage3_epochs=2, batch_size=32)
    summary = train(cfg, tr, va, tmp_path, progress=False)
    # far above the 1/4 chance level (the toy's R and U_lidar families are easy)
    assert summary['val']['accuracy'] > 0.5


def test_checkpoint_round_trip_and_safety(tmp_path: Path) -> None:
    cfg = small_config('dmil')
    from dmil_ros.model import build_model

    model = build_model(cfg.model).eval()
    save_checkpoint(tmp_path / 'c.pt', model, cfg, {'stage': 1})
    loaded, loaded_cfg, meta = load_model(tmp_path / 'c.pt')
    assert loaded_cfg == cfg
    assert meta['stage'] == 1
    x, lid = torch.randn(3, 3, 48, 64), torch.rand(3, 2, 16, 180)
    torch.testing.assert_close(model(x, lid)['probs'], loaded(x, lid)['probs'])
    # a file that needs arbitrary unpickling is refused
    torch.save({'state_dict': {}, 'meta': '{}', 'evil': Path('/')}, tmp_path / 'bad.pt')
    with pytest.raises(CheckpointError, match=r'bad\.pt'):
        load_checkpoint(tmp_path / 'bad.pt')
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match=r'junk\.pt'):
        load_checkpoint(tmp_path / 'junk.pt')
    with pytest.raises(CheckpointError, match='no such file'):
        load_checkpoint(tmp_path / 'missing.pt')
    # a config it carries that no longer validates: named with the file (review 19b #8)
    blob = torch.load(tmp_path / 'c.pt', weights_only=True)
    meta = json.loads(blob['meta'])
    meta['config']['model']['kind'] = 'transformer'
    blob['meta'] = json.dumps(meta)
    torch.save(blob, tmp_path / 'old.pt')
    with pytest.raises(CheckpointError, match=r"old\.pt': the config it carries.*'transformer'"):
        load_checkpoint(tmp_path / 'old.pt')


def test_resume_finishes_the_schedule(tmp_path: Path) -> None:
    tr, va = toy_arrays(128, 0), toy_arrays(64, 1)
    cfg = small_config('dmil', stage1_epochs=2)
    train(cfg, tr, va, tmp_path, progress=False)
    blob, _, meta = load_checkpoint(tmp_path / 'last.pt')
    assert meta['state']['phase'] == 3
    # pretend the run stopped after stage 1: rewind the state and resume
    meta['state'].update(phase=1, epoch=0)
    blob['meta'] = json.dumps(meta)
    torch.save(blob, tmp_path / 'last.pt')
    rows_before = len(list(csv.reader((tmp_path / 'metrics.csv').open())))
    train(cfg, tr, va, tmp_path, resume=True, progress=False)
    rows = list(csv.DictReader((tmp_path / 'metrics.csv').open()))
    # stages 2 and 3 ran again, stage 1 did not; their rows replace the ones last.pt does not
    # hold (one row per epoch, review 22a #7)
    assert len(rows) + 1 == rows_before
    assert [r['stage'] for r in rows] == ['1', '1', '2', '3']
    with pytest.raises(Exception, match='different config'):
        train(small_config('dmil', stage1_epochs=3), tr, va, tmp_path, resume=True,
              progress=False)  # fmt: skip


def test_config_file_round_trip_and_errors(tmp_path: Path) -> None:
    cfg = small_config('joint')
    path = tmp_path / 'c.json'
    path.write_text(cfg.to_json())
    assert TrainConfig.load(path) == cfg
    path.write_text(json.dumps({'loss': {'alpha': 1, 'delta': 2}}))
    with pytest.raises(TrainConfigError, match='delta'):
        TrainConfig.load(path)
    path.write_text(json.dumps({'model': {'image_shape': [3, 32, 32]}}))
    with pytest.raises(TrainConfigError, match='preprocess'):
        TrainConfig.load(path)
    with pytest.raises(TrainConfigError, match='label_source'):
        DataConfig(label_source='joystick')
    repo_config = Path(__file__).parents[2] / 'config' / 'train_hallway.json'
    TrainConfig.load(repo_config)


def test_time_block_split_keeps_blocks_whole() -> None:
    n = 2000
    a = toy_arrays(n, 0)
    a = Arrays(**{**a.__dict__, 'segment': (np.arange(n) >= 1200).astype(np.int64)})
    tr, va = time_block_split(a, 0.2, 5.0)
    assert len(np.intersect1d(tr, va)) == 0
    assert len(tr) + len(va) == n
    assert 0.1 < len(va) / n < 0.3
    # every 5 s block (per recording) is wholly in one split
    block = np.floor(a.stamp * 1e-9 / 5.0).astype(int) * 10 + a.segment
    is_val = np.isin(np.arange(n), va)
    for b in np.unique(block):
        assert len(set(is_val[block == b])) == 1
    assert np.array_equal(time_block_split(a, 0.2, 5.0)[1], va)


def test_metrics_against_hand_counts() -> None:
    labels = np.array([0, 1, 2, 3, 1])
    family = np.array([0, 1, 2, 3, -1])
    eye = np.eye(4, dtype=np.float32)
    probs = eye[[0, 1, 0, 3, 1]]  # right, right, wrong, right, right
    cam = eye[[0, 2, 2, 0, 1]]  # right, wrong, right, wrong, right
    lid = eye[[1, 2, 2, 0, 0]]  # wrong, wrong, right, wrong, wrong
    gates = eye[[0, 1, 3, 3, 0]]
    m = evaluate_predictions(probs, labels, family, probs_camera=cam, probs_lidar=lid, gates=gates)
    assert m['accuracy'] == pytest.approx(4 / 5)
    assert m['per_family'] == {'R': 1.0, 'U_camera': 1.0, 'U_lidar': 0.0, 'S': 1.0}
    assert m['synergy_indicator'] == pytest.approx(2 / 5)  # frames 1 and 3
    assert m['gate_family_agreement'] == pytest.approx(3 / 4)  # family known on 4 frames
    assert np.array(m['confusion']).sum() == 5
    assert m['confusion'][2][0] == 1


def test_cmd_vel_discretisation() -> None:
    cfg = DataConfig(forward_speed=0.25, turn_rate=0.4)
    assert discretise_twist(0.5, 0.0, cfg) == ACTION_INDEX['forward']
    assert discretise_twist(0.2, 0.8, cfg) == ACTION_INDEX['left']
    assert discretise_twist(0.2, -0.8, cfg) == ACTION_INDEX['right']
    assert discretise_twist(0.0, 0.0, cfg) == ACTION_INDEX['stop']
    assert discretise_twist(0.1, 0.1, cfg) == ACTION_INDEX['stop']
