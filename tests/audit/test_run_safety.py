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

"""What a rerun into the same ``--out`` keeps (review 22c: F4, F5, F7): no stale result of an
older model, no summary of an earlier run beside new tables, no finished result deleted before
the run is known to be possible."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pyarrow.parquet as pq
import pytest
from bagfactory import audit_cli, write_small_bag
from onnx import numpy_helper

from dmil_ros.cli import main
from models import build


@pytest.fixture(scope='module')
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('bags') / 'drive'
    write_small_bag(path, frames=20)
    return path


def _audit(model: Path, out: Path, *bags: Path, extra: tuple[str, ...] = ()) -> int:
    return audit_cli(model, out, *bags, extra=('--no-report', *extra))


def _external(source: Path, folder: Path, sign: float) -> Path:
    """``folder/m.onnx`` with every weight in ``m.onnx.data``, its ``W`` scaled by ``sign``."""
    model = onnx.load(str(source))
    for tensor in model.graph.initializer:
        if tensor.name == 'W':
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * sign, 'W'))
    folder.mkdir()
    onnx.save_model(
        model,
        str(folder / 'm.onnx'),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location='m.onnx.data',
        size_threshold=70,  # W only (48 bytes + 33 of sys.getsizeof): others stay inline
    )
    return folder / 'm.onnx'


def test_new_external_weights_are_not_served_from_the_old_results(
    bag: Path, tmp_path: Path
) -> None:
    source = build(tmp_path / 'heads.onnx', heads=True)
    model = _external(source, tmp_path / 'model', 1.0)
    flipped = _external(source, tmp_path / 'flipped', -1.0)
    assert model.read_bytes() == flipped.read_bytes()  # only the weights file differs
    out = tmp_path / 'out'
    assert _audit(model, out, bag) == 0
    before = pq.read_table(out / 'frames.parquet').column('action').to_pylist()
    (tmp_path / 'model' / 'm.onnx.data').write_bytes(
        (tmp_path / 'flipped' / 'm.onnx.data').read_bytes()
    )
    assert _audit(model, out, bag) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['bags'][0]['resumed'] is False
    after = pq.read_table(out / 'frames.parquet').column('action').to_pylist()
    fresh = tmp_path / 'fresh'
    assert _audit(model, fresh, bag) == 0
    assert after == pq.read_table(fresh / 'frames.parquet').column('action').to_pylist()
    assert after != before
    assert _audit(model, out, bag) == 0  # unchanged since: reused
    assert json.loads((out / 'summary.json').read_text())['bags'][0]['resumed'] is True
    assert np.array_equal(after, pq.read_table(out / 'frames.parquet').column('action'))


def test_a_failing_report_leaves_this_runs_summary_and_no_earlier_report(
    bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dmil_ros.audit import report

    model = build(tmp_path / 'heads.onnx', heads=True)
    other = tmp_path / 'other'
    write_small_bag(other, frames=12)
    out = tmp_path / 'out'
    assert _audit(model, out, bag, other) == 0
    (out / 'report.html').write_text('<html>the earlier run</html>')

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError('report stage failed')

    monkeypatch.setattr(report, 'write_report', broken)
    args = ['audit', str(bag), '--out', str(out), '--model', str(model), '--clusters', '2']
    with pytest.raises(RuntimeError, match='report stage failed'):
        main([*args, '--workers', '1'])
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames']['per_bag'] == {'drive': 20}  # this run's, as the tables
    assert set(pq.read_table(out / 'frames.parquet').column('bag').to_pylist()) == {'drive'}
    assert not (out / 'report.html').exists()


def test_a_spike_threshold_of_zero_bits_is_refused(
    bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At 0 bits every frame starts a spike, those without finite terms too (a spike whose
    peak was NaN, null in summary.json, crashed the report)."""
    model = build(tmp_path / 'foreign.onnx')
    extra = ('--spike-high', '0', '--spike-low', '0')
    assert _audit(model, tmp_path / 'out', bag, extra=extra) == 2
    assert 'spikes: high=0.0 must be above 0 bits' in capsys.readouterr().err


def test_a_missing_engine_is_refused_before_any_result_is_removed(
    bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, 'ray', None)  # not installed, wherever the tests run
    model = build(tmp_path / 'heads.onnx', heads=True)
    out = tmp_path / 'out'
    assert _audit(model, out, bag) == 0
    before = sorted(p.relative_to(out) for p in out.rglob('*'))
    # every bag resumed: nothing to run, so no ray needed
    assert _audit(model, out, bag, extra=('--engine', 'ray')) == 0
    assert json.loads((out / 'summary.json').read_text())['bags'][0]['resumed'] is True
    capsys.readouterr()
    assert _audit(model, out, bag, extra=('--engine', 'ray', '--no-resume')) == 2
    assert 'engine ray: the ray package is not installed' in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob('*')) == before
