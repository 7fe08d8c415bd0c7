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


"""Models whose action scores are not probabilities: raw scores get a softmax (any model
returning action scores can be audited), non-finite scores give no action and are counted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from bagfactory import write_small_bag

from dmil_ros.audit.bagaudit import BagOptions, audit_bag
from dmil_ros.audit.model import is_distribution, softmax
from dmil_ros.cli import main
from models import build


@pytest.fixture(scope='module')
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('bag') / 'small'
    write_small_bag(path, frames=40)
    return path


def test_softmax_and_the_distribution_check() -> None:
    logits = np.array([[2.0, -1.0, 0.5, 0.0], [np.nan, 0.0, 0.0, 0.0]], np.float32)
    probs = softmax(logits)
    e = np.exp(logits[0].astype(np.float64))
    np.testing.assert_allclose(probs[0], e / e.sum(), rtol=1e-6)
    assert np.isnan(probs[1]).all()  # a non-finite row stays non-finite
    assert is_distribution(probs)  # its finite rows are
    assert not is_distribution(logits)
    assert not is_distribution(np.array([[0.5, 0.5, 0.5, 0.0]], np.float32))  # sums to 1.5


def test_raw_scores_are_audited_as_their_softmax(bag: Path, tmp_path: Path) -> None:
    # the same model with its softmax inside the graph and without it (independent reference)
    opts = {'heads': True}
    inside = audit_bag(bag, 'b', BagOptions(model=str(build(tmp_path / 'p.onnx', **opts))))
    raw = audit_bag(
        bag, 'b', BagOptions(model=str(build(tmp_path / 's.onnx', scores=True, **opts)))
    )
    assert raw.frames == inside.frames > 0
    np.testing.assert_allclose(raw.arrays['probs'], inside.arrays['probs'], atol=1e-6)
    np.testing.assert_allclose(raw.arrays['p_joint'], inside.arrays['p_joint'], atol=1e-6)
    assert raw.info['softmax_applied'] == ['probs', 'probs_joint']
    assert 'softmax_applied' not in inside.info
    assert raw.info['status'] == inside.info['status'] == 'ok'


def test_frames_with_non_finite_scores_have_no_action(bag: Path, tmp_path: Path) -> None:
    model = build(tmp_path / 'nan.onnx', heads=True, nan_below=0.0)
    out = tmp_path / 'out'
    args = ['audit', str(bag), '--out', str(out), '--model', str(model), '--clusters', '2']
    assert main([*args, '--workers', '1', '--no-report']) == 0
    summary = json.loads((out / 'summary.json').read_text())
    table = pq.read_table(out / 'frames.parquet').to_pydict()
    bad = [i for i, p in enumerate(table['prob_forward']) if p is None or not np.isfinite(p)]
    assert 0 < len(bad) < len(table['action'])
    assert all(table['action'][i] == '' for i in bad)
    assert all(a != '' for i, a in enumerate(table['action']) if i not in bad)
    per_action = sum(v['frames'] for v in summary['per_action'].values())
    assert per_action == len(table['action']) - len(bad)
    (entry,) = summary['bags']
    assert entry['status'] == 'partial'
    assert any(
        f'non-finite action scores for {len(bad)} frames' in e['message'] for e in entry['errors']
    )
