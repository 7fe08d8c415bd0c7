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

"""Tiny ONNX models that follow the model contract, built with onnx.helper (no training).

Each output is an affine function of the per-channel input means ``f = [mean(image_c) for c in
0..2] + [mean(lidar_c) for c in 0..1]`` (``(B, 5)``), so tests know what to expect:

* ``probs = softmax(f @ W + b)``; ``gates = softmax(f @ Wg)``;
* ``pid_broja[:, 3]`` (the synergy term) = ``pid_scale`` (default 1) times the mean of the
  standardised red channel, the other three terms constants 0.1, 0.2, 0.3; ``pid_lsmi`` =
  ``pid_broja`` + 0.5 on every term.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dmil_ros.actions import ACTIONS, COMPONENTS
from dmil_ros.runtime.preprocess import PreprocessSpec

W = np.array(
    [
        [2.0, -1.0, 0.0, 0.5],
        [0.0, 1.0, -1.0, 0.0],
        [0.5, 0.0, 1.0, -1.0],
        [1, 2, 3, 4],
        [0, 0, 1, 0],
    ],
    np.float32,
)
B = np.array([0.1, 0.0, -0.1, 0.0], np.float32)
WG = np.eye(5, 4, dtype=np.float32)
WP = np.zeros((5, 4), np.float32)
WP[0, 3] = 1.0
BP = np.array([0.1, 0.2, 0.3, 0.0], np.float32)


def reference(
    image: np.ndarray, lidar: np.ndarray, pid_scale: float = 1.0
) -> dict[str, np.ndarray]:
    """What the model computes, in numpy."""
    f = np.concatenate([image.mean(axis=(2, 3)), lidar.mean(axis=(2, 3))], 1)  # (B, 5)

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    pid = f @ (WP * pid_scale) + BP
    return {
        'probs': softmax(f @ W + B),
        'gates': softmax(f @ WG),
        'pid_broja': pid,
        'pid_lsmi': pid + 0.5,
    }


def build_model(
    path: Path,
    outputs: tuple[str, ...] = ('probs', 'gates', 'pid_lsmi', 'pid_broja'),
    spec: PreprocessSpec | None = None,
    metadata: dict[str, str | None] | None = None,
    input_shapes: dict[str, list[int | str]] | None = None,
    probs_width: int = 4,
    pid_scale: float = 1.0,
) -> Path:
    spec = spec or PreprocessSpec()
    shapes = {'image': ['B', *spec.image_shape], 'lidar': ['B', *spec.lidar_shape]}
    shapes.update(input_shapes or {})
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()]
    inits = [
        numpy_helper.from_array(W[:, :probs_width] if probs_width != 4 else W, 'W'),
        numpy_helper.from_array(B[:probs_width], 'B'),
        numpy_helper.from_array(WG, 'WG'),
        numpy_helper.from_array(WP * np.float32(pid_scale), 'WP'),
        numpy_helper.from_array(BP, 'BP'),
        numpy_helper.from_array(np.full(4, 0.5, np.float32), 'HALF'),
    ]
    nodes = [
        helper.make_node('ReduceMean', ['image'], ['mi'], axes=[2, 3], keepdims=0),
        helper.make_node('ReduceMean', ['lidar'], ['ml'], axes=[2, 3], keepdims=0),
        helper.make_node('Concat', ['mi', 'ml'], ['f'], axis=1),
        helper.make_node('MatMul', ['f', 'W'], ['l0']),
        helper.make_node('Add', ['l0', 'B'], ['logits']),
        helper.make_node('Softmax', ['logits'], ['probs'], axis=1),
        helper.make_node('MatMul', ['f', 'WG'], ['g0']),
        helper.make_node('Softmax', ['g0'], ['gates'], axis=1),
        helper.make_node('MatMul', ['f', 'WP'], ['p0']),
        helper.make_node('Add', ['p0', 'BP'], ['pid_broja']),
        helper.make_node('Add', ['pid_broja', 'HALF'], ['pid_lsmi']),
    ]
    outs = [
        helper.make_tensor_value_info(
            n, TensorProto.FLOAT, ['B', probs_width if n == 'probs' else 4]
        )
        for n in outputs
    ]
    graph = helper.make_graph(nodes, 'contract_test', inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    meta = {
        'dmil_ros.labels': json.dumps(list(ACTIONS)),
        'dmil_ros.components': json.dumps(list(COMPONENTS)),
        'dmil_ros.preprocess': spec.to_json(),
        'dmil_ros.kind': 'dmil',
        'dmil_ros.version': '0.1.0',
    }
    if metadata is not None:
        meta = {k: v for k, v in {**meta, **metadata}.items() if v is not None}
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
