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

"""Take out of an exported ONNX graph the control flow that does not depend on the data.

torch's TorchScript exporter writes ``If`` nodes whose condition is fixed once the weights and
the per-sample shapes are: ``torch.diagonal`` of a weight checks that the diagonal is not empty,
``squeeze(1)`` of a ``(B, 1)`` tensor checks that dim 1 is 1. ONNX Runtime cannot fold them, so
every call runs their branches, and CUDA graphs refuse any model holding one ("the model has
control flow nodes"). Measured on an H100 with the shipped DMIL model (4 such nodes): CUDA
0.48 ms per batch-1 call with a captured graph against 2.06 ms without (``benchmarks/
bench_runtime.py --provider cuda``); on the CPU the change is within noise (0.232 against
0.237 ms p50, one thread).

Steps (:func:`make_static`), on the graph's top level:

1. Shape inference (``onnx.shape_inference``, strict) gives every tensor's shape. The shapes a
   model declares (inputs, outputs, ``value_info``) are trusted, as ONNX Runtime's optimiser
   trusts them: a model declaring a wrong static size is folded at that size.
2. A tensor is *dynamic* when it depends on a graph input (an initializer that is also an input
   included) through anything but static sizes: a ``Shape`` whose input's dims are all known,
   or a ``Gather`` of constant indices from a ``Shape`` that picks known dims only, is static.
   A node that is, or holds in a subgraph, a random op (``RandomNormal`` ..., ``Dropout``) is
   always dynamic; ops of other domains match none of these names.
3. Every static tensor a dynamic node (or a graph output) reads is evaluated once with ONNX
   Runtime on the CPU, on the part of the graph that computes it (inputs of batch 1 and zeros:
   no static value depends on them), and becomes an initializer; the nodes that made them go.
   An ``If`` whose condition is now a constant is replaced by the branch it takes, the branch's
   own names (in its nested subgraphs too) prefixed with the node's name, and the steps run
   again (a branch may hold more of them).
4. Nodes whose outputs nobody reads are dropped, and initializers nobody reads unless they back
   a graph input; ``onnx.checker`` checks the result.

An ``If`` whose condition depends on the data stays, and is reported. Metadata, opsets and the
graph's inputs and outputs are left as they are. External data is read in and written inline
(models under protobuf's 2 GB).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from onnx import helper, numpy_helper

from dmil_ros.atomic import atomic_write_bytes
from dmil_ros.errors import DmilError
from dmil_ros.paths import output_file
from dmil_ros.train.errors import ExportError

logger = logging.getLogger(__name__)

RANDOM_OPS: Final = frozenset(
    {'RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial',
     'Bernoulli', 'Dropout'}
)  # fmt: skip
CONTROL_FLOW: Final = frozenset({'If', 'Loop', 'Scan'})


@dataclass(frozen=True)
class StaticReport:
    """What :func:`make_static` did."""

    inlined: tuple[str, ...]  # If nodes replaced by the branch they take
    folded: tuple[str, ...]  # control-flow nodes computed whole into constants
    kept: tuple[str, ...]  # control-flow nodes that depend on the data
    nodes_before: int
    nodes_after: int


def make_static(
    model: onnx.ModelProto, *, name: str | None = None
) -> tuple[onnx.ModelProto, StaticReport]:
    """A copy of ``model`` without data-independent control flow (module docstring).

    Raises :class:`ExportError` naming ``name`` (default: the graph's name).
    """
    what = name or f'graph {model.graph.name!r}'
    out = onnx.ModelProto()
    out.CopyFrom(model)
    before = len(out.graph.node)
    flow = [n.name for n in out.graph.node if _op(n) in CONTROL_FLOW]
    inlined: list[str] = []
    try:
        while True:
            while _fold_static(out):
                pass
            ifs = [n for n in out.graph.node if _op(n) == 'If' and _is_constant(out, n.input[0])]
            if not ifs:
                break
            for node in ifs:
                _inline(out.graph, node, take=_constant_bool(out, node.input[0]))
                inlined.append(node.name)
        _prune(out.graph)
        onnx.checker.check_model(out, full_check=True)
    except (ExportError, onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        msg = f'static graph of {what}: {exc}'
        raise ExportError(msg) from exc
    kept = tuple(n.name for n in out.graph.node if _op(n) in CONTROL_FLOW)
    folded = tuple(n for n in flow if n not in kept and n not in inlined)
    report = StaticReport(tuple(inlined), folded, kept, before, len(out.graph.node))
    if kept:
        logger.warning('%s: control flow that depends on the data stays: %s', what, list(kept))
    return out, report


def _op(node: onnx.NodeProto) -> str:
    """The op type, qualified by its domain unless that is the default one."""
    return node.op_type if node.domain in ('', 'ai.onnx') else f'{node.domain}.{node.op_type}'


def _subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    return [g for a in node.attribute for g in (*([a.g] if a.HasField('g') else []), *a.graphs)]


def _reads(node: onnx.NodeProto) -> set[str]:
    """Every tensor ``node`` reads, those its subgraphs take from the outer scope included."""
    names = {x for x in node.input if x}
    for graph in _subgraphs(node):
        local = {o for n in graph.node for o in n.output}
        local |= {i.name for i in (*graph.initializer, *graph.input)}
        names |= {x for n in graph.node for x in _reads(n) if x not in local}
    return names


def _random(node: onnx.NodeProto) -> bool:
    """Whether ``node`` is, or holds in a subgraph, a random op."""
    return _op(node) in RANDOM_OPS or any(
        _random(n) for graph in _subgraphs(node) for n in graph.node
    )


def _dynamic(model: onnx.ModelProto) -> set[str]:
    """Step 2: the tensors that depend on the data (graph inputs, initializer-backed too)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {
        v.name: tuple(d.dim_value if d.HasField('dim_value') else None
                      for d in v.type.tensor_type.shape.dim)
        for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)
        if v.type.tensor_type.HasField('shape')
    }  # fmt: skip
    dynamic = {i.name for i in model.graph.input}
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    consts.update(
        (n.output[0], numpy_helper.to_array(n.attribute[0].t))
        for n in model.graph.node
        if _op(n) == 'Constant' and n.attribute and n.attribute[0].name == 'value'
    )
    consts = {k: v for k, v in consts.items() if k not in dynamic}
    shape_of: dict[str, tuple[int | None, ...]] = {}  # Shape output -> its input's dims
    for node in model.graph.node:
        op = _op(node)
        if op == 'Constant':
            continue
        if op == 'Shape' and not node.attribute:  # start / end: left to the general rule
            dims = shapes.get(node.input[0])
            if dims is not None:
                if None not in dims:
                    continue  # every dim known: a constant
                shape_of[node.output[0]] = dims
        if op == 'Gather' and node.input[0] in shape_of and node.input[1] in consts:
            dims = shape_of[node.input[0]]
            picked = np.asarray(consts[node.input[1]]).reshape(-1)
            if all(-len(dims) <= i < len(dims) and dims[int(i)] is not None for i in picked):
                continue  # picks known dims only (a Shape output is 1-D: axis 0)
        if _random(node) or _reads(node) & dynamic:
            dynamic.update(node.output)
    return dynamic


def _is_constant(model: onnx.ModelProto, name: str) -> bool:
    """An initializer that no caller can override (not also a graph input)."""
    inputs = {i.name for i in model.graph.input}
    return name not in inputs and any(i.name == name for i in model.graph.initializer)


def _constant_bool(model: onnx.ModelProto, name: str) -> bool:
    init = next(i for i in model.graph.initializer if i.name == name)
    return bool(numpy_helper.to_array(init).reshape(-1)[0])


def _fold_static(model: onnx.ModelProto) -> bool:
    """Step 3's folding: static tensors read by dynamic nodes become initializers (False:
    nothing to fold)."""
    graph = model.graph
    dynamic = _dynamic(model)
    made = {o for n in graph.node if not set(n.output) & dynamic for o in n.output}
    needed = [x for n in graph.node if set(n.output) & dynamic for x in sorted(_reads(n) & made)]
    needed += [o.name for o in graph.output if o.name in made]
    needed = list(dict.fromkeys(needed))
    if not needed:
        return False
    values = _evaluate(model, needed)
    static_nodes = [n for n in graph.node if not set(n.output) & dynamic]
    for node in static_nodes:
        graph.node.remove(node)
    graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in values.items())
    return True


def _evaluate(model: onnx.ModelProto, names: list[str]) -> dict[str, np.ndarray[Any, Any]]:
    """``names`` computed by ONNX Runtime (CPU) on the nodes they need, batch-1 zero inputs."""
    import onnxruntime as ort

    # 1. the nodes ``names`` need, nothing else (a dynamic node could fail on zeros)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    want, kept = set(names), []
    for node in reversed(probe.graph.node):
        if set(node.output) & want:
            kept.append(node)
            want |= _reads(node)
    del probe.graph.node[:]
    probe.graph.node.extend(reversed(kept))
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names)
    # 2. zeros for every input, unknown dims 1
    feeds = {}
    for arg in probe.graph.input:
        kind = arg.type.tensor_type
        dims = [d.dim_value if d.HasField('dim_value') else 1 for d in kind.shape.dim]
        feeds[arg.name] = np.zeros(dims, helper.tensor_dtype_to_np_dtype(kind.elem_type))
    # 3. run, unoptimised
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            probe.SerializeToString(), options, providers=['CPUExecutionProvider']
        )
        feeds = {a.name: feeds[a.name] for a in session.get_inputs()}
        values = session.run(names, feeds)
    except Exception as exc:  # ORT raises its own untyped errors
        msg = f'ONNX Runtime could not evaluate the static tensors {names[:5]} ({exc})'
        raise ExportError(msg) from exc
    return dict(zip(names, values, strict=True))


def _rename(graph: onnx.GraphProto, rename: dict[str, str]) -> None:
    """Rename tensors in place, in ``graph`` and its nested subgraphs."""
    for node in graph.node:
        node.input[:] = [rename.get(x, x) for x in node.input]
        node.output[:] = [rename.get(x, x) for x in node.output]
        for inner in _subgraphs(node):
            _rename(inner, rename)
    for value in graph.output:
        value.name = rename.get(value.name, value.name)


def _inline(graph: onnx.GraphProto, node: onnx.NodeProto, *, take: bool) -> None:
    """Replace ``If`` ``node`` by its then (``take``) or else branch, in place."""
    name = 'then_branch' if take else 'else_branch'
    branch = onnx.GraphProto()
    branch.CopyFrom(next(a.g for a in node.attribute if a.name == name))
    if branch.sparse_initializer:
        msg = f'If {node.name!r}: a branch with sparse initializers is not supported'
        raise ExportError(msg)
    prefix = f'{node.name or node.output[0]}/{name}/'
    local = {o for n in branch.node for o in n.output} | {i.name for i in branch.initializer}
    _rename(branch, {x: prefix + x for x in local})
    for k, inner in enumerate(branch.node):
        inner.name = prefix + (inner.name or f'{inner.op_type}_{k}')
    for init in branch.initializer:
        init.name = prefix + init.name
    graph.initializer.extend(branch.initializer)
    nodes = list(branch.node)
    for k, (inner_out, outer_out) in enumerate(zip(branch.output, node.output, strict=True)):
        nodes.append(
            helper.make_node('Identity', [inner_out.name], [outer_out], name=f'{prefix}out_{k}')
        )
    position = list(graph.node).index(node)
    kept = list(graph.node)
    kept[position : position + 1] = nodes
    del graph.node[:]
    graph.node.extend(kept)


def _prune(graph: onnx.GraphProto) -> None:
    """Step 4: drop nodes, and initializers not backing an input, that nothing reads."""
    while True:
        read = {o.name for o in graph.output}
        for node in graph.node:
            read |= _reads(node)
        kept = [n for n in graph.node if set(n.output) & read]
        if len(kept) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(kept)
    read |= {i.name for i in graph.input}
    unused = [i for i in graph.initializer if i.name not in read]
    for init in unused:
        graph.initializer.remove(init)


def make_static_file(src: Path, dst: Path) -> StaticReport:
    """:func:`make_static` from file ``src`` to file ``dst`` (may be ``src``; written whole or
    not at all)."""
    try:
        model = onnx.load(str(src))
    except (OSError, DecodeError) as exc:
        msg = f'model {str(src)!r}: cannot load it ({exc})'
        raise ExportError(msg) from exc
    static, report = make_static(model, name=f'model {str(src)!r}')
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(dst, static.SerializeToString())
    except OSError as exc:  # the export's own error type, naming dst
        msg = f'model {str(dst)!r}: cannot write it ({type(exc).__name__}: {exc.strerror or exc})'
        raise ExportError(msg) from exc
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m dmil_ros.train.static_graph IN.onnx OUT.onnx`` (OUT may be IN)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', type=Path, help='ONNX model to read')
    parser.add_argument('out', type=Path, help='ONNX model to write (may be the input)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        output_file(args.out, 'OUT')  # before the work: a directory, an unwritable folder
        report = make_static_file(args.model, args.out)
    except DmilError as exc:
        logger.error('%s', exc)
        return 2
    logger.info(
        '%s: %d -> %d nodes; If inlined: %s; folded whole: %s; control flow left: %s',
        args.out, report.nodes_before, report.nodes_after, list(report.inlined),
        list(report.folded), list(report.kept),
    )  # fmt: skip
    return 0


if __name__ == '__main__':
    sys.exit(main())
