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

"""Per-frame PID outputs composed into the exported graph: ``pid_lsmi`` and ``pid_broja``.

Both are fitted after training on the trained model's own features and heads (methods.md §2-3,
estimators from :mod:`dmil_ros.pid`, issue 4):

* ``pid_lsmi`` (B, 4): LSMI terms r, u_camera, u_lidar, s in bits for the *predicted* action,
  with the model's unimodal and joint heads as the discriminators p(y|x1), p(y|x2), p(y|x1,x2)
  (the ensemble uses its averaged prediction as the joint one) and KNIFE densities fitted on the
  features ``feat_camera`` / ``feat_lidar`` after a fixed standardise + PCA projection to
  ``pca_dim`` dimensions (KNIFE's full covariances need a low-dimensional, non-degenerate space:
  the raw features are ReLU outputs with many exact zeros); shifted by LSMI's dataset-level δ.
* ``pid_broja`` (B, 4): the BROJA-consistent local terms (nearest-centroid clusters of each
  modality's features, then the exact q* table) for the predicted action.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dmil_ros.errors import DmilError
from dmil_ros.train.errors import ExportError


def _projection(x: np.ndarray[Any, Any], dim: int) -> tuple[Tensor, Tensor]:
    """Standardise + PCA as one affine map: z = x @ w + b, (D, P) and (P,)."""
    mean = x.mean(0)
    std = x.std(0) + 1e-6
    xs = (x - mean) / std
    _, _, vt = np.linalg.svd(xs - xs.mean(0), full_matrices=False)
    proj = vt[:dim].T  # (D, P)
    w = proj / std[:, None]
    b = -(mean / std) @ proj
    return torch.as_tensor(w, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)


def _log(p: Tensor) -> Tensor:
    return torch.log(p.clamp_min(1e-12))


class LSMIHead(nn.Module):
    def __init__(
        self, proj: tuple[Tensor, Tensor, Tensor, Tensor], densities: nn.Module, terms: nn.Module
    ) -> None:
        super().__init__()
        self.w1, self.b1, self.w2, self.b2 = (nn.Parameter(t, requires_grad=False) for t in proj)
        self.densities = densities
        self.terms = terms

    def forward(self, out: dict[str, Tensor]) -> Tensor:
        f1 = out['feat_camera'] @ self.w1 + self.b1  # (B, P)
        f2 = out['feat_lidar'] @ self.w2 + self.b2  # (B, P)
        labels = out['probs'].argmax(dim=1)  # (B,) predicted action
        joint = out.get('probs_joint', out['probs'])
        h1, h2, h1y, h2y = self.densities(f1, f2)
        _, shifted = self.terms(
            _log(out['probs_camera']), _log(out['probs_lidar']), _log(joint),
            h1, h2, h1y, h2y, labels,
        )  # fmt: skip
        result: Tensor = shifted  # (B, 4) bits
        return result


class BROJAHead(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.local = module

    def forward(self, out: dict[str, Tensor]) -> Tensor:
        labels = out['probs'].argmax(dim=1)  # (B,)
        result: Tensor = self.local(out['feat_camera'], out['feat_lidar'], labels)
        return result  # (B, 4) bits


_Fitted = tuple[nn.Module, dict[str, Any]]  # a head and its summary


def _fit_lsmi(
    f1: np.ndarray[Any, Any],
    f2: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    outputs: dict[str, np.ndarray[Any, Any]],
    *,
    pca_dim: int,
    seed: int,
) -> _Fitted:
    from dmil_ros.pid.lsmi import LSMI, LSMIConfig

    w1, b1 = _projection(f1, pca_dim)
    w2, b2 = _projection(f2, pca_dim)
    p1 = (f1 @ w1.double().numpy()) + b1.double().numpy()
    p2 = (f2 @ w2.double().numpy()) + b2.double().numpy()
    joint = outputs.get('probs_joint', outputs['probs'])
    lsmi = LSMI(LSMIConfig(n_components=5, reg_covar=1e-3, seed=seed)).fit(
        p1, p2, y, probs_1=outputs['probs_camera'], probs_2=outputs['probs_lidar'],
        probs_12=joint, n_classes=joint.shape[1],
    )  # fmt: skip
    densities = lsmi.densities  # built on each access: once here
    if densities is None:
        msg = 'LSMI fit returned no densities'
        raise ExportError(msg)
    head = LSMIHead((w1, b1, w2, b2), densities, lsmi.terms_module()).eval()
    return head, {'pca_dim': pca_dim, 'kernels': 5, 'delta_bits': float(lsmi.delta)}


def _fit_broja(
    f1: np.ndarray[Any, Any],
    f2: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    n_classes: int,
    *,
    n_clusters: int,
    label_floor: float,
    seed: int,
) -> _Fitted:
    from dmil_ros.pid.broja_local import BROJALocal

    # label_floor: rare-label frames of a cluster (0.7 % here) let q* pair the dark-room camera
    # cluster with them and raised synergy alarms on LiDAR-only frames (broja_local notes)
    broja = BROJALocal(n_clusters=n_clusters, pca_dim=5, seed=seed, label_floor=label_floor).fit(
        f1, f2, y, n_classes=n_classes
    )
    pid: Any = broja.pid
    summary = {
        'clusters': n_clusters,
        'pca_dim': 5,
        'label_floor': label_floor,
        'dropped_frames': broja.dropped,
        'dataset_bits': {
            'redundancy': float(pid.redundancy),
            'unique_camera': float(pid.unique_1),
            'unique_lidar': float(pid.unique_2),
            'synergy': float(pid.synergy),
        },
    }
    return BROJAHead(broja.export_module()), summary


def _attempt(fit: Callable[[], _Fitted]) -> _Fitted | str:
    """A head's fit, or why it failed (the estimators refuse frames they cannot fit)."""
    try:
        return fit()
    except (DmilError, np.linalg.LinAlgError) as exc:  # e.g. LSMI: an action with < 2 frames
        return f'{type(exc).__name__}: {exc}'


def fit_pid_heads(
    outputs: dict[str, np.ndarray[Any, Any]],
    labels: np.ndarray[Any, Any],
    *,
    pca_dim: int = 8,
    n_clusters: int = 30,
    label_floor: float = 0.02,
    seed: int = 0,
) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Fit each head on eval-mode outputs of the training frames; returns heads and a summary.

    ``outputs``: feat_camera, feat_lidar, probs, probs_camera, probs_lidar (and probs_joint).
    The heads are fitted independently: LSMI needs two frames of every action, BROJA-local
    (the head the node reads first) does not, so frames without some action still get
    ``pid_broja``. A head that cannot be fitted is left out and named, with the reason, under
    ``not_fitted`` in the summary; :class:`ExportError` when neither can be.
    """
    f1, f2 = outputs['feat_camera'].astype(np.float64), outputs['feat_lidar'].astype(np.float64)
    y = labels.astype(np.int64)
    if len(np.unique(y)) < 2:
        msg = (
            f'PID heads: the {len(y)} fitting frames hold fewer than two actions '
            f'(counts {np.bincount(y).tolist()}): neither pid_lsmi nor pid_broja can be fitted'
        )
        raise ExportError(msg)
    n_classes = outputs['probs'].shape[1]
    heads: dict[str, nn.Module] = {}
    summary: dict[str, Any] = {'fit_frames': len(y)}
    failed: dict[str, str] = {}
    fits = {
        'pid_lsmi': ('lsmi', lambda: _fit_lsmi(f1, f2, y, outputs, pca_dim=pca_dim, seed=seed)),
        'pid_broja': ('broja', lambda: _fit_broja(
            f1, f2, y, n_classes, n_clusters=n_clusters, label_floor=label_floor, seed=seed
        )),
    }  # fmt: skip
    for name, (key, fit) in fits.items():
        result = _attempt(fit)
        if isinstance(result, str):
            failed[name] = result
        else:
            heads[name], summary[key] = result
    if not heads:
        reasons = '; '.join(f'{n}: {r}' for n, r in failed.items())
        msg = f'PID heads: neither could be fitted on the {len(y)} fitting frames ({reasons})'
        raise ExportError(msg)
    if failed:
        summary['not_fitted'] = failed
    return heads, summary
