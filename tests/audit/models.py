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

"""Tiny ONNX models for audit tests (built with onnx.helper, no training).

``foreign``: only ``probs`` (no metadata, no heads): logits = f @ W with
f = [a, b, a*b], a = mean(image), b = mean(lidar), so masking must make the unimodal conditionals.
``with_heads``: also ``probs_camera`` (from a), ``probs_lidar`` (from b), ``probs_joint``,
``gates``, ``feat_camera`` = [a, a^2], ``feat_lidar`` = [b, b^2].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dmil_ros.runtime.preprocess import PreprocessSpec

W = np.array([[3.0, -3.0, 0.0, 0.0], [0.0, 0.0, 3.0, -3.0], [4.0, 4.0, -4.0, -4.0]], np.float32)


def build(
    path: Path,
    heads: bool = False,
    scores: bool = False,
    nan_below: float | None = None,
    *,
    rename: dict[str, str] | None = None,
    extra_output: bool = False,
    input_dims: tuple[list[object], list[object]] | None = None,
) -> Path:
    """``scores``: ``probs`` holds the raw scores (no softmax); ``nan_below``: ``probs`` is NaN
    for frames whose image feature ``a`` (2 x mean of the image input) is below it.

    A model outside the contract's names: ``rename`` maps contract names (``image``, ``lidar``,
    ``probs``) to the graph's; ``extra_output`` adds an ``embedding`` (B, 3) output;
    ``input_dims`` declares the inputs' shapes (e.g. all symbolic).
    """
    spec = PreprocessSpec()
    dims_in = input_dims or (['B', *spec.image_shape], ['B', *spec.lidar_shape])
    inputs = [
        helper.make_tensor_value_info('image', TensorProto.FLOAT, dims_in[0]),
        helper.make_tensor_value_info('lidar', TensorProto.FLOAT, dims_in[1]),
    ]
    inits = [
        numpy_helper.from_array(W, 'W'),
        numpy_helper.from_array(np.array([2.0], np.float32), 'K'),
        numpy_helper.from_array(np.array([0.5], np.float32), 'OFF'),
        numpy_helper.from_array(np.array([[2.0, -2.0, 0.0, 0.0]], np.float32), 'WA'),
        numpy_helper.from_array(np.array([[0.0, 0.0, 2.0, -2.0]], np.float32), 'WB'),
    ]
    soft: dict[str, int] = {} if scores else {'axis': 1}
    nodes = [
        helper.make_node('ReduceMean', ['image'], ['a0'], axes=[1, 2, 3], keepdims=0),
        helper.make_node('ReduceMean', ['lidar'], ['b0'], axes=[1, 2, 3], keepdims=0),
        helper.make_node('Unsqueeze', ['a0', 'ax'], ['a1']),
        helper.make_node('Unsqueeze', ['b0', 'ax'], ['b1']),
        helper.make_node('Mul', ['a1', 'K'], ['a']),
        helper.make_node('Sub', ['b1', 'OFF'], ['b2']),
        helper.make_node('Mul', ['b2', 'K'], ['b']),
        helper.make_node('Mul', ['a', 'b'], ['ab']),
        helper.make_node('Concat', ['a', 'b', 'ab'], ['f'], axis=1),
        helper.make_node('MatMul', ['f', 'W'], ['logits']),
        helper.make_node('Identity' if scores else 'Softmax', ['logits'], ['p0'], **soft),
    ]
    if nan_below is None:
        nodes.append(helper.make_node('Identity', ['p0'], ['probs']))
    else:  # p0 + 0 * sqrt(a - nan_below): NaN where a < nan_below
        inits += [
            numpy_helper.from_array(np.array([nan_below], np.float32), 'NB'),
            numpy_helper.from_array(np.array([0.0], np.float32), 'ZERO'),
        ]
        nodes += [
            helper.make_node('Sub', ['a', 'NB'], ['d0']),
            helper.make_node('Sqrt', ['d0'], ['d1']),
            helper.make_node('Mul', ['d1', 'ZERO'], ['d2']),
            helper.make_node('Add', ['p0', 'd2'], ['probs']),
        ]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), 'ax'))
    outs = ['probs']
    if heads:
        nodes += [
            helper.make_node('MatMul', ['a', 'WA'], ['la']),
            helper.make_node('Softmax', ['la'], ['probs_camera'], axis=1),
            helper.make_node('MatMul', ['b', 'WB'], ['lb']),
            helper.make_node('Softmax', ['lb'], ['probs_lidar'], axis=1),
            helper.make_node('Identity', ['probs'], ['probs_joint']),
            helper.make_node('Softmax', ['logits'], ['gates'], axis=1),
            helper.make_node('Mul', ['a', 'a'], ['aa']),
            helper.make_node('Mul', ['b', 'b'], ['bb']),
            helper.make_node('Concat', ['a', 'aa'], ['feat_camera'], axis=1),
            helper.make_node('Concat', ['b', 'bb'], ['feat_lidar'], axis=1),
        ]
        outs += [
            'probs_camera',
            'probs_lidar',
            'probs_joint',
            'gates',
            'feat_camera',
            'feat_lidar',
        ]
    if extra_output:
        nodes.append(helper.make_node('Identity', ['f'], ['embedding']))
        outs.append('embedding')
    dims = {'feat_camera': 2, 'feat_lidar': 2, 'embedding': 3}
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ['B', dims.get(n, 4)]) for n in outs
    ]
    graph = helper.make_graph(nodes, 'audit_test', inputs, outputs, inits)
    for old, new in (rename or {}).items():  # every use of the tensor name, then the graph's
        for node in graph.node:
            node.input[:] = [new if n == old else n for n in node.input]
            node.output[:] = [new if n == old else n for n in node.output]
        for value in (*graph.input, *graph.output):
            if value.name == old:
                value.name = new
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
