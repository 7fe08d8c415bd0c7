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

"""Evaluation metrics shared by the trainer (validation) and ``dmil-ros evaluate`` (numpy only).

* accuracy overall and per scene family (frames whose family is known);
* synergy indicator (methods.md §4): share of frames where the multimodal prediction is right
  and both unimodal predictions are wrong (methods.md says an ensemble scores 0 "by
  construction"; that holds for a vote, not for the argmax of averaged probabilities, which can
  pick an action neither member picked: the shipped ensemble scores 1 of 4000 held-out frames);
* gate / family agreement: share of frames (family known) whose argmax gate is the family's
  component (R -> redundancy, U_camera -> unique_camera, U_lidar -> unique_lidar, S -> synergy);
* confusion matrix ``[true, predicted]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from dmil_ros.actions import ACTIONS, FAMILIES

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def _share(mask: npt.NDArray[np.bool_]) -> float | None:
    return float(mask.mean()) if mask.size else None


def evaluate_predictions(
    probs: F32,
    labels: I64,
    family: I64,
    *,
    probs_camera: F32 | None = None,
    probs_lidar: F32 | None = None,
    gates: F32 | None = None,
) -> dict[str, Any]:
    """Metrics of one model on one labelled set; ``family`` is -1 where unknown."""
    pred = probs.argmax(axis=1)  # (N,)
    right = pred == labels
    out: dict[str, Any] = {'frames': int(labels.size), 'accuracy': _share(right)}
    out['per_family'] = {name: _share(right[family == i]) for i, name in enumerate(FAMILIES)}
    out['frames_per_family'] = {name: int((family == i).sum()) for i, name in enumerate(FAMILIES)}
    if probs_camera is not None and probs_lidar is not None:
        wrong1 = probs_camera.argmax(axis=1) != labels
        wrong2 = probs_lidar.argmax(axis=1) != labels
        out['synergy_indicator'] = _share(right & wrong1 & wrong2)
        out['accuracy_camera'] = _share(~wrong1)
        out['accuracy_lidar'] = _share(~wrong2)
    else:
        out['synergy_indicator'] = None
    known = family >= 0
    if gates is not None and bool(known.any()):
        out['gate_family_agreement'] = _share(gates[known].argmax(axis=1) == family[known])
        out['mean_gates_per_family'] = {
            name: gates[family == i].mean(axis=0).round(4).tolist()
            for i, name in enumerate(FAMILIES)
            if bool((family == i).any())
        }
    else:
        out['gate_family_agreement'] = None
    k = len(ACTIONS)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    out['confusion'] = confusion.tolist()
    return out
