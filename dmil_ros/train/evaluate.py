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

"""Evaluate ONNX models (the runtime's artefact, not the checkpoint) on labelled arrays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dmil_ros.actions import FAMILIES
from dmil_ros.runtime.model import F32, FusionModel
from dmil_ros.runtime.preprocess import PreprocessSpec
from dmil_ros.train.config import DataConfig, TrainConfig
from dmil_ros.train.dataset import Arrays
from dmil_ros.train.errors import TrainConfigError, TrainError
from dmil_ros.train.metrics import evaluate_predictions


def model_settings(model: FusionModel) -> tuple[DataConfig, PreprocessSpec]:
    """Data config and preprocess spec a model was trained with (defaults when absent), from
    the metadata its :class:`FusionModel` already read and checked."""
    meta = model.info.metadata
    data = DataConfig()
    if 'dmil_ros.config' in meta:
        try:
            data = TrainConfig.from_dict(json.loads(meta['dmil_ros.config'])).data
        except (json.JSONDecodeError, TrainConfigError) as exc:
            msg = (
                f'model {model.path!r}: metadata dmil_ros.config is not a training config ({exc})'
            )
            raise TrainError(msg) from exc
    return data, model.spec


EVALUATED_OUTPUTS = ('probs', 'probs_camera', 'probs_lidar', 'gates')


def load_for_evaluation(path: Path) -> FusionModel:
    """The model on the CPU (one thread per core), checked against the runtime's model contract
    (:class:`~dmil_ros.runtime.errors.ModelError` naming the file and the mismatch), fetching
    the outputs :func:`evaluate_model` reads."""
    model = FusionModel(path, provider='cpu', threads=0)
    model.outputs = tuple(n for n in EVALUATED_OUTPUTS if n in model.info.outputs)
    return model


def run_model(model: FusionModel, arrays: Arrays, batch: int = 256) -> dict[str, F32]:
    """The fetched outputs of ``model`` over the arrays, ``batch`` frames per call."""
    chunks: dict[str, list[F32]] = {n: [] for n in model.outputs}
    for i in range(0, len(arrays), batch):
        out = model.run(arrays.image[i : i + batch], arrays.lidar[i : i + batch])
        for name, value in out.items():
            chunks[name].append(value)
    return {n: np.concatenate(v) for n, v in chunks.items()}


def evaluate_model(model: FusionModel, arrays: Arrays) -> dict[str, Any]:
    out = run_model(model, arrays)
    return evaluate_predictions(
        out['probs'], arrays.action, arrays.family, probs_camera=out.get('probs_camera'),
        probs_lidar=out.get('probs_lidar'), gates=out.get('gates'),
    )  # fmt: skip


def _fmt(v: Any) -> str:
    return '    -' if v is None else f'{100 * v:5.1f}'


def comparison_table(results: dict[str, dict[str, Any]]) -> str:
    """Plain-text table: accuracy overall / per family, synergy indicator, gate agreement (%)."""
    head = ['model', 'acc', *FAMILIES, 'syn.ind', 'gate=fam']
    width = max(8, *(len(n) for n in results))
    lines = [f'{head[0]:<{width}} ' + ' '.join(f'{h:>8}' for h in head[1:])]
    for name, m in results.items():
        cells = [m['accuracy'], *(m['per_family'][f] for f in FAMILIES),
                 m['synergy_indicator'], m['gate_family_agreement']]  # fmt: skip
        lines.append(f'{name:<{width}} ' + ' '.join(f'{_fmt(c):>8}' for c in cells))
    return '\n'.join(lines)
