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

"""The ONNX model behind the node: load, check against the model contract
(:mod:`dmil_ros.runtime.contract`), run.

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
retried), and :attr:`FusionModel.cuda_graphs_off` says why. The shipped models hold no control flow
(:mod:`dmil_ros.train.static_graph` takes it out at export). ONNX Runtime keeps captured graphs
per calling thread, so a thread that runs the model for the first time captures its own (the
node's inference callbacks may run on any of its executor's threads: a capture per thread and
batch size on the first frames, 9 ms each on the H100 against 0.45 ms for a replay). The
session is not thread-safe: one caller at a time, as the pipeline is.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from dmil_ros.runtime.contract import RUNTIME_OUTPUTS, check_contract
from dmil_ros.runtime.errors import ModelError, RuntimeConfigError, RuntimeDmilError
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
    version = tuple(int(p) for p in re.findall(r'\d+', ort.__version__)[:2])
    if version < _ORT_FALLBACK_OFF and not _WARNED_VERSION:
        _WARNED_VERSION.append(ort.__version__)
        logger.warning(
            'ONNX Runtime %s is older than 1.23: its own provider fallback cannot be turned off '
            '(a provider asked for by name may run on another, with a banner on stdout); '
            'pip install "onnxruntime-gpu>=1.23" (or onnxruntime)',
            ort.__version__,
        )
    return ort


_ORT_FALLBACK_OFF: Final = (1, 23)  # InferenceSession(enable_fallback=0) is read from 1.23.0
_WARNED_VERSION: list[str] = []


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


def _one_line(exc: BaseException | None) -> str:
    """An exception's text on one line (ONNX Runtime's span several, with blank lines)."""
    return ' '.join(str(exc).split())


class FusionModel:
    """An ONNX Runtime session for one contract model.

    Parameters: ``path`` of the ``.onnx`` file; ``provider`` in :data:`PROVIDERS`; ``threads``
    for intra-op parallelism (default 1; 0 = ONNX Runtime's default, one per core);
    ``io_binding`` ``None`` = on for CUDA / TensorRT, off for CPU (where plain ``run`` is as
    fast); ``fixed_shapes`` ``None`` = on for CUDA / TensorRT, off for CPU (module docstring);
    ``outputs`` to fetch (default: the runtime outputs the model has); ``adapt`` reads a model
    outside the contract's names (:func:`check_contract`; the audit); ``cuda_graphs`` ``None`` or
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
        cuda_graphs: bool | None = None,
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
        self.cuda_graphs_off = 'not requested' if cuda_graphs is False else ''
        self._ort, self._options = ort, options
        self.session = self._session(ort, options, provider, graph=cuda_graphs is not False)
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
    def cuda_graphs(self) -> bool:
        """Whether calls replay captured CUDA graphs."""
        return self.provider == 'cuda' and not self.cuda_graphs_off

    def _without_graphs(self, why: str) -> None:
        """Rebuild the CUDA session without graphs, saying ``why``."""
        logger.warning('model %r: CUDA graphs off: %s', self.path, why)
        self.cuda_graphs_off = why
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
                if provider != 'auto' and name != 'cpu':
                    raise self._provider_error(ort, options, name, exc) from exc
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
        raise self._unloadable(last)

    def _unloadable(self, exc: Exception | None) -> ModelError:
        return ModelError(f'model {self.path!r}: ONNX Runtime cannot load it ({_one_line(exc)})')

    def _provider_error(
        self, ort: Any, options: Any, name: str, exc: Exception
    ) -> RuntimeDmilError:
        """Why a GPU provider asked for by name made no session: the provider (the model loads
        on CPU) or the model itself (it loads nowhere)."""
        try:
            self._create(ort, options, ['CPUExecutionProvider'], graph=False)
        except Exception as cpu_exc:  # ORT raises its own untyped errors
            return self._unloadable(cpu_exc)
        msg = (
            f'provider {name!r} requested but ONNX Runtime cannot use it here '
            f'({_one_line(exc)}); use provider auto or cpu'
        )
        return RuntimeConfigError(msg)

    def _create(self, ort: Any, options: Any, providers: list[Any], *, graph: bool) -> Any:
        """A session; with CUDA graphs when ``graph`` and ONNX Runtime accepts them for this
        model (it refuses control flow when the session is made), else without.

        ONNX Runtime's own fallback (a banner on stdout, then a session on other providers) is
        off: a provider asked for by name either works or is refused with ORT's reason."""
        why = ''
        if graph:
            cuda = ('CUDAExecutionProvider', {**_PROVIDER_OPTIONS['CUDAExecutionProvider'],
                                              'enable_cuda_graph': '1'})  # fmt: skip
            try:
                return ort.InferenceSession(
                    self.path, options, providers=[cuda, *providers[1:]], enable_fallback=0
                )
            except Exception as exc:  # ORT raises its own untyped errors
                why = f'ONNX Runtime could not make a session with them ({_one_line(exc)})'
        session = ort.InferenceSession(self.path, options, providers=providers, enable_fallback=0)
        if why:  # said only when the session without them loads: a model that loads in no
            # session is refused for itself, not with a warning about graphs first
            self.cuda_graphs_off = why
            logger.warning('model %r: CUDA graphs off: %s', self.path, why)
        return session

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
        if self.cuda_graphs and len(image):
            try:
                return self._run_graph(image, lidar)
            except Exception as exc:  # ORT's untyped errors: a capture at a new size or thread
                self._without_graphs(f'a graph run at batch {len(image)} failed ({exc})')
        feeds = dict(zip(self._inputs, (image, lidar), strict=True))
        fetch = self._fetch
        options = self._uncaptured if self.cuda_graphs else None  # an empty batch, say
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
