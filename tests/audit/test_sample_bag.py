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

"""The sample bag (bags/hallway_demo) audited with the real model (models/dmil_hallway.onnx).

Checked against what the bag itself says, read independently here: one row per paired camera
frame, each row's label and family equal to the /sim/ground_truth message with the same stamp,
the unimodal conditionals taken from the model's heads (no masking), finite per-frame terms.
Skipped until both files exist.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dmil_ros.actions import ACTIONS, COMPONENTS
from dmil_ros.audit.bagaudit import BagOptions
from dmil_ros.audit.runner import AuditOptions, run_audit
from dmil_ros.bagio.reader import RobustReader

ROOT = Path(__file__).resolve().parents[2]
BAG = ROOT / 'bags' / 'hallway_demo'
MODEL = ROOT / 'models' / 'dmil_hallway.onnx'

pytestmark = pytest.mark.skipif(
    not (BAG.is_dir() and MODEL.is_file()), reason='sample bag or real model not present'
)


@pytest.fixture(scope='module')
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, dict]:
    import pyarrow.parquet as pq

    out = tmp_path_factory.mktemp('sample') / 'audit'
    summary = run_audit([BAG], out, AuditOptions(bag=BagOptions(model=str(MODEL)), report=False))
    return pq.read_table(out / 'frames.parquet'), summary


def _truth() -> dict[int, tuple[int, str]]:
    reader = RobustReader(BAG, topics=['/sim/ground_truth'])
    out = {}
    for _, msg in reader.decoded():
        out[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = (
            int(msg.action),
            str(msg.family),
        )
    return out


def test_rows_match_the_bags_ground_truth(audited: tuple[object, dict]) -> None:
    table, summary = audited
    truth = _truth()
    stamps = table.column('stamp').to_numpy()  # type: ignore[attr-defined]
    labels = table.column('label').to_pylist()  # type: ignore[attr-defined]
    families = table.column('family').to_pylist()  # type: ignore[attr-defined]
    cameras = sum(1 for _ in RobustReader(BAG, topics=['/camera/image_raw']))
    # every camera frame but the ones before the first LiDAR sweep is paired and audited
    assert cameras - 2 <= len(stamps) <= cameras
    assert len(set(stamps.tolist())) == len(stamps)
    for stamp, label, family in zip(stamps.tolist(), labels, families, strict=True):
        action, fam = truth[stamp]
        assert label == ACTIONS[action]
        assert family == fam
    assert summary['bags'][0]['status'] == 'ok'
    assert summary['bags'][0]['pipeline']['drops'] == {}


def test_real_model_heads_and_terms(audited: tuple[object, dict]) -> None:
    table, summary = audited
    assert summary['model']['unimodal'] == 'heads'  # no calibrated masking needed
    for group in ('lsmi_model', 'lsmi_data', 'broja_model', 'broja_data', 'node'):
        column = table.column  # type: ignore[attr-defined]
        terms = np.stack([column(f'{group}_{c}').to_numpy() for c in COMPONENTS], axis=1)
        assert np.isfinite(terms).all(), group
    # the node's alarm reads pid_broja, and so do the audit's spikes; the model level is
    # refitted on the predictions
    assert summary['model']['alert_source'] == 'pid_broja'
    assert summary['spikes_from'] == 'node (model output pid_broja)'
    assert summary['node_mean']['source'] == 'model output pid_broja'
    refit = 'broja_local refit on the audit frames'
    assert summary['broja_local_mean']['source']['model'] == refit
    for key in ('data_pid', 'model_pid'):
        atoms = summary[key]
        assert atoms is not None
        assert all(v >= -1e-9 for v in atoms.values())
        assert sum(atoms.values()) <= 2.0 + 1e-6  # at most H(Y) = log2(4 actions)


def test_data_pid_close_to_the_bags_ground_truth(audited: tuple[object, dict]) -> None:
    """The sample bag holds 127 frames: the cluster count must not fall below the 4 actions."""
    _, summary = audited
    truth = summary['ground_truth']['pid']  # exact PID of the bag's latent variables
    for c in COMPONENTS:
        assert abs(summary['data_pid'][c] - truth[c]) < 0.05, (c, summary['data_pid'], truth)
    assert summary['pid_estimator']['data']['n_clusters'] >= len(ACTIONS)
    assert summary['model']['kind'] == 'dmil'
