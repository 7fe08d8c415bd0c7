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

"""Export a trained model to one ONNX graph (:mod:`dmil_ros.runtime.contract`) and check it.

Inputs ``image`` (B, 3, H, W) and ``lidar`` (B, 2, beams, bins) float32 exactly as
:mod:`dmil_ros.runtime.preprocess` prepares them; dynamic batch axis. Outputs, by model kind:

* dmil: probs, gates, sub_probs, probs_camera, probs_lidar, probs_joint, feat_camera,
  feat_lidar (+ pid_lsmi, pid_broja when per-frame PID modules are attached);
* joint: probs, probs_camera, probs_lidar, probs_joint, feat_camera, feat_lidar;
* ensemble: probs, probs_camera, probs_lidar, feat_camera, feat_lidar.

The graph is then freed of control flow that the weights and shapes fix
(:mod:`dmil_ros.train.static_graph`; ``static_graph`` in the report), so CUDA graphs can run it.

Checks: ``onnx.checker.check_model`` (full check, in ``make_static``) and onnxruntime against torch
on the same inputs: the largest absolute difference of every probability output (probs, gates,
sub_probs, unimodal / joint heads) must be <= ``tolerance`` (1e-4); unbounded outputs (features,
PID terms in bits, which can reach hundreds) must agree to ``tolerance`` relative to max(1, their
largest magnitude). Both figures are in the report, and every output whose absolute difference
exceeds ``tolerance`` (only unbounded ones can pass the check that way: float32 rounding of values
in the hundreds) is listed under ``unbounded_over_abs_tolerance`` and logged as a warning, so the
issue's absolute bound (1e-4) is bounded for probability outputs only and reported, not hidden, for
the others. Every output must be finite on both sides (a NaN difference would pass a ``<=``
test unnoticed). ``path`` is written (atomically) only when all checks pass.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dmil_ros import __version__
from dmil_ros.actions import ACTIONS, COMPONENTS
from dmil_ros.atomic import atomic_write_bytes
from dmil_ros.train.config import TrainConfig
from dmil_ros.train.errors import ExportError
from dmil_ros.train.static_graph import make_static

logger = logging.getLogger(__name__)

OUTPUTS: dict[str, tuple[str, ...]] = {
    'dmil': ('probs', 'gates', 'sub_probs', 'probs_camera', 'probs_lidar', 'probs_joint',
             'feat_camera', 'feat_lidar'),
    'joint': ('probs', 'probs_camera', 'probs_lidar', 'probs_joint', 'feat_camera',
              'feat_lidar'),
    'ensemble': ('probs', 'probs_camera', 'probs_lidar', 'feat_camera', 'feat_lidar'),
}  # fmt: skip
OPSET = 18
UNBOUNDED = frozenset({'feat_camera', 'feat_lidar', 'pid_lsmi', 'pid_broja'})


class ExportWrapper(nn.Module):
    """The model's dict outputs as a tuple, plus optional per-frame PID heads.

    ``pid_heads`` maps an output name (``pid_lsmi``, ``pid_broja``) to a module called with the
    model's output dict and returning a (B, 4) tensor.
    """

    def __init__(self, model: nn.Module, names: tuple[str, ...], pid_heads: dict[str, nn.Module]):
        super().__init__()
        self.model = model
        self.names = names
        self.pid_heads = nn.ModuleDict(pid_heads)

    def forward(self, image: Tensor, lidar: Tensor) -> tuple[Tensor, ...]:
        out = dict(self.model(image, lidar))
        for name, head in self.pid_heads.items():
            out[name] = head(out)
        return tuple(out[n] for n in self.names)


def output_names(kind: str, pid_heads: dict[str, nn.Module] | None = None) -> tuple[str, ...]:
    return OUTPUTS[kind] + tuple(pid_heads or {})


def check_finite(
    path: Path, side: str, outputs: dict[str, np.ndarray[Any, Any]], frames: str
) -> None:
    """:class:`ExportError` naming the outputs of ``side`` (torch, onnxruntime) that are not
    finite on ``frames`` (what they were computed on): a diverged checkpoint."""
    bad = [n for n, a in outputs.items() if not np.isfinite(a).all()]
    if bad:
        msg = (
            f'export {str(path)!r}: {side} output(s) {bad} not finite on the {frames} (a '
            f'diverged checkpoint?); {str(path)!r} left as it was'
        )
        raise ExportError(msg)


def export_onnx(
    model: nn.Module,
    config: TrainConfig,
    path: Path,
    training: dict[str, Any],
    *,
    sample: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None = None,
    pid_heads: dict[str, nn.Module] | None = None,
    tolerance: float = 1e-4,
    sample_name: str = 'frames',
) -> dict[str, Any]:
    """Write ``path`` and return the check report ``{'max_abs_diff': .., 'outputs': [..]}``.

    ``sample``: (image, lidar) arrays to compare on (real frames are best), which
    ``sample_name`` describes in the report (``'sample'``; e.g. ``'training frames'``); random
    inputs in the model's range are used when absent (``'sample'``: ``'random inputs'``).
    """
    import onnx
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    kind = config.model.kind
    heads = pid_heads or {}
    names = output_names(kind, heads)
    wrapper = ExportWrapper(model, names, heads).eval()
    if sample is None:
        sample_name = 'random inputs'
        rng = np.random.default_rng(0)
        sample = (
            rng.normal(0, 1, (8, *config.model.image_shape)).astype(np.float32),
            rng.uniform(0, 1, (8, *config.model.lidar_shape)).astype(np.float32),
        )
    image = torch.from_numpy(np.ascontiguousarray(sample[0][:64], np.float32))
    lidar = torch.from_numpy(np.ascontiguousarray(sample[1][:64], np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    # 1. trace to ONNX in a scratch directory (TorchScript exporter: plain ops, dynamic batch
    #    axis); ``path`` is written only once every check below has passed, so a failed export
    #    leaves the model that was there in place
    dyn = {n: {0: 'batch'} for n in ('image', 'lidar', *names)}
    with tempfile.TemporaryDirectory(prefix='dmil_ros_export_') as scratch:
        traced = Path(scratch) / 'model.onnx'
        with torch.no_grad():
            torch.onnx.export(
                wrapper, (image[:2], lidar[:2]), str(traced), input_names=['image', 'lidar'],
                output_names=list(names), dynamic_axes=dyn, opset_version=OPSET, dynamo=False,
            )  # fmt: skip
        proto = onnx.load(str(traced))
    # 2. metadata
    meta = {
        'dmil_ros.labels': json.dumps(list(ACTIONS)),
        'dmil_ros.components': json.dumps(list(COMPONENTS)),
        'dmil_ros.preprocess': config.preprocess.to_json(),
        'dmil_ros.kind': kind,
        'dmil_ros.training': json.dumps(training, sort_keys=True),
        'dmil_ros.version': __version__,
        'dmil_ros.config': config.to_json(),
        'dmil_ros.inputs': json.dumps({
            'image': ['B', *config.model.image_shape],
            'lidar': ['B', *config.model.lidar_shape],
        }),
    }  # fmt: skip
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = 'dmil_ros'
    proto.producer_version = __version__
    # 3. no control flow fixed by the weights and shapes (static_graph: the exporter writes If
    #    nodes for torch.diagonal and squeeze; CUDA graphs refuse them, every call runs them),
    #    then onnx.checker's full check (make_static runs it on the graph it returns)
    proto, static = make_static(proto, name=f'export {str(path)!r}')
    data = proto.SerializeToString()
    # 4. onnxruntime against torch on the same batch. Both must be finite first: NaN compares
    #    false, so a NaN difference would slip past max() and the tolerance test
    sess = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
    got = sess.run(list(names), {'image': image.numpy(), 'lidar': lidar.numpy()})
    with torch.no_grad():
        ref = [r.numpy() for r in wrapper(image, lidar)]
    for side, arrays in (('torch', ref), ('onnxruntime', got)):
        outputs = dict(zip(names, arrays, strict=True))
        check_finite(path, side, outputs, f'{int(image.shape[0])} check frames')
    diffs = {
        n: float(np.max(np.abs(g - r))) if g.size else 0.0
        for n, g, r in zip(names, got, ref, strict=True)
    }
    # unbounded outputs (features, PID terms in bits) are compared relative to their scale
    scaled = {
        n: d / max(1.0, float(np.max(np.abs(r)))) if n in UNBOUNDED and r.size else d
        for (n, d), r in zip(diffs.items(), ref, strict=True)
    }
    worst = max(scaled.values())
    over = {n: d for n, d in diffs.items() if d > tolerance}
    report = {
        'path': str(path),
        'outputs': list(names),
        'max_abs_diff': max(diffs.values()),
        'max_abs_diff_probabilities': max(d for n, d in diffs.items() if n not in UNBOUNDED),
        'max_scaled_diff': worst,
        'max_abs_diff_per_output': diffs,
        'max_scaled_diff_per_output': scaled,
        'unbounded_over_abs_tolerance': over,
        'batch': int(image.shape[0]),
        'sample': sample_name,
        'static_graph': {
            'nodes': [static.nodes_before, static.nodes_after],
            'inlined': list(static.inlined),
            'folded': list(static.folded),
            'control_flow_left': list(static.kept),
        },
        'bytes': len(data),
    }
    if not worst <= tolerance:
        msg = (
            f'export {str(path)!r}: onnxruntime differs from torch by {worst:.3g} > {tolerance} '
            f'(per output: {diffs}); {str(path)!r} left as it was'
        )
        raise ExportError(msg)
    atomic_write_bytes(path, data)
    if over:
        logger.warning(
            'export %s: max |ORT - torch| above %g (absolute) on unbounded outputs %s; '
            'within %g relative to their scale',
            path, tolerance, {n: f'{d:.3g}' for n, d in over.items()}, tolerance,
        )  # fmt: skip
    logger.info(
        'exported %s: %d bytes, max |ORT - torch| = %.3g on probabilities, %.3g overall',
        path, report['bytes'], report['max_abs_diff_probabilities'], report['max_abs_diff'],
    )  # fmt: skip
    return report
