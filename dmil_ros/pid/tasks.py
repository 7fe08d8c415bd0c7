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

"""Synthetic continuous tasks with known PID atoms, for the sample-level estimators.

A task is a mixture of *families* f with weights w_f; each family is a discrete latent distribution
p_f[a1, a2, y] (the canonical catalogue: XOR, AND, OR, RDN, UNQ1, UNQ2, ...). The latent value of a
modality is tagged with its family, x_m = (f, a_m), so the task's latent joint is the block mixture

    p[x1, x2, y] = w_f p_f[a1, a2, y]   at x1 = (f, a1), x2 = (f, a2)

and every sample carries its family. Modality m embeds x_m in R^{D_m} as

    feature_m = scale_m * c_m[x_m] + noise_m * ε,    ε ~ N(0, I)

with fixed codes c_m[x] ~ N(0, I_D) / sqrt(D), picked far apart (farthest-point).

Ground truth: ``exact_pid`` (BROJA) and ``pointwise_pid`` (I±_min) on the latent joint, the
per-sample discrete I±_min terms at each sample's latent cell, and (``continuous_pointwise``) the
exact I±_min terms of the continuous features with their true Gaussian-mixture densities, which is
what LSMI (differential KNIFE densities) estimates.

Extra families defined here (not in the catalogue): ``UNQ1_WIDE`` / ``UNQ2_WIDE``: Y is a fair bit
copied from one modality, the other modality is an independent uniform variable over 8 values (a
higher-entropy irrelevant modality).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.pointwise import PointwisePID, pointwise_pid

__all__ = [
    'ModalitySpec',
    'Task',
    'TaskSample',
    'family_joint',
    'make_task',
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
_WIDE = 8


@dataclass(frozen=True)
class ModalitySpec:
    """Embedding of one modality: feature dimension, code scale and per-dimension noise std."""

    dim: int = 4
    scale: float = 4.0
    noise: float = 0.1

    def __post_init__(self) -> None:
        if self.dim < 1 or not self.scale > 0 or self.noise < 0:
            msg = f'ModalitySpec: dim {self.dim!r}, scale {self.scale!r}, noise {self.noise!r}'
            raise PIDInputError(msg)


def _wide(copy_first: bool) -> FloatArray:
    p = np.zeros((2, _WIDE, 2)) if copy_first else np.zeros((_WIDE, 2, 2))
    for a in range(2):
        for b in range(_WIDE):
            if copy_first:
                p[a, b, a] = 1.0
            else:
                p[b, a, a] = 1.0
    return np.asarray(p / p.sum(), dtype=np.float64)


def family_joint(name: str) -> FloatArray:
    """The latent p[a1, a2, y] of a family: the catalogue's, or UNQ1_WIDE / UNQ2_WIDE."""
    key = name.upper()
    if key == 'UNQ1_WIDE':
        return _wide(copy_first=True)
    if key == 'UNQ2_WIDE':
        return _wide(copy_first=False)
    from dmil_ros.pid import catalogue

    return np.asarray(catalogue.joint(key), dtype=np.float64)


@dataclass(frozen=True)
class TaskSample:
    """Samples of a task: features (N, D_m), labels, family index and latent indices (N,)."""

    features_1: FloatArray
    features_2: FloatArray
    labels: IntArray
    family: IntArray
    latent_1: IntArray
    latent_2: IntArray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Task:
    """A mixture task; build with :func:`make_task`."""

    families: tuple[str, ...]
    weights: tuple[float, ...]
    modality_1: ModalitySpec
    modality_2: ModalitySpec
    joint: FloatArray  # (n1, n2, ny) latent joint
    family_of_1: IntArray  # (n1,) family of each tagged latent value of modality 1
    codes_1: FloatArray  # (n1, D1)
    codes_2: FloatArray  # (n2, D2)
    seed: int = 0

    @cached_property
    def pointwise_truth(self) -> PointwisePID:
        """Exact I±_min of the latent joint."""
        return pointwise_pid(self.joint)

    @cached_property
    def exact_truth(self) -> object:
        """``exact_pid`` (BROJA) of the latent joint."""
        from dmil_ros.pid.exact import exact_pid

        return exact_pid(self.joint)

    def family_exact(self, name: str) -> object:
        """``exact_pid`` of one family's latent distribution alone."""
        from dmil_ros.pid.exact import exact_pid

        return exact_pid(family_joint(name))

    def sample(self, n: int, seed: int | None = None) -> TaskSample:
        """Draw ``n`` samples (cells of the latent joint, then Gaussian features)."""
        if n < 1:
            raise PIDInputError(f'n: {n!r} samples requested')
        rng = np.random.default_rng(self.seed + 1 if seed is None else seed)
        flat = self.joint.ravel()
        cells = rng.choice(flat.size, size=n, p=flat)
        x1, x2, y = np.unravel_index(cells, self.joint.shape)
        m1, m2 = self.modality_1, self.modality_2
        f1 = m1.scale * self.codes_1[x1] + m1.noise * rng.standard_normal((n, m1.dim))
        f2 = m2.scale * self.codes_2[x2] + m2.noise * rng.standard_normal((n, m2.dim))
        return TaskSample(
            features_1=f1,
            features_2=f2,
            labels=y.astype(np.int64),
            family=self.family_of_1[x1].astype(np.int64),
            latent_1=x1.astype(np.int64),
            latent_2=x2.astype(np.int64),
        )

    def discrete_pointwise(self, s: TaskSample) -> tuple[FloatArray, ...]:
        """Per-sample latent I±_min (r, u1, u2, s, pmi_1, pmi_2, pmi_12) at each sample's cell."""
        t = self.pointwise_truth
        idx = (s.latent_1, s.latent_2, s.labels)
        arrs = (t.redundancy, t.unique_1, t.unique_2, t.synergy, t.pmi_1, t.pmi_2, t.pmi_12)
        return tuple(np.asarray(a[idx], dtype=np.float64) for a in arrs)

    def continuous_pointwise(self, s: TaskSample) -> tuple[FloatArray, ...]:
        """Exact I±_min (r, u1, u2, s, pmi_1, pmi_2, pmi_12) of the continuous features, bits.

        Densities are the true mixtures p(f_m) = Σ_x p(x) N(f_m; scale c[x], noise² I) and
        p(f_m|y) = Σ_x p(x|y) N(...); p(y|f1, f2) from the joint mixture.
        """
        p = self.joint
        py = p.sum((0, 1))  # (ny,)
        p1y = p.sum(1) / py  # (n1, ny) = p(x1|y)
        p2y = p.sum(0) / py  # (n2, ny)
        ll1, ll2, lj = self._log_joint(s)
        with np.errstate(divide='ignore'):
            lp1y = np.log(p1y)
            lp2y = np.log(p2y)
        y = s.labels
        ln2 = np.log(2.0)
        h1 = -logsumexp(ll1 + np.log(p.sum((1, 2)))[None], axis=1) / ln2
        h2 = -logsumexp(ll2 + np.log(p.sum((0, 2)))[None], axis=1) / ln2
        h1y = -logsumexp(ll1 + lp1y.T[y], axis=1) / ln2
        h2y = -logsumexp(ll2 + lp2y.T[y], axis=1) / ln2
        i12 = (lj[np.arange(len(y)), y] - logsumexp(lj, axis=1) - np.log(py[y])) / ln2
        i1 = h1 - h1y
        i2 = h2 - h2y
        r = np.minimum(h1, h2) - np.minimum(h1y, h2y)
        return r, i1 - r, i2 - r, i12 - i1 - i2 + r, i1, i2, i12

    def posteriors(self, s: TaskSample) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Exact p(y|f1), p(y|f2), p(y|f1, f2) of the continuous features, (N, ny) each: the
        Bayes classifiers of the mixture (the ideal probs_1 / probs_2 / probs_12)."""
        p = self.joint
        ll1, ll2, lj = self._log_joint(s)
        with np.errstate(divide='ignore'):
            lp1, lp2 = np.log(p.sum(1)), np.log(p.sum(0))  # p(x1, y), p(x2, y)
        # log p(f, y) for every y, (N, ny), then normalised over y
        joint = (
            logsumexp(ll1[:, :, None] + lp1[None], axis=1),
            logsumexp(ll2[:, :, None] + lp2[None], axis=1),
            lj,
        )
        out = tuple(np.exp(j - logsumexp(j, axis=1, keepdims=True)) for j in joint)
        return out[0], out[1], out[2]

    def _log_joint(self, s: TaskSample) -> tuple[FloatArray, FloatArray, FloatArray]:
        """log N(f1; ...) (N, n1), log N(f2; ...) (N, n2) and log p(f1, f2, y) (N, ny)."""
        ll1 = self._log_kernel(s.features_1, self.codes_1, self.modality_1)  # (N, n1)
        ll2 = self._log_kernel(s.features_2, self.codes_2, self.modality_2)  # (N, n2)
        with np.errstate(divide='ignore'):
            lp = np.log(self.joint)  # (n1, n2, ny)
        lj = logsumexp(ll1[:, :, None, None] + ll2[:, None, :, None] + lp[None], axis=(1, 2))
        return ll1, ll2, lj

    @staticmethod
    def _log_kernel(f: FloatArray, codes: FloatArray, m: ModalitySpec) -> FloatArray:
        """log N(f; scale c[x], noise² I) for every latent value x, (N, n)."""
        if m.noise <= 0:
            raise PIDInputError('continuous_pointwise: needs noise > 0 in both modalities')
        d2 = ((f[:, None, :] - m.scale * codes[None]) ** 2).sum(-1)
        out = -0.5 * d2 / m.noise**2 - m.dim * (np.log(m.noise) + 0.5 * np.log(2 * np.pi))
        return np.asarray(out, dtype=np.float64)


def make_task(
    families: str | Mapping[str, float],
    modality_1: ModalitySpec | None = None,
    modality_2: ModalitySpec | None = None,
    seed: int = 0,
) -> Task:
    """Build a task from a family name or {name: weight} (weights normalised)."""
    mix = {families: 1.0} if isinstance(families, str) else dict(families)
    if not mix or any(not w > 0 for w in mix.values()):
        raise PIDInputError(f'families: need positive weights, got {mix!r}')
    total = float(sum(mix.values()))
    names = tuple(mix)
    weights = tuple(float(mix[k]) / total for k in names)
    joints = [family_joint(k) for k in names]
    n1 = sum(j.shape[0] for j in joints)
    n2 = sum(j.shape[1] for j in joints)
    ny = max(j.shape[2] for j in joints)
    joint = np.zeros((n1, n2, ny))
    fam1 = np.zeros(n1, dtype=np.int64)
    o1 = o2 = 0
    for k, (j, w) in enumerate(zip(joints, weights, strict=True)):
        a, b, c = j.shape
        joint[o1 : o1 + a, o2 : o2 + b, :c] = w * j / j.sum()
        fam1[o1 : o1 + a] = k
        o1, o2 = o1 + a, o2 + b
    m1 = modality_1 or ModalitySpec()
    m2 = modality_2 or ModalitySpec()
    rng = np.random.default_rng(seed)
    codes_1 = _spread_codes(rng, n1, m1.dim)
    codes_2 = _spread_codes(rng, n2, m2.dim)
    return Task(names, weights, m1, m2, joint, fam1, codes_1, codes_2, seed)


def _spread_codes(rng: np.random.Generator, n: int, dim: int) -> FloatArray:
    """n codes from N(0, I/D), picked greedily (farthest point) from 32n candidates."""
    cand = rng.standard_normal((32 * n, dim)) / np.sqrt(dim)
    chosen = [0]
    dist = ((cand - cand[0]) ** 2).sum(1)
    for _ in range(n - 1):
        k = int(np.argmax(dist))
        chosen.append(k)
        dist = np.minimum(dist, ((cand - cand[k]) ** 2).sum(1))
    return np.asarray(cand[chosen], dtype=np.float64)
