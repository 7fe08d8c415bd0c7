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

"""The ONNX model behind the node: load, check against the model contract, run.

Contract (docs: notes/contracts.md, "ONNX model contract"): inputs ``image`` float32
``(B, 3, H, W)`` and ``lidar`` float32 ``(B, 2, beams, bins)`` as
:mod:`dmil_ros.runtime.preprocess` makes them; output ``probs`` ``(B, 4)`` always, and optionally
``gates`` ``(B, 4)``, ``sub_probs`` ``(B, 4, 4)``, ``probs_camera`` / ``probs_lidar`` /
``probs_joint`` ``(B, 4)``, ``pid_lsmi`` / ``pid_broja`` ``(B, 4)`` (r, u_camera, u_lidar, s in
bits), ``feat_camera`` / ``feat_lidar`` ``(B, D)``. Metadata ``dmil_ros.labels`` /
``dmil_ros.components`` (JSON lists that must equal ACTIONS / COMPONENTS when present),
``dmil_ros.preprocess`` (the PreprocessSpec the model was trained with; defaults are assumed for a
foreign model without it, provided the input shapes agree), ``dmil_ros.kind``,
``dmil_ros.version``. Outputs a model lacks are reported as unavailable, never invented. A model
exported with a fixed batch size instead of a batch axis (``torch.onnx.export`` without dynamic
axes) is run in chunks of that size, the last one padded.

Providers: ``auto`` takes CUDA when the installed ONNX Runtime offers it and a session can be
created on it, else CPU; ``cpu``, ``cuda`` and ``tensorrt`` (TensorRT, then CUDA, then CPU for the
nodes TensorRT cannot take) force one. The provider actually in use is
:attr:`FusionModel.provider`. On CUDA the inputs and outputs go through an I/O binding (one copy
in, one out, no per-call allocation of output buffers by the session).

Fixed shapes on a GPU: ONNX Runtime's CUDA convolutions plan anew (cuDNN algorithm search, memory
workspace) whenever a call's input shape differs from the previous call's, even for a shape seen
before. Measured on an H100 with the shipped model: 64-160 ms per change (cuDNN's exhaustive
search, ORT's default), 20-30 ms with its heuristic search, against 2-4 ms for a steady call; the
first call of a session 0.1-0.8 s. The node's calls alternate between 1 and 2 frames (a sweep
completes one or two camera frames) and the replay's between batch sizes, so on a GPU every call
is padded (repeating its last row; rows do not interact) to a power of two that only grows: a
session changes shape at most log2(largest batch) + 1 times, and :meth:`FusionModel.warm_up`
pays the first of them at start-up (``benchmarks/bench_runtime.py --provider cuda`` prints the
cost of a change and of a padded call). On the CPU a new shape costs nothing measurable, so CPU
calls run unpadded.

CUDA graphs: a small model's CUDA call is bound by launching its ~130 kernels one by one, not by
computing them (H100, shipped DMIL model, batch 1: 2.0 ms per call; that machine's CPU takes
0.2-0.35 ms). On CUDA the session therefore captures each padded shape's kernels once in a CUDA
graph (ONNX Runtime's ``enable_cuda_graph``, one graph per batch size through the run option
``gpu_graph_id``) and replays it: 0.44-0.48 ms, copies in and out included. A graph reads and
writes fixed device buffers, so each call copies its inputs into that shape's buffers and its
outputs out of them (device memory: ONNX Runtime 1.31 refused ``cuda_pinned`` buffers, "Unsupported
device type"). ONNX Runtime refuses graphs for a model holding control flow (``If``, ``Loop``,
``Scan``) or compute nodes it places on the CPU; such a model runs without graphs, as does a
session whose graph run fails at any size (the session is rebuilt without them, and the call
retried), and :attr:`FusionModel.cuda_graph_off` says why. The shipped models hold no control flow
(:mod:`dmil_ros.train.static_graph` takes it out at export). ONNX Runtime keeps captured graphs
per calling thread, so a thread that runs the model for the first time captures its own (the
node's inference callbacks may run on any of its executor's threads: a capture per thread and
batch size on the first frames, 9 ms each on the H100 against 0.45 ms for a replay). The
session is not thread-safe: one caller at a time, as the pipeline is.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from dmil_ros.actions import ACTIONS, COMPONENTS
from dmil_ros.errors import ConfigError
from dmil_ros.runtime.errors import ModelError, RuntimeConfigError
from dmil_ros.runtime.onnx_external import WireError, outside_locations
from dmil_ros.runtime.preprocess import PreprocessSpec

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

PROVIDERS: Final = ('auto', 'cpu', 'cuda', 'tensorrt')
PID_SOURCES: Final = ('auto', 'pid_broja', 'pid_lsmi')
_ORT_NAMES: Final = {
    'cpu': ['CPUExecutionProvider'],
    'cuda': ['CUDAExecutionProvider', 'CPUExecutionProvider'],
    'tensorrt': ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider'],
}
# CUDA in full float32: ORT's default lets cuBLAS / cuDNN use TF32 (10-bit mantissa) products,
# and the sample-level PID heads subtract log densities of similar size, so TF32 moved pid_lsmi by
# up to 0.11 bits against the CPU on the sample bag (batch 32, H100), at no measurable speed gain
# for a model this small (benchmarks/bench_runtime.py --provider cuda prints the differences).
_PROVIDER_OPTIONS: Final[dict[str, dict[str, str]]] = {'CUDAExecutionProvider': {'use_tf32': '0'}}
_GRAPH_DEVICE: Final = 'cuda'  # where a CUDA graph's input and output buffers live
_SHORT: Final = {
    'CPUExecutionProvider': 'cpu',
    'CUDAExecutionProvider': 'cuda',
    'TensorrtExecutionProvider': 'tensorrt',
}
N = len(ACTIONS)
# output name -> expected shape after the batch axis (None = any size)
KNOWN_OUTPUTS: Final[dict[str, tuple[int | None, ...]]] = {
    'probs': (N,),
    'gates': (len(COMPONENTS),),
    'sub_probs': (len(COMPONENTS), N),
    'probs_camera': (N,),
    'probs_lidar': (N,),
    'probs_joint': (N,),
    'pid_lsmi': (4,),
    'pid_broja': (4,),
    'feat_camera': (None,),
    'feat_lidar': (None,),
}
RUNTIME_OUTPUTS: Final = ('probs', 'gates', 'pid_lsmi', 'pid_broja')
"""Outputs the node needs per frame (features and heads are for audits)."""
NO_EVIDENCE_BITS: Final = 30.0  # -FLOOR / 2 of dmil_ros.pid.broja_local (that import loads scipy)
"""A ``pid_broja`` row with a term this large (half the table's 60-bit log floor) looked up a
floored table entry: the fitting frames never showed the predicted action with the frame's camera
cluster, its LiDAR cluster or the pair. Such a row's terms are floors (r or a unique term near
∓60 bits, or s near -60), not estimates; the node publishes NaN for it and the audit leaves it out
of its means. Entries the frames did show stay far below: on 1,000 held-out simulator frames the
shipped model's rows peak at 2.9 bits, its 5 floored rows (two-scene pairs) at 57-60 bits."""


def no_evidence(pid_broja: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """``(B,)`` True for the ``pid_broja`` rows ``(B, 4)`` with a term of at least
    :data:`NO_EVIDENCE_BITS` (NaN rows are not floored: False)."""
    rows = np.abs(np.asarray(pid_broja))  # (B, 4)
    return np.asarray(rows.max(axis=1, initial=0.0) >= NO_EVIDENCE_BITS)


@dataclass(frozen=True)
class ModelInfo:
    """What a checked model offers."""

    path: str
    spec: PreprocessSpec
    outputs: tuple[str, ...]
    kind: str
    version: str
    metadata: dict[str, str]
    fixed_batch: int | None = None  # the batch size a model exported without a batch axis takes
    graph_names: dict[str, str] = field(default_factory=dict)  # contract name -> graph name
    ignored_outputs: tuple[str, ...] = ()  # graph outputs outside the contract (adapted only)

    def graph_name(self, name: str) -> str:
        """The graph's name for contract input or output ``name``."""
        return self.graph_names.get(name, name)


def _onnxruntime() -> Any:
    try:
        import onnxruntime as ort  # heavy: imported when a model is loaded
    except ImportError as exc:  # a robot set up with rosdep alone: no pip key chosen for it
        msg = (
            f'ONNX Runtime is not installed ({exc}): pip install onnxruntime-gpu (CUDA) or '
            'onnxruntime (CPU only)'
        )
        raise ModelError(msg) from exc

    ort.set_default_logger_severity(3)  # the GPU build's CPU-fallback warnings
    return ort


def _dims(shape: Any) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) else None for d in shape)


def _check_list(path: str, meta: dict[str, str], key: str, want: tuple[str, ...]) -> None:
    if key not in meta:
        return
    try:
        got = json.loads(meta[key])
    except json.JSONDecodeError as exc:
        msg = f'model {path!r}: metadata {key!r} is not JSON ({exc})'
        raise ModelError(msg) from exc
    if not isinstance(got, list) or got != list(want):
        msg = f'model {path!r}: metadata {key!r} is {got!r}, this package expects {list(want)}'
        raise ModelError(msg)


def check_contract(
    path: str, inputs: Any, outputs: Any, meta: dict[str, str], *, adapt: bool = False
) -> ModelInfo:
    """Validate a session's inputs, outputs and metadata; return what the model offers.

    ``inputs`` / ``outputs`` are ONNX Runtime ``NodeArg`` lists (``.name``, ``.type``,
    ``.shape``). Raises :class:`ModelError` naming the file and the mismatch.

    ``adapt`` (the audit: any model taking the image and the points and returning action
    scores): inputs named otherwise are told apart by their per-sample shapes, an output of
    shape (B, 4) stands for ``probs`` when the model has no ``probs`` and no other unknown
    output of that shape, and outputs outside the contract are ignored (``ignored_outputs``).
    The node keeps the strict contract: a model it cannot read fully is refused.
    """
    # 1. the preprocessing the model was trained with
    if 'dmil_ros.preprocess' in meta:
        try:
            spec = PreprocessSpec.from_json(meta['dmil_ros.preprocess'])
        except ConfigError as exc:
            msg = f'model {path!r}: metadata dmil_ros.preprocess: {exc}'
            raise ModelError(msg) from exc
    else:
        spec = _spec_from_inputs(path, inputs)
    _check_list(path, meta, 'dmil_ros.labels', ACTIONS)
    _check_list(path, meta, 'dmil_ros.components', COMPONENTS)
    # 2. inputs: names (or, adapted, shapes), element type, per-sample shape
    expect = {'image': spec.image_shape, 'lidar': spec.lidar_shape}
    by_name = {i.name: i for i in inputs}
    names_in = {name: name for name in expect}
    if set(by_name) != set(expect):
        if not adapt:
            msg = (
                f'model {path!r}: inputs are {sorted(by_name)}, the contract needs image and lidar'
            )
            raise ModelError(msg)
        names_in = _inputs_by_shape(path, list(inputs), expect)
    for name, want in expect.items():
        arg = by_name[names_in[name]]
        if arg.type != 'tensor(float)':
            msg = f'model {path!r}: input {arg.name!r} is {arg.type}, expected tensor(float)'
            raise ModelError(msg)
        if not _fits(arg.shape, want):
            msg = (
                f'model {path!r}: input {arg.name!r} has shape {list(arg.shape)}, the '
                f'preprocessing spec makes (B, {", ".join(map(str, want))})'
            )
            raise ModelError(msg)
    # 3. outputs: probs is required; every output must be a contract output of its shape
    #    (adapted: the one unknown (B, 4) output stands for probs, other unknown ones are
    #    ignored)
    contract_of = {a.name: a.name for a in outputs if a.name in KNOWN_OUTPUTS}  # graph -> ours
    unknown = [a for a in outputs if a.name not in KNOWN_OUTPUTS]
    if unknown and not adapt:
        msg = (
            f'model {path!r}: outputs {[a.name for a in unknown]} are not in the model contract '
            f'(known: {list(KNOWN_OUTPUTS)})'
        )
        raise ModelError(msg)
    scores = [a.name for a in unknown if _fits(a.shape, KNOWN_OUTPUTS['probs'])]
    if 'probs' not in contract_of and len(scores) == 1:
        contract_of[scores[0]] = 'probs'
    ignored = [a.name for a in unknown if a.name not in contract_of]
    outputs = [a for a in outputs if a.name in contract_of]
    for arg in outputs:
        if arg.type != 'tensor(float)':
            msg = f'model {path!r}: output {arg.name!r} is {arg.type}, expected tensor(float)'
            raise ModelError(msg)
        want_tail = KNOWN_OUTPUTS[contract_of[arg.name]]
        if not _fits(arg.shape, want_tail):
            want_txt = ', '.join('D' if w is None else str(w) for w in want_tail)
            msg = (
                f'model {path!r}: output {arg.name!r} has shape {list(arg.shape)}, '
                f'the contract says (B, {want_txt})'
            )
            raise ModelError(msg)
    names = [contract_of[arg.name] for arg in outputs]
    if 'probs' not in names:
        graph = [arg.name for arg in outputs]
        msg = f'model {path!r}: no output named probs (outputs: {graph})'
        if adapt:
            msg += '; and not exactly one other output of shape (B, 4) to take as the scores'
        raise ModelError(msg)
    # 4. the batch axis: symbolic, or one fixed size (an export without a dynamic batch axis),
    #    which the model then runs in chunks of
    fixed = {
        f'{kind} {arg.name!r}': dims[0]
        for kind, args in (('input', inputs), ('output', outputs))
        for arg in args
        if (dims := _dims(arg.shape)) and dims[0] is not None
    }
    if len(set(fixed.values())) > 1 or any(size < 1 for size in fixed.values()):
        msg = f'model {path!r}: fixed batch sizes disagree ({fixed}); export one batch axis'
        raise ModelError(msg)
    return ModelInfo(
        path=path,
        spec=spec,
        outputs=tuple(names),
        kind=meta.get('dmil_ros.kind', 'foreign'),
        version=meta.get('dmil_ros.version', ''),
        metadata=dict(meta),
        fixed_batch=next(iter(fixed.values()), None),
        graph_names={
            **{k: v for k, v in names_in.items() if k != v},
            **{k: v for v, k in contract_of.items() if k != v},
        },
        ignored_outputs=tuple(ignored),
    )


def _fits(shape: Any, want: tuple[int | None, ...]) -> bool:
    """A (B, *want) shape, unknown dims matching anything."""
    dims = _dims(shape)
    if len(dims) != 1 + len(want):
        return False
    return all(d is None or w is None or d == w for d, w in zip(dims[1:], want, strict=True))


def _spec_from_inputs(path: str, inputs: Any) -> PreprocessSpec:
    """The default preprocessing at the sizes of a model without ``dmil_ros.preprocess``:
    a static ``(B, 3, H, W)`` input sets the image size, a static ``(B, 2, beams, bins)`` one
    the range image's (an ONNX model from elsewhere, trained at other sizes, still runs)."""
    sizes: dict[str, Any] = {}
    for arg in inputs:
        dims = _dims(arg.shape)[1:]
        if len(dims) != 3 or None in dims or min(d or 0 for d in dims) <= 0:
            continue
        if dims[0] == 3:
            sizes.update(image_height=dims[1], image_width=dims[2])
        elif dims[0] == 2:
            sizes.update(beams=dims[1], azimuth_bins=dims[2])
    try:
        spec = replace(PreprocessSpec(), **sizes)
    except ConfigError as exc:
        msg = f'model {path!r}: input sizes {sizes}: {exc}'
        raise ModelError(msg) from exc
    logger.warning(
        'model %r has no dmil_ros.preprocess metadata: default preprocessing at %s',
        path,
        ', '.join(f'{k} {v}' for k, v in sizes.items()) or 'the default sizes',
    )
    return spec


def _inputs_by_shape(
    path: str, inputs: list[Any], expect: dict[str, tuple[int, int, int]]
) -> dict[str, str]:
    """Contract input name -> graph input name, decided by the per-sample shapes."""
    if len(inputs) != len(expect):
        msg = (
            f'model {path!r}: inputs are {[i.name for i in inputs]}; an audited model takes '
            'two, the image and the LiDAR range image'
        )
        raise ModelError(msg)
    first, second = inputs
    fits = [
        {'image': a.name, 'lidar': b.name}
        for a, b in ((first, second), (second, first))
        if _fits(a.shape, expect['image']) and _fits(b.shape, expect['lidar'])
    ]
    if len(fits) != 1:
        want = ', '.join(f'{k} (B, {", ".join(map(str, v))})' for k, v in expect.items())
        got = ', '.join(f'{i.name!r} {list(i.shape)}' for i in inputs)
        how = 'both ways' if fits else 'neither way'
        msg = f'model {path!r}: inputs {got} match {want} {how}; name them image and lidar'
        raise ModelError(msg)
    logger.info('model %r: inputs taken by shape: %s', path, fits[0])
    return fits[0]


def _check_external_data(path: str) -> None:
    """Refuse a model whose external data lies outside its own directory (ours, not ORT's),
    and a PyTorch checkpoint by name (ORT's own message: "Protobuf parsing failed")."""
    try:
        with Path(path).open('rb') as file:
            zipped = file.read(4) == b'PK\x03\x04'
    except OSError:
        zipped = False  # said below, by the parse
    if zipped:
        msg = (
            f'model {path!r}: a zip archive, as a PyTorch checkpoint (.pt) is, not an ONNX '
            'model: export the training run first (dmil-ros export RUN --out MODEL.onnx)'
        )
        raise ModelError(msg)
    try:
        outside = outside_locations(path)
    except (WireError, OSError) as exc:
        msg = f'model {path!r}: cannot load it, not a well-formed ONNX file ({exc})'
        raise ModelError(msg) from exc
    if outside:
        msg = (
            f'model {path!r}: external data location(s) {outside} resolve outside the model '
            f'directory {str(Path(path).resolve().parent)!r}; refused'
        )
        raise ModelError(msg)


class FusionModel:
    """An ONNX Runtime session for one contract model.

    Parameters: ``path`` of the ``.onnx`` file; ``provider`` in :data:`PROVIDERS`; ``threads``
    for intra-op parallelism (default 1; 0 = ONNX Runtime's default, one per core);
    ``io_binding`` ``None`` = on for CUDA / TensorRT, off for CPU (where plain ``run`` is as
    fast); ``fixed_shapes`` ``None`` = on for CUDA / TensorRT, off for CPU (module docstring);
    ``outputs`` to fetch (default: the runtime outputs the model has); ``adapt`` reads a model
    outside the contract's names (:func:`check_contract`; the audit); ``cuda_graph`` ``None`` or
    ``True`` = CUDA graphs on CUDA when ONNX Runtime can capture the model (module docstring;
    calls then always go through their graph's buffers, whatever ``io_binding`` says),
    ``False`` = never. A GPU session is warmed up here at batch 2 (the node's calls carry one or
    two frames), so the first frame does not pay the session's set-up.
    """

    def __init__(
        self,
        path: str | Path,
        provider: str = 'auto',
        threads: int = 1,
        *,
        io_binding: bool | None = None,
        outputs: tuple[str, ...] | None = None,
        fixed_shapes: bool | None = None,
        adapt: bool = False,
        cuda_graph: bool | None = None,
    ) -> None:
        self.path = str(path)
        if provider not in PROVIDERS:
            msg = f'provider {provider!r} not one of {list(PROVIDERS)}'
            raise RuntimeConfigError(msg)
        if threads < 0:
            msg = f'threads {threads!r} must be >= 0'
            raise RuntimeConfigError(msg)
        if not Path(self.path).is_file():
            what = 'a directory, not an ONNX file' if Path(self.path).is_dir() else 'no such file'
            msg = f'model {self.path!r}: {what}'
            raise ModelError(msg)
        _check_external_data(self.path)
        ort = _onnxruntime()
        # Session options for a small model on a few shared cores (benchmarks/bench_runtime.py,
        # 2 cores under load, batch 1: 1 thread without spinning 0.13 ms p50 / 0.15 ms CPU per
        # call, vs ORT's default 2 spinning threads 0.14 ms p50 / 0.34 ms CPU and a p99 2-3x
        # worse; batch 32: 7.1 vs 15.3 ms): sequential, one intra-op thread, no spin-waiting.
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        options.add_session_config_entry('session.inter_op.allow_spinning', '0')
        options.log_severity_level = 3
        self.requested = provider
        self._graphs: dict[int, _GraphSlot] = {}  # batch size -> its captured CUDA graph
        self._graph_ids = itertools.count(1)  # ORT's gpu_graph_id: 0 is its own, never reused
        self._uncaptured = ort.RunOptions()  # a run of a graph session outside any graph
        self._uncaptured.add_run_config_entry('gpu_graph_id', '-1')
        # why a CUDA session runs without graphs ('' when it uses them)
        self.cuda_graph_off = 'not requested' if cuda_graph is False else ''
        self._ort, self._options = ort, options
        self.session = self._session(ort, options, provider, graph=cuda_graph is not False)
        first = self.session.get_providers()[0]
        self.provider = _SHORT.get(first, first)
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.info = check_contract(
            self.path, self.session.get_inputs(), self.session.get_outputs(), meta, adapt=adapt
        )
        self._inputs = (self.info.graph_name('image'), self.info.graph_name('lidar'))
        wanted = outputs or tuple(n for n in RUNTIME_OUTPUTS if n in self.info.outputs)
        missing = [n for n in wanted if n not in self.info.outputs]
        if missing:
            msg = f'model {self.path!r}: outputs {missing} are not in {self.info.outputs}'
            raise ModelError(msg)
        self.outputs = tuple(wanted)
        self.io_binding = self.provider != 'cpu' if io_binding is None else io_binding
        self.fixed_shapes = self.provider != 'cpu' if fixed_shapes is None else fixed_shapes
        self.call_batch = 0  # a fixed-shape session's padded batch size (0: not run yet)
        if self.provider == 'cpu':
            return
        try:
            self.warm_up(2)  # a LiDAR sweep completes one or two camera frames per call
        except Exception as exc:  # ORT raises its own untyped errors (out of memory ...)
            msg = f'model {self.path!r}: first run on {self.provider} failed ({exc})'
            raise ModelError(msg) from exc

    @property
    def cuda_graph(self) -> bool:
        """Whether calls replay captured CUDA graphs."""
        return self.provider == 'cuda' and not self.cuda_graph_off

    def _without_graphs(self, why: str) -> None:
        """Rebuild the CUDA session without graphs, saying ``why``."""
        logger.warning('model %r: CUDA graphs off: %s', self.path, why)
        self.cuda_graph_off = why
        self._graphs.clear()
        self.session = self._session(self._ort, self._options, 'cuda', graph=False)

    def _session(self, ort: Any, options: Any, provider: str, *, graph: bool) -> Any:
        available = set(ort.get_available_providers())
        if provider == 'auto':
            chain = ['cuda', 'cpu'] if 'CUDAExecutionProvider' in available else ['cpu']
        else:
            chain = [provider]
        last: Exception | None = None
        for name in chain:
            providers: list[Any] = [
                (p, _PROVIDER_OPTIONS[p]) if p in _PROVIDER_OPTIONS else p
                for p in _ORT_NAMES[name]
                if p in available
            ]
            if name != 'cpu' and _ORT_NAMES[name][0] not in available:
                msg = f'provider {name!r} is not in this ONNX Runtime ({sorted(available)})'
                raise RuntimeConfigError(msg)
            # probing a GPU provider whose libraries are missing logs an ERROR line before ORT
            # falls back to CPU; that fallback is expected here, so silence it while probing
            ort.set_default_logger_severity(4 if name != 'cpu' else 3)
            try:
                session = self._create(ort, options, providers, graph=graph and name == 'cuda')
            except Exception as exc:  # ORT raises its own untyped errors
                last = exc
                continue
            finally:
                ort.set_default_logger_severity(3)
            if name != 'cpu' and session.get_providers()[0] != _ORT_NAMES[name][0]:
                if provider == 'auto':
                    continue  # the GPU build fell back to CPU: take the CPU chain
                msg = (
                    f'provider {name!r} requested but ONNX Runtime cannot use it here (CUDA / '
                    f'TensorRT libraries or GPU missing); use provider auto or cpu'
                )
                raise RuntimeConfigError(msg)
            return session
        msg = f'model {self.path!r}: ONNX Runtime cannot load it ({last})'
        raise ModelError(msg)

    def _create(self, ort: Any, options: Any, providers: list[Any], *, graph: bool) -> Any:
        """A session; with CUDA graphs when ``graph`` and ONNX Runtime accepts them for this
        model (it refuses control flow when the session is made), else without."""
        if graph:
            cuda = ('CUDAExecutionProvider', {**_PROVIDER_OPTIONS['CUDAExecutionProvider'],
                                              'enable_cuda_graph': '1'})  # fmt: skip
            try:
                return ort.InferenceSession(self.path, options, providers=[cuda, *providers[1:]])
            except Exception as exc:  # ORT raises its own untyped errors
                self.cuda_graph_off = f'ONNX Runtime could not make a session with them ({exc})'
                logger.warning('model %r: CUDA graphs off: %s', self.path, self.cuda_graph_off)
        return ort.InferenceSession(self.path, options, providers=providers)

    @property
    def spec(self) -> PreprocessSpec:
        return self.info.spec

    @property
    def outputs(self) -> tuple[str, ...]:
        """The outputs each call fetches, by contract name (assignable)."""
        return self._outputs

    @outputs.setter
    def outputs(self, names: tuple[str, ...]) -> None:
        self._outputs = tuple(names)
        self._fetch = [self.info.graph_name(n) for n in self._outputs]  # the graph's names
        self._release_graphs()  # bound to the old outputs; new ones get new graph ids

    def has(self, output: str) -> bool:
        return output in self.outputs

    def run(self, image: F32, lidar: F32) -> dict[str, F32]:
        """One batch: ``image`` ``(B, 3, H, W)``, ``lidar`` ``(B, 2, beams, bins)`` -> outputs."""
        n = len(image)
        step = self.info.fixed_batch
        if step is None or n == 0:
            return self._run_padded(image, lidar, self._padded_size(n))
        if n == step:
            return self._run(image, lidar)
        # a model exported with a fixed batch size: chunks of it, the last one padded
        parts = [
            self._run_padded(image[i : i + step], lidar[i : i + step], step)
            for i in range(0, n, step)
        ]
        return {name: np.concatenate([p[name] for p in parts]) for name in self.outputs}

    def _run_padded(self, image: F32, lidar: F32, size: int) -> dict[str, F32]:
        n = len(image)
        if size == n:
            return self._run(image, lidar)
        # 1. pad to ``size`` rows with copies of the last row (rows do not interact)
        image, lidar = (_padded(a, size) for a in (image, lidar))  # (size, ...) each
        # 2. run, then keep the real rows
        return {name: value[:n] for name, value in self._run(image, lidar).items()}

    def warm_up(self, batch: int = 1) -> None:
        """Run once at ``batch`` frames (the shape calls of up to ``batch`` frames will use)."""
        spec = self.spec
        size = self.info.fixed_batch or self._padded_size(batch)
        image = np.zeros((size, *spec.image_shape), np.float32)  # (size, 3, H, W)
        lidar = np.zeros((size, *spec.lidar_shape), np.float32)  # (size, 2, beams, bins)
        self._run(image, lidar)

    def _padded_size(self, n: int) -> int:
        if not self.fixed_shapes or n < 1:
            return n
        size = max(self.call_batch, 1 << (n - 1).bit_length())  # a power of two >= n
        self.call_batch = size
        return size

    def _run(self, image: F32, lidar: F32) -> dict[str, F32]:
        if self.cuda_graph and len(image):
            try:
                return self._run_graph(image, lidar)
            except Exception as exc:  # ORT's untyped errors: a capture at a new size or thread
                self._without_graphs(f'a graph run at batch {len(image)} failed ({exc})')
        feeds = dict(zip(self._inputs, (image, lidar), strict=True))
        fetch = self._fetch
        options = self._uncaptured if self.cuda_graph else None  # an empty batch, say
        if not self.io_binding:
            values = self.session.run(fetch, feeds, options)
            return dict(zip(self.outputs, values, strict=True))
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for name in fetch:
            binding.bind_output(name, 'cpu')
        self.session.run_with_iobinding(binding, options)
        return dict(zip(self.outputs, binding.copy_outputs_to_cpu(), strict=True))

    def _release_graphs(self) -> None:
        """Forget every batch size's graph, and free them where ONNX Runtime can (1.31 has
        ``release_captured_graph``)."""
        release = getattr(self.session, 'release_captured_graph', None)
        for slot in self._graphs.values():
            if release is not None:
                release(slot.graph_id)
        self._graphs.clear()

    def _run_graph(self, image: F32, lidar: F32) -> dict[str, F32]:
        """One call through the CUDA graph of its batch size (captured on its first call)."""
        n = len(image)
        slot = self._graphs.get(n)
        if slot is None:
            slot = self._graphs[n] = self._graph_slot(image, lidar)
        # 1. the inputs into the graph's fixed buffers
        for buffer, value in zip(slot.inputs, (image, lidar), strict=True):
            buffer.update_inplace(np.ascontiguousarray(value, np.float32))
        # 2. replay (ONNX Runtime captures on the slot's first runs), 3. the outputs out
        self.session.run_with_iobinding(slot.binding, slot.options)
        return {k: v.numpy() for k, v in zip(self.outputs, slot.outputs, strict=True)}

    def _graph_slot(self, image: F32, lidar: F32) -> _GraphSlot:
        """Device buffers, binding and run options for batch size ``len(image)``."""
        ort = self._ort
        # 1. one run outside any graph (gpu_graph_id -1) gives the output shapes
        probe = self.session.io_binding()
        for name, value in zip(self._inputs, (image, lidar), strict=True):
            probe.bind_cpu_input(name, value)
        for name in self._fetch:
            probe.bind_output(name, _GRAPH_DEVICE)
        self.session.run_with_iobinding(probe, self._uncaptured)
        shapes = [value.shape() for value in probe.get_outputs()]
        # 2. fixed buffers, bound once, and a graph id of their own: ONNX Runtime replays what
        #    an id captured without checking the buffers, so an id is never used twice
        inputs = tuple(
            ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v, np.float32), _GRAPH_DEVICE)
            for v in (image, lidar)
        )
        outputs = tuple(
            ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, _GRAPH_DEVICE)
            for shape in shapes
        )
        binding = self.session.io_binding()
        for name, value in zip(self._inputs, inputs, strict=True):
            binding.bind_ortvalue_input(name, value)
        for name, value in zip(self._fetch, outputs, strict=True):
            binding.bind_ortvalue_output(name, value)
        graph_id = next(self._graph_ids)
        options = ort.RunOptions()
        options.add_run_config_entry('gpu_graph_id', str(graph_id))
        return _GraphSlot(inputs, outputs, binding, options, graph_id)

    def pid_source(self, requested: str = 'auto') -> str | None:
        """The per-frame S estimate the synergy monitor uses (None when the model has none)."""
        if requested not in PID_SOURCES:
            msg = f'pid_source {requested!r} not one of {list(PID_SOURCES)}'
            raise RuntimeConfigError(msg)
        if requested == 'auto':
            return next((n for n in ('pid_broja', 'pid_lsmi') if self.has(n)), None)
        if not self.has(requested):
            msg = f'model {self.path!r}: pid_source {requested!r} is not among its outputs'
            raise ModelError(msg)
        return requested


@dataclass(frozen=True)
class _GraphSlot:
    """One batch size's CUDA graph: its fixed buffers (ONNX Runtime ``OrtValue``), binding and
    run options (``gpu_graph_id``)."""

    inputs: tuple[Any, ...]
    outputs: tuple[Any, ...]
    binding: Any
    options: Any
    graph_id: int


def _padded(a: F32, size: int) -> F32:
    """``a`` (n, ...) grown to (size, ...) by repeating its last row, in one allocation."""
    out = np.empty((size, *a.shape[1:]), a.dtype)
    out[: len(a)] = a
    out[len(a) :] = a[-1]
    return out
