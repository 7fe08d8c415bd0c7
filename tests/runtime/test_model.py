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

"""The ONNX session wrapper: contract checks, providers, outputs, I/O binding."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from dmil_ros.runtime.diagnostics import DiagnosticsTracker
from dmil_ros.runtime.errors import ModelError, RuntimeConfigError
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.pipeline import FusionPipeline
from dmil_ros.runtime.preprocess import PreprocessSpec
from tests.runtime.contract_models import build_model, reference


@pytest.fixture(scope='module')
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp('m') / 'full.onnx')


def inputs(batch: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    spec = PreprocessSpec()
    image = rng.normal(size=(batch, *spec.image_shape)).astype(np.float32)
    lidar = rng.random((batch, *spec.lidar_shape), dtype=np.float32)
    return image, lidar


@pytest.mark.parametrize('io_binding', [False, True])
def test_outputs_match_reference(model_path: Path, io_binding: bool) -> None:
    model = FusionModel(model_path, provider='cpu', io_binding=io_binding)
    assert model.provider == 'cpu'
    assert model.outputs == ('probs', 'gates', 'pid_lsmi', 'pid_broja')
    image, lidar = inputs()
    got = model.run(image, lidar)
    ref = reference(image, lidar)
    for name in model.outputs:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-6)
    assert model.pid_source() == 'pid_broja'
    assert model.pid_source('pid_lsmi') == 'pid_lsmi'


def test_auto_provider_runs_somewhere(model_path: Path) -> None:
    model = FusionModel(model_path, provider='auto')
    assert model.provider in ('cpu', 'cuda')
    image, lidar = inputs(1)
    np.testing.assert_allclose(
        model.run(image, lidar)['probs'], reference(image, lidar)['probs'], rtol=1e-4
    )


@pytest.mark.parametrize('io_binding', [False, True])
def test_cuda_outputs_match_reference(model_path: Path, io_binding: bool) -> None:
    # runs only where a GPU is usable (the lent GPU machine); CI skips it. Kernel by kernel:
    # test_cuda_graphs_match_the_reference_at_every_batch_size covers graphs
    model = FusionModel(model_path, provider='auto', io_binding=io_binding, cuda_graphs=False)
    if model.provider != 'cuda':
        pytest.skip('needs a CUDA-enabled ONNX Runtime and a usable GPU')
    image, lidar = inputs(4, seed=3)
    ref = reference(image, lidar)
    for n in (1, 4):
        got = model.run(image[:n], lidar[:n])
        for name in model.outputs:
            # cuDNN may pick TF32 convolutions: float32 to about 1e-3 relative
            np.testing.assert_allclose(got[name], ref[name][:n], rtol=2e-3, atol=2e-4)


def _batch_sizes(model: FusionModel, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batch size of every call the session gets from now on."""
    sizes: list[int] = []
    run = model.session.run

    def spy(
        names: list[str], feeds: dict[str, np.ndarray], options: object = None
    ) -> list[np.ndarray]:
        sizes.append(len(feeds['image']))
        return run(names, feeds, options)

    monkeypatch.setattr(model.session, 'run', spy)
    return sizes


def test_fixed_shapes_pad_to_a_growing_power_of_two(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the GPU policy, exercised on the CPU: every call padded, the shape never shrinks
    model = FusionModel(model_path, provider='cpu', fixed_shapes=True)
    sizes = _batch_sizes(model, monkeypatch)
    image, lidar = inputs(6, seed=5)
    ref = reference(image, lidar)
    for n in (1, 3, 2, 6, 1):
        got = model.run(image[:n], lidar[:n])
        for name in model.outputs:
            assert got[name].shape[0] == n
            np.testing.assert_allclose(got[name], ref[name][:n], rtol=1e-5, atol=1e-6)
    assert sizes == [1, 4, 4, 8, 8]
    model.warm_up(9)
    model.run(image[:1], lidar[:1])
    assert sizes[-2:] == [16, 16]


def test_cpu_calls_are_not_padded(model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = FusionModel(model_path, provider='cpu')
    assert not model.fixed_shapes
    sizes = _batch_sizes(model, monkeypatch)
    image, lidar = inputs(3)
    for n in (3, 1, 2):
        model.run(image[:n], lidar[:n])
    assert sizes == [3, 1, 2]


@pytest.mark.parametrize('fixed', [1, 2])
def test_a_model_with_a_fixed_batch_size_runs_in_chunks_of_it(
    tmp_path: Path, fixed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torch.onnx.export without dynamic axes: a sweep completing two frames, or the replay's
    # batches, must still run (review 10, 1); every call the session gets has that size
    spec = PreprocessSpec()
    shapes: dict[str, list[int | str]] = {
        'image': [fixed, *spec.image_shape],
        'lidar': [fixed, *spec.lidar_shape],
    }
    model = FusionModel(build_model(tmp_path / 'fixed.onnx', input_shapes=shapes), 'cpu')
    assert model.info.fixed_batch == fixed
    sizes = _batch_sizes(model, monkeypatch)
    image, lidar = inputs(5, seed=2)
    ref = reference(image, lidar)
    for n in (1, 2, 5):
        got = model.run(image[:n], lidar[:n])
        for name in model.outputs:
            assert got[name].shape[0] == n
            np.testing.assert_allclose(got[name], ref[name][:n], rtol=1e-5, atol=1e-6)
    model.warm_up(4)
    assert set(sizes) == {fixed}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r'nope\.onnx.*no such file'):
        FusionModel(tmp_path / 'nope.onnx')
    (tmp_path / 'models').mkdir()
    with pytest.raises(ModelError, match=r"models': a directory, not an ONNX file"):
        FusionModel(tmp_path / 'models')


def test_not_onnx(tmp_path: Path) -> None:
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not a model')
    with pytest.raises(ModelError, match=r'bad\.onnx.*cannot load'):
        FusionModel(bad, provider='cpu')


def test_a_training_checkpoint_is_named_as_one(tmp_path: Path) -> None:
    """`--model run/model.pt`: ORT's "Protobuf parsing failed" did not say what to do."""
    import zipfile

    with zipfile.ZipFile(tmp_path / 'model.pt', 'w') as archive:  # torch.save's format
        archive.writestr('model/data.pkl', b'weights')
    with pytest.raises(ModelError, match=r"model\.pt': a zip archive.*dmil-ros export RUN"):
        FusionModel(tmp_path / 'model.pt', provider='cpu')


def test_bad_parameters(model_path: Path) -> None:
    with pytest.raises(RuntimeConfigError, match='provider'):
        FusionModel(model_path, provider='gpu')
    with pytest.raises(RuntimeConfigError, match='threads'):
        FusionModel(model_path, threads=-1)
    with pytest.raises(ModelError, match=r'outputs .*sub_probs.* are not in'):
        FusionModel(model_path, provider='cpu', outputs=('probs', 'sub_probs'))


def test_explicit_gpu_provider_without_gpu_is_refused(model_path: Path) -> None:
    import onnxruntime as ort

    model = FusionModel(model_path, provider='auto')
    if model.provider != 'cpu' or 'CUDAExecutionProvider' not in ort.get_available_providers():
        pytest.skip('needs a CUDA-enabled ONNX Runtime on a machine where CUDA is unusable')
    with pytest.raises(RuntimeConfigError, match="provider 'cuda' requested"):
        FusionModel(model_path, provider='cuda')


def test_a_missing_onnx_runtime_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a robot set up with rosdep alone: one line at start-up, not an import traceback
    path = build_model(tmp_path / 'm.onnx')
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import now raises ImportError
    with pytest.raises(ModelError, match='pip install onnxruntime-gpu'):
        FusionModel(path, 'cpu')


class _CudaLabel:
    """A CPU session that reports CUDA as its provider (the GPU start-up path, without a GPU)."""

    def __init__(self, session: object) -> None:
        self._session = session

    def get_providers(self) -> list[str]:
        return ['CUDAExecutionProvider', 'CPUExecutionProvider']

    def __getattr__(self, name: str) -> object:
        return getattr(self._session, name)


def test_a_failing_gpu_warm_up_names_the_model(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime as ort

    def fail(self: FusionModel, batch: int = 1) -> None:
        raise RuntimeError('CUDA failure 2: out of memory')

    def session(
        self: FusionModel, ort_: object, options: object, provider: str, *, graph: bool
    ) -> _CudaLabel:
        return _CudaLabel(
            ort.InferenceSession(str(model_path), providers=['CPUExecutionProvider'])
        )

    monkeypatch.setattr(FusionModel, 'warm_up', fail)
    monkeypatch.setattr(FusionModel, '_session', session)
    with pytest.raises(ModelError, match=r'full\.onnx.*first run on cuda failed .*out of memory'):
        FusionModel(model_path, provider='cuda')


def _cpu_session(path: Path) -> _CudaLabel:
    import onnxruntime as ort

    return _CudaLabel(ort.InferenceSession(str(path), providers=['CPUExecutionProvider']))


def test_a_model_refused_for_cuda_graphs_runs_on_cuda_without_them(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ONNX Runtime refuses graphs for a model with control flow when the session is made; the
    # model must still run on CUDA, kernel by kernel, and say why
    import onnxruntime as ort

    asked: list[dict[str, str]] = []
    real = ort.InferenceSession

    def session(
        path: str, options: object, providers: list[object], enable_fallback: int = 1
    ) -> _CudaLabel:
        assert enable_fallback == 0  # ONNX Runtime's own fallback is off
        cuda = dict(next(p for p in providers if isinstance(p, tuple))[1])
        asked.append(cuda)
        if cuda.get('enable_cuda_graph') == '1':
            msg = 'the model has control flow nodes which cannot be captured'
            raise RuntimeError(msg)
        return _CudaLabel(real(path, options, providers=['CPUExecutionProvider']))

    monkeypatch.setattr(ort, 'get_available_providers', lambda: list(_CUDA_PROVIDERS))
    monkeypatch.setattr(ort, 'InferenceSession', session)
    model = FusionModel(model_path, provider='cuda')
    assert [a.get('enable_cuda_graph') for a in asked] == ['1', None]
    assert all(a['use_tf32'] == '0' for a in asked)
    assert model.provider == 'cuda'
    assert not model.cuda_graphs
    assert 'could not make a session with them' in model.cuda_graphs_off
    assert 'control flow' in model.cuda_graphs_off
    image, lidar = inputs(3, seed=4)
    got, ref = model.run(image, lidar), reference(image, lidar)
    for name in model.outputs:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-6)
    # diagnostics say it where an engineer looks
    (status,) = DiagnosticsTracker(FusionPipeline(model)).report(0.0)
    values = dict(status.values)
    assert values['provider'] == 'cuda'
    assert values['cuda graphs'] == f'off: {model.cuda_graphs_off}'
    asked.clear()
    assert FusionModel(model_path, provider='cuda', cuda_graphs=False).cuda_graphs_off
    assert [a.get('enable_cuda_graph') for a in asked] == [None]  # not even tried


_CUDA_PROVIDERS = ('CUDAExecutionProvider', 'CPUExecutionProvider')


class _TensorrtLabel(_CudaLabel):
    def get_providers(self) -> list[str]:
        return ['TensorrtExecutionProvider', *_CUDA_PROVIDERS]


def test_tensorrt_sessions_get_no_cuda_graphs(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TensorRT has graphs of its own (trt_cuda_graph_enable); ours are for the CUDA provider
    import onnxruntime as ort

    asked: list[list[object]] = []
    real = ort.InferenceSession

    def session(
        path: str, options: object, providers: list[object], enable_fallback: int = 1
    ) -> _CudaLabel:
        assert enable_fallback == 0
        asked.append(providers)
        return _TensorrtLabel(real(path, options, providers=['CPUExecutionProvider']))

    available = ['TensorrtExecutionProvider', *_CUDA_PROVIDERS]
    monkeypatch.setattr(ort, 'get_available_providers', lambda: available)
    monkeypatch.setattr(ort, 'InferenceSession', session)
    model = FusionModel(model_path, provider='tensorrt')
    assert model.provider == 'tensorrt'
    assert not model.cuda_graphs
    assert len(asked) == 1
    options = [dict(p[1]) for p in asked[0] if isinstance(p, tuple)]
    assert options == [{'use_tf32': '0'}]  # the CUDA fallback's, without enable_cuda_graph


def _ort_with_a_failing_tensorrt(monkeypatch: pytest.MonkeyPatch, *, model_loads: bool) -> None:
    """An ONNX Runtime whose TensorRT provider cannot start (no TensorRT libraries), with ORT's
    own fallback as ORT 1.x has it: a banner on stdout and a session on CUDA + CPU instead."""
    import onnxruntime as ort

    real = ort.InferenceSession

    def session(
        path: str, options: object, providers: list[object], enable_fallback: int = 1
    ) -> object:
        if not model_loads:
            msg = '[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Protobuf parsing failed.'
            raise RuntimeError(msg)
        if 'TensorrtExecutionProvider' in providers:
            err = 'Please install TensorRT libraries, make sure they are in LD_LIBRARY_PATH'
            if enable_fallback == 0:
                raise RuntimeError(err)
            print('*************** EP Error ***************')  # ORT's banner
            print(f'EP Error {err} when using {providers}')
        return real(path, options, providers=['CPUExecutionProvider'])

    available = ['TensorrtExecutionProvider', *_CUDA_PROVIDERS]
    monkeypatch.setattr(ort, 'get_available_providers', lambda: available)
    monkeypatch.setattr(ort, 'InferenceSession', session)


def test_a_named_gpu_provider_that_cannot_start_is_refused_with_orts_reason_and_no_banner(
    model_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """ORT's fallback printed four banner lines to stdout before the refusal, and the refusal
    guessed the reason ('libraries or GPU missing') instead of giving ORT's (review 20b #17)."""
    _ort_with_a_failing_tensorrt(monkeypatch, model_loads=True)
    with pytest.raises(RuntimeConfigError, match=r"'tensorrt'.*install TensorRT libraries"):
        FusionModel(model_path, provider='tensorrt')
    assert capfd.readouterr().out == ''


def test_a_model_that_loads_nowhere_is_refused_for_itself_not_the_provider(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ort_with_a_failing_tensorrt(monkeypatch, model_loads=False)
    with pytest.raises(ModelError, match=r'full\.onnx.*cannot load it \(.*Protobuf parsing'):
        FusionModel(model_path, provider='tensorrt')


def test_tensorrt_without_its_libraries_says_so_on_one_line_and_nothing_on_stdout(
    model_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # the real ONNX Runtime, where it lists TensorRT but cannot start it (onnxruntime-gpu on a
    # machine without TensorRT, as CI); skipped where TensorRT is absent from either
    import ctypes.util

    import onnxruntime as ort

    if 'TensorrtExecutionProvider' not in ort.get_available_providers():
        pytest.skip('this ONNX Runtime has no TensorRT provider')
    if ctypes.util.find_library('nvinfer'):
        pytest.skip('TensorRT libraries are installed here')
    with pytest.raises(RuntimeConfigError) as info:
        FusionModel(model_path, provider='tensorrt')
    assert '\n' not in str(info.value)
    assert "provider 'tensorrt' requested but ONNX Runtime cannot use it" in str(info.value)
    assert capfd.readouterr().out == ''


@pytest.mark.parametrize('fails_from', [2, 4])
def test_a_failed_capture_rebuilds_the_session_without_graphs(
    model_path: Path, monkeypatch: pytest.MonkeyPatch, fails_from: int
) -> None:
    # at start-up (batch 2) or later, at a new batch size (4): the call still returns, on a
    # session without graphs, and says why
    graphs: list[bool] = []

    def session(
        self: FusionModel, ort_: object, options: object, provider: str, *, graph: bool
    ) -> _CudaLabel:
        graphs.append(graph)
        return _cpu_session(model_path)

    def capture(self: FusionModel, image: np.ndarray, lidar: np.ndarray) -> dict[str, object]:
        self._graphs[len(image)] = 'captured'  # type: ignore[assignment]
        if len(image) >= fails_from:
            raise RuntimeError(
                'CUDA failure 900: operation not permitted when stream is capturing'
            )
        return {k: v[: len(image)] for k, v in reference(image, lidar).items()}

    monkeypatch.setattr(FusionModel, '_session', session)
    monkeypatch.setattr(FusionModel, '_run_graph', capture)
    model = FusionModel(model_path, provider='cuda')
    assert model.cuda_graphs == (fails_from > 2)
    image, lidar = inputs(3, seed=6)  # padded to 4
    got, ref = model.run(image, lidar), reference(image, lidar)
    for name in model.outputs:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-6)
    assert graphs == [True, False]
    assert not model.cuda_graphs
    assert model.cuda_graphs_off.startswith(f'a graph run at batch {fails_from} failed (CUDA')
    assert model._graphs == {}  # the old session's graphs are gone


def test_cuda_graphs_match_the_reference_at_every_batch_size(model_path: Path) -> None:
    # runs only where a GPU is usable (the lent GPU machine); CI skips it. New inputs each call
    # (a graph reading stale buffers would repeat an old answer), sizes up and down.
    model = FusionModel(model_path, provider='auto')
    if model.provider != 'cuda':
        pytest.skip('needs a CUDA-enabled ONNX Runtime and a usable GPU')
    assert model.cuda_graphs, model.cuda_graphs_off
    (status,) = DiagnosticsTracker(FusionPipeline(model)).report(0.0)
    assert dict(status.values)['cuda graphs'] == 'on'
    plain = FusionModel(model_path, provider='cuda', cuda_graphs=False)
    assert not plain.cuda_graphs
    for k, n in enumerate((1, 3, 2, 6, 1, 2)):
        image, lidar = inputs(n, seed=20 + k)
        ref = reference(image, lidar)
        got, kernel_by_kernel = model.run(image, lidar), plain.run(image, lidar)
        for name in model.outputs:
            np.testing.assert_allclose(got[name], ref[name], rtol=2e-3, atol=2e-4)
            np.testing.assert_allclose(got[name], kernel_by_kernel[name], rtol=1e-4, atol=1e-5)
    assert sorted(model._graphs) == [2, 4, 8]  # one graph per padded size
    # an empty batch runs outside any graph, and the graphs still answer afterwards
    image, lidar = inputs(2, seed=30)
    assert model.run(image[:0], lidar[:0])['probs'].shape == (0, 4)
    np.testing.assert_allclose(
        model.run(image, lidar)['probs'], reference(image, lidar)['probs'], rtol=2e-3, atol=2e-4
    )
    # another thread (ONNX Runtime keeps graphs per thread: the node's executor has several)
    got_there: dict[str, np.ndarray] = {}
    image, lidar = inputs(3, seed=31)
    worker = threading.Thread(target=lambda: got_there.update(model.run(image, lidar)))
    worker.start()
    worker.join()
    for name, value in reference(image, lidar).items():
        np.testing.assert_allclose(got_there[name], value, rtol=2e-3, atol=2e-4)
    assert model.cuda_graphs, model.cuda_graphs_off
    # other outputs: new buffers and new graphs (a reused graph id would replay the old ones),
    # each checked on two calls with new inputs (the second one a replay)
    for k, outputs in enumerate((('probs',), ('pid_lsmi', 'probs'), model.outputs)):
        model.outputs = outputs
        for seed in (50 + 2 * k, 51 + 2 * k):
            image, lidar = inputs(2, seed=seed)
            got, ref = model.run(image, lidar), reference(image, lidar)
            assert tuple(got) == outputs
            for name in outputs:
                np.testing.assert_allclose(got[name], ref[name], rtol=2e-3, atol=2e-4)
    assert model.cuda_graphs, model.cuda_graphs_off  # and still through graphs


def test_a_model_no_session_loads_gets_one_line_and_no_graph_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With provider auto on onnxruntime-gpu, an unloadable file first warned 'CUDA graphs off'
    (the graph session failed for the file, not for graphs), and ORT's multi-line text made the
    error several lines (review 20b #17)."""

    class Ort:  # an ONNX Runtime that loads nothing, as for a corrupt file
        @staticmethod
        def InferenceSession(*args: object, **kwargs: object) -> None:
            msg = '[ONNXRuntimeError] : 7 : INVALID_PROTOBUF :\n\n  Protobuf parsing failed.'
            raise RuntimeError(msg)

    model = object.__new__(FusionModel)
    model.path = 'm.onnx'
    model.cuda_graphs_off = ''
    cuda = [('CUDAExecutionProvider', {}), 'CPUExecutionProvider']
    with caplog.at_level('WARNING'), pytest.raises(RuntimeError, match='Protobuf'):
        model._create(Ort(), None, cuda, graph=True)
    assert 'CUDA graphs off' not in caplog.text
    assert model.cuda_graphs_off == ''
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'garbage')
    with pytest.raises(ModelError, match='cannot load it') as info:
        FusionModel(bad, provider='cpu')
    assert '\n' not in str(info.value)


@pytest.mark.parametrize(('version', 'warned'), [('1.22.1', True), ('1.23.0', False)])
def test_an_onnx_runtime_whose_fallback_cannot_be_turned_off_is_named(
    version: str, warned: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # ORT reads InferenceSession(enable_fallback=0) from 1.23.0 on; setup.py asks for >= 1.23,
    # but a robot may have an older one installed by hand
    import onnxruntime as ort

    from dmil_ros.runtime import model as model_module

    monkeypatch.setattr(ort, '__version__', version)
    monkeypatch.setattr(model_module, '_WARNED_VERSION', [])
    with caplog.at_level('WARNING'):
        model_module._onnxruntime()
        model_module._onnxruntime()  # once per process
    assert caplog.text.count('older than 1.23') == (1 if warned else 0)
