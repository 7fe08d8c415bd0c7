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

"""Security of loading: no pickle, models checked against the contract, parameters validated.

1. A static scan (AST) of every module of ``dmil_ros``: no pickle-family module, no
   ``torch.load`` without ``weights_only=True``, no ``np.load(allow_pickle=True)`` (or
   ``np.load`` left to its default on an object array), no unsafe YAML, no ``eval``/``exec``.
2. Models: unexpected or missing inputs, outputs of the wrong shape or type, labels that differ,
   broken metadata, a file that is not ONNX, and ONNX external data outside the model's own
   directory (``../``, absolute, a symlink out) are all refused with a :class:`ModelError`
   naming the file.
3. Parameters: the node's parameter table refuses unknown names, wrong types, bad choices and
   out-of-range values with :class:`RuntimeConfigError`.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import dmil_ros
from dmil_ros.errors import DmilError
from dmil_ros.runtime import params
from dmil_ros.runtime.errors import ModelError, RuntimeConfigError
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.monitor import SynergyMonitor
from dmil_ros.runtime.pairing import ApproxTimePairer
from dmil_ros.runtime.pipeline import PipelineConfig
from tests.runtime.contract_models import build_model

PACKAGE = Path(dmil_ros.__file__).resolve().parent
PICKLE_MODULES = {'pickle', 'cPickle', '_pickle', 'dill', 'cloudpickle', 'joblib', 'shelve'}
PICKLE_MODULES |= {'marshal', 'jsonpickle'}

# -- 1. static scan -------------------------------------------------------------------------------


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f'{_dotted(node.value)}.{node.attr}'
    return ''


def scan(source: str, filename: str) -> list[str]:
    """Unsafe loading constructs in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f'{filename}:{getattr(node, "lineno", 0)}'
        if isinstance(node, ast.Import):
            found += [f'{where}: import {a.name}' for a in node.names if a.name in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or '') in PICKLE_MODULES:
            found.append(f'{where}: from {node.module} import ...')
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            last = name.rsplit('.', 1)[-1]
            if name in ('eval', 'exec'):
                found.append(f'{where}: {name}()')
            elif name.endswith('torch.load') and not _is_true(_kw(node, 'weights_only')):
                found.append(f'{where}: torch.load without weights_only=True')
            elif name in ('np.load', 'numpy.load') and _kw(node, 'allow_pickle') is not None:
                if not (
                    isinstance(_kw(node, 'allow_pickle'), ast.Constant)
                    and _kw(node, 'allow_pickle').value is False  # type: ignore[union-attr]
                ):
                    found.append(f'{where}: np.load(allow_pickle=...) not False')
            elif last in ('read_pickle', 'load_pickle'):
                found.append(f'{where}: {name}()')
            elif name.endswith('yaml.load') and 'Safe' not in ast.dump(node):
                found.append(f'{where}: yaml.load without a safe loader')
            elif last == 'YAML' and isinstance(_kw(node, 'typ'), ast.Constant):
                typ = _kw(node, 'typ').value  # type: ignore[union-attr]
                if typ not in ('safe', 'rt'):
                    found.append(f'{where}: YAML(typ={typ!r})')
    return found


def test_scanner_catches_the_unsafe_forms() -> None:
    bad = (
        'import pickle\nfrom dill import loads\nimport torch\ntorch.load(p)\n'
        'torch.load(p, weights_only=False)\nnp.load(p, allow_pickle=True)\npd.read_pickle(p)\n'
        'yaml.load(text)\nYAML(typ="unsafe")\neval(s)\n'
    )
    assert len(scan(bad, 'bad.py')) == 9
    good = 'torch.load(p, weights_only=True)\nnp.load(p, allow_pickle=False)\nnp.load(p)\n'
    good += 'yaml.load(t, Loader=yaml.SafeLoader)\nYAML(typ="safe").load(t)\n'
    assert scan(good, 'good.py') == []


def test_no_pickle_anywhere_in_the_package() -> None:
    files = sorted(PACKAGE.rglob('*.py'))
    assert len(files) > 20
    found = [hit for f in files for hit in scan(f.read_text(encoding='utf-8'), str(f))]
    assert found == []


def test_np_load_calls_refuse_pickles() -> None:
    """Every ``np.load`` in the package states ``allow_pickle=False`` (NumPy's default, made
    explicit so a future default change cannot open it)."""
    missing = []
    for f in sorted(PACKAGE.rglob('*.py')):
        for node in ast.walk(ast.parse(f.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Call) and _dotted(node.func) in ('np.load', 'numpy.load'):
                value = _kw(node, 'allow_pickle')
                if not (isinstance(value, ast.Constant) and value.value is False):
                    missing.append(f'{f}:{node.lineno}')
    assert missing == []


# -- 2. models ------------------------------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / 'models'
    d.mkdir()
    return d


def refused(path: Path, *words: str) -> ModelError:
    with pytest.raises(ModelError) as info:
        FusionModel(path, provider='cpu')
    text = str(info.value)
    assert str(path) in text  # names the file
    for word in words:
        assert word in text, text
    return info.value


def test_contract_model_loads(model_dir: Path) -> None:
    model = FusionModel(build_model(model_dir / 'ok.onnx'), provider='cpu')
    assert model.outputs == ('probs', 'gates', 'pid_lsmi', 'pid_broja')


def test_unexpected_input_refused(model_dir: Path) -> None:
    path = build_model(
        model_dir / 'extra_in.onnx', input_shapes={'extra': ['B', 4]}
    )  # an input the contract does not have
    refused(path, 'extra', 'inputs')


def test_renamed_input_refused(model_dir: Path) -> None:
    path = model_dir / 'renamed.onnx'
    build_model(path)
    proto = onnx.load(str(path))
    proto.graph.input[1].name = 'points'
    for node in proto.graph.node:
        node.input[:] = ['points' if i == 'lidar' else i for i in node.input]
    onnx.save(proto, str(path))
    refused(path, 'points')


@pytest.mark.parametrize(
    ('shapes', 'word'),
    [
        ({'image': ['B', 3, 96, 128]}, 'image'),  # a different image size than the spec
        ({'lidar': ['B', 2, 32, 180]}, 'lidar'),  # 32 beams, the spec says 16
        ({'lidar': ['B', 2, 16, 360]}, 'lidar'),  # 360 azimuth bins, the spec says 180
    ],
)
def test_input_shape_refused(model_dir: Path, shapes: dict[str, Any], word: str) -> None:
    refused(build_model(model_dir / 'shape.onnx', input_shapes=shapes), word)


def test_output_of_wrong_width_refused(model_dir: Path) -> None:
    refused(build_model(model_dir / 'w3.onnx', probs_width=3), 'probs')


def test_missing_probs_refused(model_dir: Path) -> None:
    refused(build_model(model_dir / 'noprobs.onnx', outputs=('gates',)), 'probs')


def _add_output(path: Path, name: str, elem: int = TensorProto.FLOAT) -> Path:
    proto = onnx.load(str(path))
    proto.graph.node.append(helper.make_node('Identity', ['probs'], [name]))
    proto.graph.output.append(helper.make_tensor_value_info(name, elem, ['B', 4]))
    onnx.save(proto, str(path))
    return path


def test_unexpected_output_refused(model_dir: Path) -> None:
    path = _add_output(build_model(model_dir / 'extra_out.onnx'), 'debug_logits')
    refused(path, 'debug_logits')


def test_wrong_labels_refused(model_dir: Path) -> None:
    path = build_model(
        model_dir / 'labels.onnx',
        metadata={'dmil_ros.labels': json.dumps(['go', 'left', 'right', 'stop'])},
    )
    refused(path, 'labels')


@pytest.mark.parametrize('text', ['{not json', '[1, 2]', '{"image_width": -1}', '{"bogus": 1}'])
def test_broken_preprocess_metadata_refused(model_dir: Path, text: str) -> None:
    path = build_model(model_dir / 'meta.onnx', metadata={'dmil_ros.preprocess': text})
    refused(path, 'preprocess')


@pytest.mark.parametrize('content', [b'', b'\x00' * 64, b'not an onnx model at all'])
def test_not_onnx_refused(model_dir: Path, content: bytes) -> None:
    path = model_dir / 'junk.onnx'
    path.write_bytes(content)
    refused(path)


def test_missing_or_directory_path_refused(model_dir: Path) -> None:
    with pytest.raises(ModelError, match='no such file'):
        FusionModel(model_dir / 'absent.onnx', provider='cpu')
    with pytest.raises(ModelError):
        FusionModel(model_dir, provider='cpu')


def _externalise(model: Path, location: str, write_to: Path) -> Path:
    """Move initializer ``W`` to external data at ``location`` (bytes written to ``write_to``)."""
    proto = onnx.load(str(model))
    for init in proto.graph.initializer:
        if init.name == 'W':
            array = numpy_helper.to_array(init)
            write_to.parent.mkdir(parents=True, exist_ok=True)
            write_to.write_bytes(array.tobytes())
            init.ClearField('raw_data')
            init.data_location = TensorProto.EXTERNAL
            del init.external_data[:]
            for key, value in (('location', location), ('offset', '0')):
                entry = init.external_data.add()
                entry.key, entry.value = key, value
            length = init.external_data.add()
            length.key, length.value = 'length', str(array.nbytes)
    out = model.with_name(f'ext_{abs(hash(location))}.onnx')
    onnx.save(proto, str(out))
    return out


def test_external_data_inside_the_model_directory_loads(model_dir: Path) -> None:
    base = build_model(model_dir / 'base.onnx')
    path = _externalise(base, 'weights/w.bin', model_dir / 'weights' / 'w.bin')
    model = FusionModel(path, provider='cpu')
    image = np.zeros((1, 3, 48, 64), np.float32)
    lidar = np.zeros((1, 2, 16, 180), np.float32)
    assert model.run(image, lidar)['probs'].shape == (1, 4)


@pytest.mark.parametrize('how', ['parent', 'absolute', 'dotdot_inside', 'symlink'])
def test_external_data_outside_the_model_directory_refused(
    model_dir: Path, tmp_path: Path, how: str
) -> None:
    base = build_model(model_dir / 'base.onnx')
    outside = tmp_path / 'evil.bin'
    if how == 'parent':
        path = _externalise(base, '../evil.bin', outside)
    elif how == 'absolute':
        path = _externalise(base, str(outside), outside)
    elif how == 'dotdot_inside':
        path = _externalise(base, 'sub/../../evil.bin', outside)
    else:
        (model_dir / 'link.bin').symlink_to(outside)
        path = _externalise(base, 'link.bin', outside)
    error = refused(path)
    assert 'external data' in str(error).lower()


def test_huge_preprocess_spec_in_a_dynamic_model(model_dir: Path) -> None:
    """A model with dynamic H/W can carry any spec: the spec's sizes are what the node would
    allocate per frame, so absurd ones must be refused when the model is loaded."""
    text = json.dumps({'image_width': 100_000, 'image_height': 100_000})
    path = build_model(
        model_dir / 'huge.onnx',
        metadata={'dmil_ros.preprocess': text},
        input_shapes={'image': ['B', 3, 'H', 'W'], 'lidar': ['B', 2, 16, 180]},
    )
    refused(path, 'preprocess')


# -- 3. parameters --------------------------------------------------------------------------------


def build_all(values: dict[str, Any]) -> None:
    """Parameters -> settings -> the objects the node makes from them (queues, monitor)."""
    built = params.build(values)
    ApproxTimePairer(built.pipeline.slop, built.pipeline.queue_size)
    SynergyMonitor(built.pipeline.monitor)


@pytest.mark.parametrize(
    ('values', 'word'),
    [
        ({'no_such_param': 1}, 'unknown'),
        ({'slop': 'fast'}, 'slop'),
        ({'queue_size': 2.5}, 'queue_size'),
        ({'publish_cmd_vel': 1}, 'publish_cmd_vel'),
        ({'provider': 'gpu'}, 'provider'),
        ({'points_type': 'pcl'}, 'points_type'),
        ({'slop': 0.0}, 'slop'),
        ({'slop': -1.0}, 'slop'),
        ({'queue_size': 0}, 'queue_size'),
        ({'silence_timeout': 0.01}, 'silence_timeout'),
        ({'diagnostics_period': 0.0}, 'diagnostics_period'),
    ],
)
def test_bad_parameters_refused(values: dict[str, Any], word: str) -> None:
    with pytest.raises(RuntimeConfigError) as info:
        build_all(values)
    assert word in str(info.value)


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(
    name=st.sampled_from([p.name for p in params.PARAMS]),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(2**70), 2**70),
        st.booleans(),
        st.text(max_size=20),
        st.none(),
        st.lists(st.integers(), max_size=2),
    ),
)
def test_any_parameter_value_is_accepted_or_refused_cleanly(name: str, value: Any) -> None:
    """Whatever a YAML file or ``ros2 param set`` supplies: settings, or a RuntimeConfigError."""
    try:
        build_all({name: value})
    except DmilError:
        return


def test_params_yaml_is_parsed_safely(tmp_path: Path) -> None:
    """A Python tag constructs nothing (the file is composed, and tags ignored as rcl ignores
    them): the value is the list it tags, refused as no float."""
    marker = tmp_path / 'ran'
    evil = tmp_path / 'evil.yaml'
    evil.write_text(
        'fusion_node:\n  ros__parameters:\n'
        f'    slop: !!python/object/apply:os.system ["touch {marker}"]\n'
    )
    with pytest.raises(RuntimeConfigError, match="'slop'"):
        params.build(params.load_yaml(evil))
    assert not marker.exists()


def test_pipeline_config_validated() -> None:
    with pytest.raises(RuntimeConfigError):
        PipelineConfig(slop=0.5, silence_timeout=0.4)
