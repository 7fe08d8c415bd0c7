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

"""Control flow fixed by weights and shapes leaves the graph; what depends on the data stays."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from dmil_ros.train.static_graph import main, make_static

ROOT = Path(__file__).resolve().parents[2]
F = TensorProto.FLOAT


def _const(name: str, value: object, dtype: object = np.float32) -> onnx.NodeProto:
    tensor = numpy_helper.from_array(np.asarray(value, dtype), name)
    return helper.make_node('Constant', [], [name], value=tensor, name=f'make_{name}')


def _branch(name: str, op: str, scale: float) -> onnx.GraphProto:
    """A branch computing ``op(x, scale)`` from the outer scope's x."""
    return helper.make_graph(
        [_const(f'{name}_k', scale), helper.make_node(op, ['x', f'{name}_k'], [f'{name}_y'])],
        name,
        [],
        [helper.make_tensor_value_info(f'{name}_y', F, ['B', 3])],
    )


def _if(name: str, cond: str, then: tuple[str, float], other: tuple[str, float]) -> onnx.NodeProto:
    return helper.make_node(
        'If',
        [cond],
        [name],
        name=name,
        then_branch=_branch(f'{name}_then', *then),
        else_branch=_branch(f'{name}_else', *other),
    )


def catalogue() -> onnx.ModelProto:
    """x (B, 3) and five outputs, one per kind of If:

    * ``weights``: 2 > 1 from constants -> x + 1 (folds);
    * ``width``: dim 1 of relu(x) == 3, a static size -> x * 2 (folds);
    * ``batch``: dim 0 of x == 1, the batch size -> stays;
    * ``data``: sum(x) > 0 -> stays;
    * ``noise``: x + a constant-shaped RandomNormal -> never folded.
    """
    nodes = [
        _const('two', 2.0),
        _const('one', 1.0),
        helper.make_node('Greater', ['two', 'one'], ['c_weights']),
        _if('weights', 'c_weights', ('Add', 1.0), ('Sub', 1.0)),
        helper.make_node('Relu', ['x'], ['r']),
        helper.make_node('Shape', ['r'], ['r_shape']),
        _const('i1', 1, np.int64),
        helper.make_node('Gather', ['r_shape', 'i1'], ['r_width']),
        _const('three', 3, np.int64),
        helper.make_node('Equal', ['r_width', 'three'], ['c_width']),
        _if('width', 'c_width', ('Mul', 2.0), ('Mul', 5.0)),
        helper.make_node('Shape', ['x'], ['x_shape']),
        _const('i0', 0, np.int64),
        helper.make_node('Gather', ['x_shape', 'i0'], ['x_batch']),
        _const('one_i', 1, np.int64),
        helper.make_node('Equal', ['x_batch', 'one_i'], ['c_batch']),
        _if('batch', 'c_batch', ('Mul', 3.0), ('Mul', 7.0)),
        helper.make_node('ReduceSum', ['x'], ['x_sum'], keepdims=0),
        _const('zero', 0.0),
        helper.make_node('Greater', ['x_sum', 'zero'], ['c_data']),
        _if('data', 'c_data', ('Add', 10.0), ('Sub', 10.0)),
        helper.make_node('RandomNormal', [], ['eps'], shape=[1, 3], seed=1.0),
        helper.make_node('Add', ['x', 'eps'], ['noise']),
    ]
    graph = helper.make_graph(
        nodes,
        'catalogue',
        [helper.make_tensor_value_info('x', F, ['B', 3])],
        [
            helper.make_tensor_value_info(n, F, ['B', 3])
            for n in ('weights', 'width', 'batch', 'data', 'noise')
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    entry = model.metadata_props.add()
    entry.key, entry.value = 'dmil_ros.kind', 'test'
    return model


def run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {'x': x}), strict=True))


def test_static_ifs_go_and_data_dependent_ones_stay() -> None:
    model = catalogue()
    static, report = make_static(model)
    ifs = sorted(n.name for n in static.graph.node if n.op_type == 'If')
    assert ifs == ['batch', 'data']  # the batch size and the data decide these
    assert sorted(report.kept) == ['batch', 'data']
    assert report.nodes_after < report.nodes_before
    assert 'RandomNormal' in {n.op_type for n in static.graph.node}
    assert [(p.key, p.value) for p in static.metadata_props] == [('dmil_ros.kind', 'test')]
    for batch in (1, 2, 5):
        for sign in (1.0, -1.0):
            x = sign * (np.arange(batch * 3, dtype=np.float32).reshape(batch, 3) + 1.0)
            got, ref = run(static, x), run(model, x)
            for name in ('weights', 'width', 'batch', 'data'):
                np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
            # the analytic values, independent of ONNX Runtime's reading of the original
            np.testing.assert_array_equal(got['weights'], x + 1.0)
            np.testing.assert_array_equal(got['width'], x * 2.0)
            np.testing.assert_array_equal(got['batch'], x * (3.0 if batch == 1 else 7.0))
            np.testing.assert_array_equal(got['data'], x + (10.0 if sign > 0 else -10.0))
            assert got['noise'].shape == (batch, 3)


def test_an_if_taking_its_else_branch_is_inlined_as_that_branch() -> None:
    model = catalogue()
    # 2 > 1 becomes 1 > 2: the weights' If now takes x - 1
    for node in model.graph.node:
        if node.op_type == 'Greater' and list(node.input) == ['two', 'one']:
            node.input[:] = ['one', 'two']
    static, _ = make_static(model)
    assert 'weights' not in {n.name for n in static.graph.node if n.op_type == 'If'}
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(run(static, x)['weights'], x - 1.0)


def test_the_shipped_models_hold_no_control_flow() -> None:
    # CUDA graphs refuse a model with any (runtime/model.py); made with this module (cards)
    for path in sorted((ROOT / 'models').glob('*.onnx')):
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert not ops & {'If', 'Loop', 'Scan'}, path.name


def test_cli_writes_the_static_model_and_names_a_bad_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, dst = tmp_path / 'in.onnx', tmp_path / 'out.onnx'
    onnx.save(catalogue(), str(src))
    assert main([str(src), str(dst)]) == 0
    assert sorted(n.name for n in onnx.load(str(dst)).graph.node if n.op_type == 'If') == [
        'batch',
        'data',
    ]
    (tmp_path / 'bad.onnx').write_bytes(b'not a model')
    with caplog.at_level(logging.ERROR):
        assert main([str(tmp_path / 'bad.onnx'), str(dst)]) == 2
    assert "bad.onnx': cannot load it" in caplog.text


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[str],
           initializers: list[onnx.TensorProto] | None = None) -> onnx.ModelProto:  # fmt: skip
    graph = helper.make_graph(
        nodes,
        'g',
        inputs,
        [helper.make_tensor_value_info(n, F, ['B', 3]) for n in outputs],
        initializers or [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


X = helper.make_tensor_value_info('x', F, ['B', 3])


def test_an_input_with_a_default_is_data_and_stays_an_input() -> None:
    # an initializer listed as a graph input is a default the caller may override
    flag = helper.make_tensor_value_info('flag', TensorProto.BOOL, [])
    w = helper.make_tensor_value_info('w', F, [3])
    model = _model(
        [_if('y', 'flag', ('Add', 1.0), ('Sub', 1.0)), helper.make_node('Relu', ['x'], ['z'])],
        [X, flag, w],
        ['y', 'z'],
        [
            numpy_helper.from_array(np.array(True), 'flag'),
            numpy_helper.from_array(np.ones(3, np.float32), 'w'),
        ],
    )
    static, report = make_static(model)
    assert report.kept == ('y',)
    assert [i.name for i in static.graph.input] == ['x', 'flag', 'w']
    assert {i.name for i in static.graph.initializer} >= {'flag', 'w'}  # defaults kept
    sess = ort.InferenceSession(static.SerializeToString(), providers=['CPUExecutionProvider'])
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(sess.run(['y'], {'x': x})[0], x + 1.0)
    np.testing.assert_array_equal(sess.run(['y'], {'x': x, 'flag': np.array(False)})[0], x - 1.0)


def test_a_random_op_inside_a_branch_is_never_frozen() -> None:
    noise = helper.make_graph(
        [helper.make_node('RandomNormal', [], ['eps'], shape=[1, 3], seed=3.0)],
        'noise',
        [],
        [helper.make_tensor_value_info('eps', F, [1, 3])],
    )
    zero = helper.make_graph([_const('nil', np.zeros((1, 3)))], 'zero', [],
                             [helper.make_tensor_value_info('nil', F, [1, 3])])  # fmt: skip
    nodes = [
        _const('yes', True, np.bool_),
        helper.make_node('If', ['yes'], ['e'], name='draw', then_branch=noise, else_branch=zero),
        helper.make_node('Add', ['x', 'e'], ['y']),
    ]
    static, report = make_static(_model(nodes, [X], ['y']))
    assert report.inlined == ('draw',)  # the branch is taken, its draw stays a draw
    assert 'RandomNormal' in {n.op_type for n in static.graph.node}
    assert 'e' not in {i.name for i in static.graph.initializer}


def test_nested_branches_and_repeated_branch_names_inline_cleanly() -> None:
    # two Ifs built from the same branches (same local names), the inner one reading a name
    # local to the outer branch: every name must be renamed, nested subgraphs included
    def outer(tag: str) -> onnx.GraphProto:
        inner = helper.make_graph(
            [helper.make_node('Mul', ['x', 'k'], ['m'])],
            'inner', [], [helper.make_tensor_value_info('m', F, ['B', 3])],
        )  # fmt: skip
        return helper.make_graph(
            [
                _const('k', 4.0),
                _const('inner_yes', True, np.bool_),
                helper.make_node('If', ['inner_yes'], ['r'], then_branch=inner,
                                 else_branch=_branch(f'{tag}_else', 'Add', 0.0)),
            ],
            'outer', [], [helper.make_tensor_value_info('r', F, ['B', 3])],
        )  # fmt: skip

    nodes = [
        _const('t', True, np.bool_),
        helper.make_node('If', ['t'], ['a'], name='first', then_branch=outer('a'),
                         else_branch=_branch('a_else2', 'Sub', 0.0)),
        helper.make_node('If', ['t'], ['b'], name='second', then_branch=outer('b'),
                         else_branch=_branch('b_else2', 'Sub', 0.0)),
    ]  # fmt: skip
    static, report = make_static(_model(nodes, [X], ['a', 'b']))
    assert report.kept == ()
    assert not {n.op_type for n in static.graph.node} & {'If'}
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = run(static, x)
    np.testing.assert_array_equal(got['a'], x * 4.0)
    np.testing.assert_array_equal(got['b'], x * 4.0)


def test_only_the_nodes_a_static_tensor_needs_are_evaluated() -> None:
    # Range with a data-made delta fails on the zero inputs the evaluation feeds; it is dynamic
    # and must not run there
    nodes = [
        helper.make_node('ReduceSum', ['x'], ['s'], keepdims=0),
        _const('nought', 0.0),
        helper.make_node('Mul', ['s', 'nought'], ['delta']),
        helper.make_node('Add', ['delta', 'nought'], ['delta1']),  # 0 on zeros: Range refuses
        helper.make_node('Range', ['nought', 's', 'delta1'], ['r']),
        helper.make_node('ReduceSum', ['r'], ['rs'], keepdims=0),
        _const('two', 2.0),
        _const('three', 3.0),
        helper.make_node('Mul', ['two', 'three'], ['six']),
        helper.make_node('Mul', ['x', 'six'], ['y']),
    ]
    model = _model(nodes, [X], ['y'])
    model.graph.output.append(helper.make_tensor_value_info('rs', F, []))
    static, _ = make_static(model)
    assert 'six' in {i.name for i in static.graph.initializer}
    assert 'Range' in {n.op_type for n in static.graph.node}


def test_a_model_onnx_cannot_infer_is_refused_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = helper.make_tensor_value_info('a', F, [2])
    b = helper.make_tensor_value_info('b', F, [3])
    graph = helper.make_graph([helper.make_node('Add', ['a', 'b'], ['c'])], 'g', [a, b],
                              [helper.make_tensor_value_info('c', F, [2])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / 'broken.onnx'))
    with caplog.at_level(logging.ERROR):
        assert main([str(tmp_path / 'broken.onnx'), str(tmp_path / 'out.onnx')]) == 2
    assert "static graph of model '" in caplog.text
    assert "broken.onnx'" in caplog.text
    assert not (tmp_path / 'out.onnx').exists()


def test_cli_names_an_output_it_cannot_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """OUT a directory, or under a file: one line naming it, exit 2 (an IsADirectoryError
    traceback naming a temporary file, exit 1; review 20b #18); a write that fails all the
    same names OUT, not the temporary."""
    from dmil_ros.train.errors import ExportError
    from dmil_ros.train.static_graph import make_static_file

    src = tmp_path / 'in.onnx'
    onnx.save(catalogue(), str(src))
    (tmp_path / 'file').write_text('')
    with caplog.at_level(logging.ERROR):
        assert main([str(src), str(tmp_path)]) == 2
        assert main([str(src), str(tmp_path / 'file' / 'out.onnx')]) == 2
    assert f"OUT '{tmp_path}' is a directory, not a file" in caplog.text
    assert f"OUT '{tmp_path / 'file' / 'out.onnx'}'" in caplog.text
    assert 'Traceback' not in caplog.text
    with pytest.raises(ExportError, match=re.escape(f"model '{tmp_path}': cannot write it")):
        make_static_file(src, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['file', 'in.onnx']
    assert main([str(src), str(tmp_path / 'new' / 'out.onnx')]) == 0  # folders made
