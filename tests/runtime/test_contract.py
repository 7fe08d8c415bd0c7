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

"""The ONNX model contract: what a model must take and give, and how a mismatch is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmil_ros.runtime.errors import ModelError
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.preprocess import PreprocessSpec
from tests.runtime.contract_models import build_model


def test_fixed_batch_sizes_that_disagree_are_refused() -> None:
    # ONNX Runtime's own shape inference refuses most such graphs; the contract check names
    # the file and the sizes for those it loads
    from types import SimpleNamespace

    from dmil_ros.runtime.contract import check_contract

    spec = PreprocessSpec()

    def arg(name: str, *shape: int | str) -> SimpleNamespace:
        return SimpleNamespace(name=name, type='tensor(float)', shape=list(shape))

    inputs = [arg('image', 1, *spec.image_shape), arg('lidar', 'B', *spec.lidar_shape)]
    assert check_contract('m.onnx', inputs, [arg('probs', 'B', 4)], {}).fixed_batch == 1
    with pytest.raises(ModelError, match=r"'m.onnx': fixed batch sizes disagree .*output 'probs'"):
        check_contract('m.onnx', inputs, [arg('probs', 2, 4)], {})


def test_foreign_model_with_only_probs(tmp_path: Path) -> None:
    path = build_model(
        tmp_path / 'foreign.onnx',
        outputs=('probs',),
        metadata={
            'dmil_ros.labels': None,
            'dmil_ros.components': None,
            'dmil_ros.preprocess': None,
            'dmil_ros.kind': None,
        },
    )
    model = FusionModel(path, provider='cpu')
    assert model.outputs == ('probs',)
    assert model.info.kind == 'foreign'
    assert model.pid_source() is None
    assert not model.has('gates')
    with pytest.raises(ModelError, match='pid_source'):
        model.pid_source('pid_lsmi')


@pytest.mark.parametrize(
    ('kwargs', 'text'),
    [
        ({'metadata': {'dmil_ros.labels': json.dumps(['a', 'b', 'c', 'd'])}}, 'labels'),
        ({'metadata': {'dmil_ros.components': json.dumps(['x'])}}, 'components'),
        ({'metadata': {'dmil_ros.labels': '5'}}, "'dmil_ros.labels' is 5, this package"),
        ({'metadata': {'dmil_ros.preprocess': '{"image_width": "64"}'}}, 'not an integer'),
        ({'metadata': {'dmil_ros.preprocess': '{"beams": 0}'}}, 'beams'),
        ({'input_shapes': {'image': ['B', 3, 32, 32]}}, "input 'image' has shape"),
        ({'input_shapes': {'lidar': ['B', 2, 32, 180]}}, "input 'lidar' has shape"),
        ({'outputs': ('gates',)}, 'no output named probs'),
        ({'probs_width': 3}, "output 'probs' has shape"),
        (
            {'spec': PreprocessSpec(beams=32), 'input_shapes': {'lidar': ['B', 2, 16, 180]}},
            "input 'lidar'",
        ),
    ],
)
def test_mismatched_model_refused(tmp_path: Path, kwargs: dict[str, object], text: str) -> None:
    path = build_model(tmp_path / 'mismatch.onnx', **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=text) as info:
        FusionModel(path, provider='cpu')
    assert 'mismatch.onnx' in str(info.value)
