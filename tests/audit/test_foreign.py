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

"""Models outside the contract's names: the audit tells the inputs apart by shape and takes the
one (B, 4) output as the scores; the node keeps refusing them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from bagfactory import write_small_bag

from dmil_ros.audit.bagaudit import BagOptions
from dmil_ros.audit.runner import AuditOptions, run_audit
from dmil_ros.runtime.errors import ModelError
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.preprocess import PreprocessSpec
from models import build

RENAME = {'image': 'rgb', 'lidar': 'points', 'probs': 'action_logits'}


@pytest.fixture(scope='module')
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('bag') / 'small'
    write_small_bag(path, frames=40)
    return path


def _audit(bag: Path, model: Path, out: Path) -> tuple[dict, dict[str, np.ndarray]]:
    opts = AuditOptions(bag=BagOptions(model=str(model)), workers=1, report=False)
    summary = run_audit([bag], out, opts)
    table = pq.read_table(out / 'frames.parquet').to_pandas()
    return summary, {c: table[c].to_numpy() for c in table.columns}


def test_a_renamed_model_audits_like_the_contract_one(bag: Path, tmp_path: Path) -> None:
    # the same graph twice: contract names and probabilities, then other input names, raw
    # scores under another name and an output the audit has no use for
    plain = build(tmp_path / 'plain.onnx')
    other = build(tmp_path / 'other.onnx', scores=True, rename=RENAME, extra_output=True)
    ref_summary, ref = _audit(bag, plain, tmp_path / 'a')
    summary, got = _audit(bag, other, tmp_path / 'b')
    assert summary['frames'] == ref_summary['frames']
    assert summary['frames']['total'] == 40
    assert summary['model']['graph_names'] == RENAME
    assert summary['model']['ignored_outputs'] == ['embedding']
    assert summary['model']['softmax_applied'] == ['probs']
    assert ref_summary['model']['graph_names'] == {}
    assert list(got) == list(ref)
    for column, values in ref.items():
        if values.dtype.kind == 'f':
            # refitted estimators (LSMI's discriminators, GapScore on them) carry the 1e-7
            # rounding difference of the two softmaxes through training: 1e-3 there
            refit = column.startswith(('lsmi_', 'gap'))
            atol = 1e-3 if refit else 1e-6
            np.testing.assert_allclose(got[column], values, atol=atol, err_msg=column)
        else:
            assert (got[column] == values).all(), column
    saved = json.loads((tmp_path / 'b' / 'summary.json').read_text(encoding='utf-8'))
    assert saved['model']['graph_names'] == RENAME


def test_the_node_keeps_the_strict_contract(tmp_path: Path) -> None:
    other = build(tmp_path / 'other.onnx', rename=RENAME)
    with pytest.raises(ModelError, match=r"inputs are \['points', 'rgb'\]"):
        FusionModel(other, 'cpu')
    model = FusionModel(other, 'cpu', adapt=True)
    spec = PreprocessSpec()
    image = np.full((2, *spec.image_shape), 0.3, np.float32)
    lidar = np.full((2, *spec.lidar_shape), 0.7, np.float32)
    plain = FusionModel(build(tmp_path / 'plain.onnx'), 'cpu')
    np.testing.assert_array_equal(
        model.run(image, lidar)['probs'], plain.run(image, lidar)['probs']
    )


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        # all dims symbolic: either input could be the image
        (
            {'input_dims': (['B', 'C', 'H', 'W'], ['B', 'C', 'H', 'W'])},
            'match image .* both ways; name them image and lidar',
        ),
        ({'input_dims': (['B', 3, 5, 5], ['B', 4, 16, 180])}, 'neither way'),
        # two unknown (B, 4) outputs: which one are the scores?
        (
            {'extra_output': False, 'heads': True, 'rename': {'probs': 's', 'gates': 'g'}},
            'no output named probs',
        ),
    ],
)
def test_what_cannot_be_told_apart_is_refused_by_name(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    kwargs = {'rename': {'image': 'rgb', 'lidar': 'points'}, **kwargs}
    path = build(tmp_path / 'm.onnx', **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=match):
        FusionModel(path, 'cpu', adapt=True)


def test_a_model_of_other_sizes_without_metadata_is_audited_at_its_sizes(
    bag: Path, tmp_path: Path
) -> None:
    """No dmil_ros.preprocess metadata and a 96x128 image, an 8x90 range image: the default
    preprocessing at the sizes of its inputs (it was refused: 'the preprocessing spec makes
    (B, 3, 48, 64)')."""
    dims = (['B', 3, 96, 128], ['B', 2, 8, 90])
    path = build(tmp_path / 'hires.onnx', rename=RENAME, input_dims=dims)  # type: ignore[arg-type]
    model = FusionModel(path, 'cpu', adapt=True)
    assert model.spec.image_shape == (3, 96, 128)
    assert model.spec.lidar_shape == (2, 8, 90)
    assert model.spec.max_range == PreprocessSpec().max_range  # the rest: the defaults
    summary, got = _audit(bag, path, tmp_path / 'out')
    assert summary['frames']['total'] == 40
    assert np.isfinite(got['prob_forward']).all()
