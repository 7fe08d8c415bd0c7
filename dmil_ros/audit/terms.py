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

"""Per-frame interaction terms of an audit: LSMI, BROJA-consistent local terms, GapScore.

Inputs per frame (all bags of the audit, concatenated): the model's action probabilities, the
unimodal conditionals p(y|x_camera), p(y|x_lidar) (unimodal heads, or calibrated masking), the
joint conditional, and one feature vector per modality (the model's ``feat_camera`` /
``feat_lidar`` when it has them, else the log of its unimodal conditionals).

**LSMI** (arXiv 2506.17248, methods.md §3; :class:`dmil_ros.pid.lsmi.LSMI`) with the model as the
discriminators and KNIFE densities fitted on the audit's own features:

* model level: target = the model's action, discriminators p(y|x_cam), p(y|x_lid), ``probs``;
* data level: target = the recorded action, discriminators p(y|x_cam), p(y|x_lid) and the joint
  head ``probs_joint`` (``probs`` when the model has no joint head): these estimate the data's
  conditionals, so the terms describe the data as the model sees it.

Kernels: 16 per mixture, not the reference code's 5: a mixture needs at least as many kernels as
the feature space has clusters (the simulator's pooled cues make 12 per modality). Measured on
an oracle audit of simulator frames: with 5 kernels the R frames' synergy spreads over ±4 bits,
with 16 its 5-95 % range is -0.9..0.3 bits and S segments stand out
(tests/audit/test_ground_truth.py).

Features go through standardisation and PCA to at most ``density_dims`` dimensions before the
densities are fitted (full-covariance kernels in 64-D on a few thousand frames are ill-posed).
Classes with fewer than two frames cannot get a class-conditional density: their frames get NaN.

**BROJA-consistent local terms** (:class:`dmil_ros.pid.broja_local.BROJALocal`, 'dual'
variant, the estimate issue 4's benchmark chose for the node's synergy alarm): cluster each
modality's features (standardise, PCA to 5, k-means), solve ``exact_pid`` on the histogram
p(c1, c2, y), and give every frame

    s = log2 p(y|c1,c2) - ℓ̃,  u_cam = ℓ̃ - log2 p(y|c2),  u_lid = ℓ̃ - log2 p(y|c1),
    r = log2 p(y|c1) + log2 p(y|c2) - log2 p(y) - ℓ̃

with ℓ̃ = log2 softmax_y(λ(c1,·) + μ(c2,·))[y] from the optimiser q* (the cluster histogram's
conditionals, as in the exported ``pid_broja`` head). Their means are the BROJA atoms up to one
dataset-level shift E_p[g] <= 0 (see that module); a frame whose action one sensor settles gets
s = 0, so ranking frames by s is meaningful. LSMI's per-frame values are I±_min, which gives a
frame one sensor settles the synergy of an XOR frame (methods.md §3), so they serve dataset
profiles, not frame rankings (issue 4's decision). The audit fits this
estimator for the data level (target: the recorded action) and for the model level (target: the
prediction; a model's own ``pid_broja`` head is fitted on recorded actions, so it is not model
level: see :mod:`dmil_ros.audit.merge`).

**GapScore** (methods.md §5, ICML 2026 decision-level PID), per frame from the model-level terms
r, u_cam, u_lid, s (bits) and the entropies H(.) (bits) of the three predictions:

1. I+ = [r]+ + [u_cam]+ + [u_lid]+ + [s]+
2. SR = [s]+ / (I+ + ε)                          synergy ratio
3. SC = max([u_cam]+, [u_lid]+) / (I+ + ε)        shortcut score: the unique information of the
   modality the decision leans on (the paper's "u_other"; our reading, stated here)
4. FP = [min(H(p_cam), H(p_lid)) - H(p_joint)]+  fusion potential
5. GapScore = (1 - SR)(1 - SC) FP

The audit feeds GapScore the model-level BROJA-local terms (LSMI when they could not be fitted;
see :mod:`dmil_ros.audit.merge`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dmil_ros.actions import ACTIONS
from dmil_ros.audit.errors import AuditInputError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
EPS = 1e-6


@dataclass(frozen=True)
class TermsConfig:
    """LSMI settings of the audit."""

    n_components: int = 16
    density_dims: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_components < 1 or self.density_dims < 1:
            msg = (
                f'terms: n_components={self.n_components!r}, density_dims='
                f'{self.density_dims!r} must be >= 1'
            )
            raise AuditInputError(msg)


@dataclass(frozen=True)
class LsmiResult:
    """Per-frame shifted LSMI terms ``(N, 4)`` (NaN where not defined) and the fit's δ."""

    terms: F64
    delta: float
    frames: int


def reduce_features(x: F64, dims: int) -> F64:
    """Standardise, then PCA to ``min(dims, D)`` dimensions (deterministic full SVD)."""
    x = np.asarray(x, np.float64)
    if x.shape[1] <= dims:
        std = x.std(0)
        return np.asarray((x - x.mean(0)) / np.where(std > 1e-9, std, 1.0), np.float64)
    z = (x - x.mean(0)) / np.where(x.std(0) > 1e-9, x.std(0), 1.0)
    # 1. principal axes by SVD of the standardised data; 2. sign fixed by the largest loading
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    axes = vt[:dims]  # (dims, D)
    signs = np.sign(axes[np.arange(dims), np.argmax(np.abs(axes), axis=1)])
    return np.asarray(z @ (axes * signs[:, None]).T, np.float64)


def _normalise(p: F64) -> F64:
    p = np.clip(np.asarray(p, np.float64), 1e-9, None)
    return np.asarray(p / p.sum(1, keepdims=True), np.float64)


def lsmi_frames(  # noqa: PLR0917 - the six per-frame arrays, in the estimator's order
    feat_camera: F64,
    feat_lidar: F64,
    target: I64,
    p_camera: F64,
    p_lidar: F64,
    p_joint: F64,
    config: TermsConfig | None = None,
) -> LsmiResult:
    """Shifted LSMI terms for each frame whose ``target`` >= 0 (others NaN)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from dmil_ros.pid.lsmi import LSMI, LSMIConfig  # scikit-learn: only when terms are computed

    cfg = config or TermsConfig()
    n = len(target)
    for name, a in (
        ('feat_camera', feat_camera),
        ('feat_lidar', feat_lidar),
        ('p_camera', p_camera),
        ('p_lidar', p_lidar),
        ('p_joint', p_joint),
    ):
        if a.shape[0] != n or not np.all(np.isfinite(a)):
            msg = f'terms: {name} has shape {a.shape}, expected {n} finite rows'
            raise AuditInputError(msg)
    out = np.full((n, 4), np.nan)
    counts = np.bincount(target[target >= 0], minlength=len(ACTIONS))
    kept = np.flatnonzero(counts >= 2)  # classes that get a class-conditional density
    rows = np.flatnonzero(np.isin(target, kept))
    if kept.size < 2 or rows.size < 2 * cfg.n_components:
        return LsmiResult(out, 0.0, 0)
    remap = np.full(len(ACTIONS), -1, np.int64)
    remap[kept] = np.arange(kept.size)
    y = remap[target[rows]]
    f1 = reduce_features(feat_camera[rows], cfg.density_dims)
    f2 = reduce_features(feat_lidar[rows], cfg.density_dims)
    probs = [_normalise(p[rows][:, kept]) for p in (p_camera, p_lidar, p_joint)]
    est = LSMI(LSMIConfig(n_components=cfg.n_components, seed=cfg.seed))
    heads = {'probs_1': probs[0], 'probs_2': probs[1], 'probs_12': probs[2]}
    # one BLAS/OpenMP thread: EM on small mixtures is 10-25x faster than with busy-waiting
    # thread pools on a shared 2-core machine (measured: 16 kernels, 1500 points, 3.7 s -> 0.15 s)
    with threadpool_limits(1):
        est.fit(f1, f2, y, n_classes=int(kept.size), **heads)
        pw = est.pointwise(f1, f2, y, **heads)
    out[rows] = np.column_stack(
        [pw.redundancy_shifted, pw.unique_1_shifted, pw.unique_2_shifted, pw.synergy_shifted]
    )
    return LsmiResult(out, float(pw.delta), int(rows.size))


@dataclass(frozen=True)
class BrojaResult:
    """Per-frame BROJA-local terms ``(N, 4)`` (NaN where not defined) and the fit's atoms."""

    terms: F64
    atoms: tuple[float, float, float, float] | None  # exact_pid of the cluster histogram
    frames: int
    n_clusters: int


BROJA_PCA_DIM = 5  # as the exported pid_broja head (dmil_ros.train.pid_heads)
BROJA_LABEL_FLOOR = 0.02  # likewise: rare-label frames of a cluster stay out of the histogram


def broja_frames(
    feat_camera: F64, feat_lidar: F64, target: I64, n_clusters: int, seed: int = 0
) -> BrojaResult:
    """BROJA-local 'dual' terms (bits) for each frame whose ``target`` >= 0 (others NaN).

    ``n_clusters`` per modality (capped by the distinct feature rows); cluster-histogram
    conditionals (see the module docstring).
    """
    from threadpoolctl import threadpool_limits

    from dmil_ros.pid.broja_local import BROJALocal

    n = len(target)
    out = np.full((n, 4), np.nan)
    for name, a in (('feat_camera', feat_camera), ('feat_lidar', feat_lidar)):
        if a.shape[0] != n or not np.all(np.isfinite(a)):
            msg = f'terms: {name} has shape {a.shape}, expected {n} finite rows'
            raise AuditInputError(msg)
    rows = np.flatnonzero(target >= 0)
    if n_clusters < 1 or rows.size < 2 * n_clusters or np.unique(target[rows]).size < 2:
        return BrojaResult(out, None, 0, n_clusters)
    est = BROJALocal(
        n_clusters=n_clusters,
        pca_dim=BROJA_PCA_DIM,
        seed=seed,
        variant='dual',
        label_floor=BROJA_LABEL_FLOOR,
    )
    f1 = np.asarray(feat_camera[rows], np.float64)
    f2 = np.asarray(feat_lidar[rows], np.float64)
    y = np.asarray(target[rows], np.int64)
    with threadpool_limits(1):
        est.fit(f1, f2, y, n_classes=len(ACTIONS))
        pw = est.pointwise(f1, f2, y)
    terms = np.column_stack([pw.redundancy, pw.unique_1, pw.unique_2, pw.synergy])  # (M, 4)
    terms[~pw.seen] = np.nan  # left out of the histogram by the label floor: no evidence
    out[rows] = terms
    pid = est.pid
    r, u1, u2, syn = (
        float(getattr(pid, k)) for k in ('redundancy', 'unique_1', 'unique_2', 'synergy')
    )
    atoms = (r, u1, u2, syn)
    return BrojaResult(out, atoms, int(rows.size), n_clusters)


def entropy_bits(p: F64) -> F64:
    """Row entropies of ``(N, C)`` probabilities, bits."""
    q = np.clip(np.asarray(p, np.float64), 1e-12, 1.0)
    return np.asarray(-(q * np.log2(q)).sum(axis=1), np.float64)


def gapscore(terms: F64, p_camera: F64, p_lidar: F64, p_joint: F64) -> F64:
    """``(N, 4)``: synergy ratio, shortcut score, fusion potential, GapScore (see module doc)."""
    pos = np.clip(np.nan_to_num(terms, nan=0.0), 0.0, None)  # (N, 4)
    total = pos.sum(axis=1) + EPS  # 1. I+
    sr = pos[:, 3] / total  # 2.
    sc = np.maximum(pos[:, 1], pos[:, 2]) / total  # 3.
    fp = np.clip(
        np.minimum(entropy_bits(p_camera), entropy_bits(p_lidar)) - entropy_bits(p_joint),
        0.0,
        None,
    )  # 4.
    gs = (1.0 - sr) * (1.0 - sc) * fp  # 5.
    out = np.column_stack([sr, sc, fp, gs])
    out[~np.isfinite(terms).all(axis=1)] = np.nan
    return np.asarray(out, np.float64)


__all__ = [
    'BrojaResult',
    'LsmiResult',
    'TermsConfig',
    'broja_frames',
    'entropy_bits',
    'gapscore',
    'lsmi_frames',
    'reduce_features',
]
