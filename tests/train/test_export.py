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

"""ONNX export: contract outputs, metadata, checker, onnxruntime == torch, dynamic batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dmil_ros.actions import ACTIONS, COMPONENTS
from dmil_ros.model import build_model
from dmil_ros.runtime.preprocess import PreprocessSpec
from dmil_ros.train.evaluate import evaluate_model, load_for_evaluation
from dmil_ros.train.export import OUTPUTS, export_onnx
from tests.train.test_trainer import small_config
from tests.train.toy import toy_arrays

ort.set_default_logger_severity(3)


@pytest.mark.parametrize('kind', ['dmil', 'joint', 'ensemble'])
@pytest.mark.filterwarnings('error::torch.jit.TracerWarning')  # a trace that may not generalise
def test_export_matches_torch_and_carries_metadata(kind: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = small_config(kind)
    model = build_model(cfg.model).eval()
    data = toy_arrays(12, 3)
    path = tmp_path / f'{kind}.onnx'
    report = export_onnx(model, cfg, path, {'note': 'test'}, sample=(data.image, data.lidar))
    assert report['max_abs_diff'] <= 1e-4
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta['dmil_ros.labels']) == list(ACTIONS)
    assert json.loads(meta['dmil_ros.components']) == list(COMPONENTS)
    assert PreprocessSpec.from_json(meta['dmil_ros.preprocess']) == cfg.preprocess
    assert meta['dmil_ros.kind'] == kind
    assert json.loads(meta['dmil_ros.training']) == {'note': 'test'}
    assert 'dmil_ros.version' in meta
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    assert [i.name for i in sess.get_inputs()] == ['image', 'lidar']
    assert [o.name for o in sess.get_outputs()] == list(OUTPUTS[kind])
    # dynamic batch: 1 and 5 frames, each equal to torch
    for b in (1, 5):
        got = dict(
            zip(
                OUTPUTS[kind],
                sess.run(None, {'image': data.image[:b], 'lidar': data.lidar[:b]}),
                strict=True,
            )
        )
        with torch.no_grad():
            ref = model(torch.from_numpy(data.image[:b]), torch.from_numpy(data.lidar[:b]))
        for name in OUTPUTS[kind]:
            np.testing.assert_allclose(got[name], ref[name].numpy(), atol=1e-5)
        assert got['probs'].shape == (b, 4)
    if kind == 'dmil':
        assert got['gates'].shape == (5, 4)
        assert got['sub_probs'].shape == (5, 4, 4)
    # evaluation runs on the exported graph
    m = evaluate_model(load_for_evaluation(path), data)
    assert 0.0 <= m['accuracy'] <= 1.0
    assert (m['gate_family_agreement'] is None) == (kind != 'dmil')


@pytest.mark.filterwarnings('error::torch.jit.TracerWarning')
def test_export_with_pid_heads(tmp_path: Path) -> None:
    """pid_lsmi / pid_broja are composed into the graph; ORT equals torch; atoms add up."""
    from dmil_ros.train.pid_heads import fit_pid_heads
    from dmil_ros.train.trainer import predict, train

    data = toy_arrays(400, 5)
    cfg = small_config('dmil', stage1_epochs=2)
    train(cfg, data, toy_arrays(64, 6), tmp_path / 'run', progress=False)
    from dmil_ros.train.checkpoint import load_model

    model, cfg, _ = load_model(tmp_path / 'run' / 'model.pt')
    out = predict(model, torch.from_numpy(data.image), torch.from_numpy(data.lidar))
    heads, summary = fit_pid_heads(out, data.action, pca_dim=4, n_clusters=6)
    assert summary['fit_frames'] == 400
    path = tmp_path / 'pid.onnx'
    report = export_onnx(
        model, cfg, path, {}, sample=(data.image[:32], data.lidar[:32]), pid_heads=heads
    )
    assert report['max_abs_diff_probabilities'] <= 1e-4
    assert report['max_scaled_diff'] <= 1e-4
    # the absolute bound is honoured or the excess reported, per output (review6 #8)
    diffs = report['max_abs_diff_per_output']
    assert set(diffs) == set(report['outputs'])
    over = {n: d for n, d in diffs.items() if d > 1e-4}
    assert report['unbounded_over_abs_tolerance'] == over
    assert set(over) <= {'pid_lsmi', 'pid_broja', 'feat_camera', 'feat_lidar'}
    assert report['outputs'][-2:] == ['pid_lsmi', 'pid_broja']
    # the PID heads' torch.diagonal / squeeze If nodes are gone (CUDA graphs refuse them)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert not ops & {'If', 'Loop', 'Scan'}, ops
    assert report['static_graph']['control_flow_left'] == []
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(None, {'image': data.image, 'lidar': data.lidar}), strict=True))
    for key in ('pid_lsmi', 'pid_broja'):
        assert got[key].shape == (400, 4)
        assert np.isfinite(got[key]).all()


@pytest.mark.parametrize('tolerance', [1e-4, 0.0])
def test_failed_export_names_the_output_and_keeps_the_previous_file(
    tolerance: float, tmp_path: Path
) -> None:
    """A NaN in a head other than ``probs`` fails the check (NaN slipped past max() before);
    a failing export, by NaN or by tolerance, leaves the file that was at ``path``."""
    from dmil_ros.train.errors import ExportError

    torch.manual_seed(0)
    cfg = small_config('dmil')
    model = build_model(cfg.model).eval()
    data = toy_arrays(8, 3)
    path = tmp_path / 'model.onnx'
    path.write_bytes(b'the good model')
    if tolerance > 0:
        with torch.no_grad():
            model.head_joint[-1].bias.fill_(float('nan'))  # probs_joint only: probs stays finite
        match = r"torch output\(s\) \['probs_joint'"
    else:
        match = 'onnxruntime differs from torch'  # float32 rounding > 0
    with pytest.raises(ExportError, match=match):
        export_onnx(model, cfg, path, {}, sample=(data.image, data.lidar), tolerance=tolerance)
    assert path.read_bytes() == b'the good model'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.onnx']


def test_pid_broja_is_fitted_on_frames_lsmi_refuses(tmp_path: Path) -> None:
    """Frames without some action (here only left / right): LSMI needs two frames of every
    action, BROJA-local does not, and the node reads pid_broja first. Both heads used to be
    dropped together; now pid_broja ships, the summary names the head left out and why, and
    the card speaks of the head that is there (review 22a #1)."""
    from dmil_ros.train.card import render_card
    from dmil_ros.train.errors import ExportError
    from dmil_ros.train.pid_heads import fit_pid_heads
    from dmil_ros.train.trainer import predict

    torch.manual_seed(0)
    cfg = small_config('dmil')
    model = build_model(cfg.model).eval()
    data = toy_arrays(120, 4, families=(0, 2))  # R and U_lidar: the action is left or right
    assert set(data.action.tolist()) == {1, 2}
    out = predict(model, torch.from_numpy(data.image), torch.from_numpy(data.lidar))
    heads, summary = fit_pid_heads(out, data.action, pca_dim=4, n_clusters=6)
    assert list(heads) == ['pid_broja']
    assert 'every class needs >= 2 samples' in summary['not_fitted']['pid_lsmi']
    assert 'lsmi' not in summary
    assert summary['broja']['clusters'] == 6
    path = tmp_path / 'broja.onnx'
    report = export_onnx(model, cfg, path, {}, sample=(data.image, data.lidar), pid_heads=heads)
    assert report['outputs'][-1] == 'pid_broja'
    assert 'pid_lsmi' not in report['outputs']
    limits = render_card('m', cfg.to_dict(), {'pid': summary}, report).split('## Limits')[1]
    assert '- `pid_broja`: per-frame estimates' in limits
    assert 'pid_lsmi' not in limits
    # neither head: one action only
    with pytest.raises(ExportError, match='neither pid_lsmi nor pid_broja can be fitted'):
        fit_pid_heads(out, np.ones_like(data.action))


def test_the_card_of_a_model_without_pid_heads_says_so() -> None:
    """It described pid_lsmi / pid_broja whatever the model's outputs (review 22a #1)."""
    from dmil_ros.train.card import render_card
    from dmil_ros.train.config import TrainConfig

    report = {'outputs': list(OUTPUTS['dmil']), 'max_abs_diff_probabilities': 0.0,
              'max_scaled_diff': 0.0, 'batch': 8, 'bytes': 10}  # fmt: skip
    limits = render_card('m', TrainConfig().to_dict(), {}, report).split('## Limits')[1]
    assert 'No PID heads (`pid_lsmi`, `pid_broja`)' in limits
    assert 'per-frame estimates' not in limits
    assert 'BROJA table' not in limits
    both = {**report, 'outputs': [*report['outputs'], 'pid_lsmi', 'pid_broja']}
    limits = render_card('m', TrainConfig().to_dict(), {}, both).split('## Limits')[1]
    assert '- `pid_lsmi` / `pid_broja`: per-frame estimates' in limits
    assert 'BROJA table' in limits
