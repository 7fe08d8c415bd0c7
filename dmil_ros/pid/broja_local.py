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

"""Sample-level terms whose means are exactly the BROJA atoms (a BROJA-consistent LSMI variant).

Derivation (bits; p the data distribution, q* = argmin_{q ∈ Δp} I_q(X1,X2;Y), Bertschinger et al.
2014; Δp keeps q(x1,y) = p(x1,y) and q(x2,y) = p(x2,y)).

1. The objective f(q) = Σ q log q(y|x1,x2) has gradient log q(y|x1,x2). On the face of the
   polytope where q* lives (support S = {q* > 0}) the optimality condition says the gradient is
   orthogonal to every direction that keeps both pairwise marginals, i.e. lies in the span of the
   constraint functions: log q*(y|x1,x2) = a(x1,y) + b(x2,y) on S.
2. Let ℓ(x1,x2,y) = a(x1,y) + b(x2,y) be the q*-weighted least-squares fit of log2 q*(y|x1,x2)
   over S (exact on S at the optimum). Any function of (x1,y) plus one of (x2,y) has the same mean
   under p and q*, because they share those marginals; and the weighted LS residual is
   q*-orthogonal to constants, so E_q*[ℓ] = E_q*[log2 q*(y|x1,x2)] even for an inexact q*. Hence
   E_p[ℓ] = -H_q*(Y|X1,X2).
3. With BROJA U1 = I_q*(X1;Y|X2), U2 = I_q*(X2;Y|X1), R = I(X1;Y) - U1, S = I_p - I_q* and
   q*(y|x2) = p(y|x2), the per-sample terms

       s  = log2 p(y|x1,x2) - ℓ
       u1 = ℓ - log2 p(y|x2)
       u2 = ℓ - log2 p(y|x1)
       r  = log2 p(y|x1) + log2 p(y|x2) - log2 p(y) - ℓ

   have E_p[s] = S, E_p[u1] = U1, E_p[u2] = U2, E_p[r] = R exactly, and per sample
   r + u1 = i(x1;y), r + u2 = i(x2;y), r + u1 + u2 + s = i(x1,x2;y) (as LSMI's terms).

Where p(y|.) are the histogram conditionals of the discrete (clustered) variables the identity is
exact. For continuous features we cluster each modality (standardise, optional PCA, k-means; the
CVX recipe of Liang et al. 2023), solve ``exact_pid`` on the cluster histogram and look ℓ up by the
nearest-centroid cells; p(y|.) then come either from the histogram (``source='clusters'``) or from
discriminators (``source='discriminators'``, e.g. the DMIL heads; then E[s] also counts the
information the clustering loses). On a sample with a one-sensor decision (x1 alone fixes y)
q*(y|x1,x2) = p(y|x1) = 1, so s = 0: no synergy alarm from a redundant or unique frame.

Two variants of ℓ (``variant=``):

- ``'exact_mean'``: ℓ as in step 2 (un-normalised off supp(q*)); E_p[s] = S exactly.
- ``'dual'`` (the alarm's estimate): the normalised extension of q* off its support. The KKT
  conditions of the programme (its Lagrange dual, see :mod:`dmil_ros.pid.exact`) give, with dual
  variables λ(x1,y), μ(x2,y), log q*(y|x1,x2) = λ + μ on supp(q*) and
  g(x1,x2) = log Σ_y exp(λ + μ) <= 0 everywhere (= 0 on supp(q*)); λ = -inf where p(x1,y) = 0 and
  μ = -inf where p(x2,y) = 0. We recover (λ, μ) from q* by the weighted least squares of step 2
  (``exact_pid`` does not expose its dual) and use

      ℓ̃(x1,x2,y) = log2 softmax_y(λ(x1,·) + μ(x2,·))[y] = ℓ - g(x1,x2)

  a conditional distribution on every cell. Where q* pairs one family's camera cells with another
  family's LiDAR cells (a mixture of families sharing the labels), a sample's own cell lies off
  supp(q*) and the un-normalised ℓ extrapolates (UNQ2 frames got s = 1 bit in a 5-family mixture);
  ℓ̃ keeps s = 0 wherever one modality fixes y (the other's -inf). Means:
  E[s̃] = S + E_p[g], E[r̃] = R + E_p[g], E[ũm] = Um - E_p[g] (g in bits, E_p[g] <= 0 when (λ, μ)
  is dual feasible): one dataset-level shift, like LSMI's δ. On the discrete mixture
  RDN+UNQ1+UNQ2+UNQ1_WIDE+XOR (equal weights) BROJA gives S = 0.4 (0.2 of it from cross-family
  pairings), E_p[g] = -0.2 and the dual variant's means equal the per-family (block-conditioned)
  atoms R .2, U1 .4, U2 .2, S .2 exactly (tests/pid/test_broja_local.py). On AND/OR the dual
  variant's mean S is 0.25, not 0.5 (E_p[g] = -0.25 for every dual-feasible (λ, μ): the data
  cells (0,1), (1,0) lie off supp(q*), where one input alone fixes y and s = 0).

Label floor (``label_floor`` τ of :class:`BROJALocal`, default 0 = off; the exported alarm uses
0.02). On continuous features a few frames carry a label that is rare in their cluster (label
noise, cluster-boundary frames: 0.7 % of the shipped model's fitting frames, spread over all
families). They make p(y|c) of an otherwise deterministic cluster slightly impure, and q* uses
that freedom: it pairs an uninformative cluster (the dark-room camera, p(y|c1) ~ uniform) with
the rare-label mass of the LiDAR clusters, so q*(y|c1,c2) on the data cell (dark, layout) is
mixed (q*(c1,c2) 0.001 against p(c1,c2) 0.02) and the dual extension gives s = 0.4-2 bits on
frames that the LiDAR alone decides (U_lidar frames alerted at 92 %, mean s 0.73 bits, on a
seed-7 simulator bag). With τ > 0 ``fit`` leaves out of the histogram every frame whose label
has p(y|c_m) < τ in its own cluster of either modality (the clusters themselves are fitted on
all frames; labels never move them). The cleaned histogram is the ``joint`` of the table, so
the mean identities above hold for it exactly; frames of a synergistic (XOR) cluster have
p(y|c) ~ 1/2 and stay. Measured (shipped model refit, 8000 frames, seed-7 bag, monitor
defaults): U_lidar alerts 92 % -> 2 %, S 93 % -> 92 %, R and U_camera 5 % -> 3-4 %.

As noise grows (benchmarks/bench_pid_sample.py, 10k samples, 4-d codes at scale 4, 5-family
mixture): the dual variant ranks XOR frames above every other family with ROC AUC 1.000 at noise
0.1 and 0.5, >= 0.989 at 1.0; at 2.0 the clusters no longer follow the families, q* has full
support (E_p[g] = 0, the variants coincide) and the cross-family pairing is real in the
clustered histogram: AUC 0.40 against UNQ2, 0.81-0.86 against the others (LSMI: 0.55-0.84).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dmil_ros.pid.checks import check_seed, count, count_pair, real
from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.lsmi import check_inputs, check_widths, class_count, external_probs
from dmil_ros.pid.measures import normalise

if TYPE_CHECKING:
    from dmil_ros.pid.modules import BROJALocalModule

logger = logging.getLogger(__name__)

__all__ = ['VARIANTS', 'BROJALocal', 'LocalTable', 'dual_extension', 'local_table']

FloatArray = NDArray[np.float64]
_LN2 = math.log(2.0)
FLOOR = -60.0  # log2 floor for empty conditionals (bits)
_DUAL_FLOOR = -1.0e3  # λ, μ where p(x, y) = 0 (bits; finite so exports carry no inf)
VARIANTS = ('dual', 'exact_mean')


@dataclass(frozen=True)
class LocalTable:
    """Per-cell BROJA-local terms of a discrete p[x1, x2, y] (arrays like p; bits).

    ``ell`` = ℓ, ``log_p1`` = log2 p(y|x1) broadcast, etc. Terms are defined on every cell (also
    outside the support of p); ``mean_*`` are their expectations under p: the exact atoms for
    ``variant='exact_mean'``; for ``'dual'`` they differ from them by E_p[g]
    (:meth:`mean_deviation`; the module notes).
    """

    joint: FloatArray
    q: FloatArray
    ell: FloatArray
    log_p1: FloatArray  # (n1, ny)
    log_p2: FloatArray  # (n2, ny)
    log_p12: FloatArray  # (n1, n2, ny)
    log_prior: FloatArray  # (ny,)
    redundancy: FloatArray
    unique_1: FloatArray
    unique_2: FloatArray
    synergy: FloatArray
    variant: str = 'exact_mean'
    log_partition: FloatArray | None = None  # (n1, n2) g(x1,x2) in bits ('dual'), else None

    @functools.cached_property
    def support(self) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Where p(x1, y) > 0 ``(n1, ny)`` and p(x2, y) > 0 ``(n2, ny)``."""
        return self.joint.sum(1) > 0, self.joint.sum(0) > 0

    def mean_deviation(self) -> float:
        """E_p[g] (bits): E[s] - S of the 'dual' variant (0.0 for 'exact_mean')."""
        if self.log_partition is None:
            return 0.0
        return float(np.sum(self.joint.sum(2) * self.log_partition))

    def means(self) -> tuple[float, float, float, float]:
        p = self.joint
        return tuple(  # type: ignore[return-value]
            float(np.sum(p * a))
            for a in (self.redundancy, self.unique_1, self.unique_2, self.synergy)
        )


def _safe_log2(a: FloatArray) -> FloatArray:
    with np.errstate(divide='ignore', invalid='ignore'):
        out = np.log2(a)
    return np.where(np.isfinite(out), out, FLOOR)


def _fit_duals(q: FloatArray) -> tuple[FloatArray, FloatArray]:
    """q*-weighted LS fit a(x1,y) + b(x2,y) of log2 q*(y|x1,x2) over q* > 0.

    Returns ``a`` (n1, ny) and ``b`` (n2, ny), bits. The fit decouples over y (no unknown is
    shared between labels), so it is solved label by label: a (cells_y, n1 + n2) design each
    instead of one (cells, (n1 + n2) ny) design, ny^2 times less memory (64 x 64 x 10 at full
    support: 4 MB per label instead of 420 MB) and the same minimum-norm solution, since the
    minimum-norm solution of a block-diagonal system is that of each block.
    """
    n1, n2, ny = q.shape
    q12 = q.sum(2, keepdims=True)
    with np.errstate(divide='ignore', invalid='ignore'):
        target = np.log2(q / q12)  # (n1, n2, ny)
    a = np.zeros((n1, ny))
    b = np.zeros((n2, ny))
    for y in range(ny):
        i1, i2 = np.nonzero(q[:, :, y] > 0)  # (cells_y,) each
        if i1.size == 0:
            continue
        w = np.sqrt(q[i1, i2, y])  # (cells_y,)
        rows = np.arange(i1.size)
        design = np.zeros((i1.size, n1 + n2))  # columns: a(., y) then b(., y)
        design[rows, i1] = 1.0
        design[rows, n1 + i2] = 1.0
        coef, *_ = np.linalg.lstsq(design * w[:, None], target[i1, i2, y] * w, rcond=None)
        a[:, y], b[:, y] = coef[:n1], coef[n1:]
    return a, b


def _fit_ell(q: FloatArray) -> FloatArray:
    """Step 2: the fitted a(x1,y) + b(x2,y) on the whole (n1, n2, ny) grid."""
    a, b = _fit_duals(q)
    return np.asarray(a[:, None, :] + b[None, :, :], dtype=np.float64)  # (n1, n2, ny)


def dual_extension(joint: ArrayLike, q: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Dual variables (λ (n1, ny), μ (n2, ny), bits) recovered from q* (see the module notes).

    1. weighted LS of log2 q*(y|x1,x2) = λ(x1,y) + μ(x2,y) over supp(q*) (exact at the optimum)
    2. λ = floor where p(x1,y) = 0, μ = floor where p(x2,y) = 0 (the -inf of the KKT point)
    """
    p = normalise(joint, ndim=3, name='joint')
    qs = normalise(q, ndim=3, name='q')
    if qs.shape != p.shape:
        raise PIDInputError(f'q: shape {qs.shape} differs from joint {p.shape}')
    a, b = _fit_duals(qs)
    lam = np.where(p.sum(1) > 0, a, _DUAL_FLOOR)
    mu = np.where(p.sum(0) > 0, b, _DUAL_FLOOR)
    return np.asarray(lam, dtype=np.float64), np.asarray(mu, dtype=np.float64)


def _log2_softmax(a: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(a - g, g) with g = log2 Σ_y 2^a over the last axis."""
    top = a.max(-1, keepdims=True)
    g = top + np.log2(np.exp2(a - top).sum(-1, keepdims=True))
    return a - g, g[..., 0]


def local_table(
    joint: ArrayLike, q: ArrayLike | None = None, variant: str = 'exact_mean'
) -> LocalTable:
    """BROJA-local terms of a discrete joint; ``q`` = q* (``exact_pid`` is called if omitted).

    ``variant``: ``'exact_mean'`` (mean = BROJA atoms) or ``'dual'`` (normalised dual extension).
    """
    if variant not in VARIANTS:
        raise PIDInputError(f'variant: {variant!r} not in {VARIANTS}')
    p = normalise(joint, ndim=3, name='joint')
    if q is None:
        from dmil_ros.pid.exact import exact_pid

        q = exact_pid(p).q
    qs = normalise(q, ndim=3, name='q')
    if qs.shape != p.shape:
        raise PIDInputError(f'q: shape {qs.shape} differs from joint {p.shape}')
    log_partition: FloatArray | None = None
    if variant == 'dual':
        lam, mu = dual_extension(p, qs)
        ell, log_partition = _log2_softmax(lam[:, None, :] + mu[None, :, :])
        # λ (μ) at _DUAL_FLOOR give ℓ̃ ~ -1000 bits where log2 p(y|.) stops at FLOOR; one
        # floor for both (cells in supp(p) lie far above it: the means are unchanged)
        ell = np.maximum(ell, FLOOR)
    else:
        ell = _fit_ell(qs)
    py = p.sum((0, 1))  # (ny,)
    p1y = p.sum(1)  # (n1, ny)
    p2y = p.sum(0)  # (n2, ny)
    p12 = p.sum(2, keepdims=True)
    with np.errstate(divide='ignore', invalid='ignore'):  # 0 / 0: an x1 or x2 never seen
        lp1 = _safe_log2(p1y / p1y.sum(1, keepdims=True))  # log2 p(y|x1)
        lp2 = _safe_log2(p2y / p2y.sum(1, keepdims=True))
        cond12 = np.where(p12 > 0, p / p12, 0.0)
    # unseen (x1, x2): fall back to the normalised exp(ℓ) (s = 0 there for the 'dual' variant)
    fallback, _ = _log2_softmax(ell)
    lp12 = np.where(p12 > 0, _safe_log2(cond12), fallback)
    # a label p never shows with x1 or x2: log q*(y|x1,x2) is -inf and the terms undefined
    # (they read ~ +940 bits of r and s in the dual variant). No interaction evidence there:
    # ℓ := log2 p(y|x1,x2), so s = 0, and every term is bounded by the floors. These cells lie
    # outside supp(p): the means are unchanged
    impossible = (p1y == 0)[:, None, :] | (p2y == 0)[None, :, :]  # (n1, n2, ny)
    ell = np.where(impossible, lp12, ell)
    lpy = _safe_log2(py)
    b1 = lp1[:, None, :]
    b2 = lp2[None, :, :]
    r = b1 + b2 - lpy - ell
    return LocalTable(
        joint=p,
        q=qs,
        ell=ell,
        log_p1=lp1,
        log_p2=lp2,
        log_p12=lp12,
        log_prior=lpy,
        redundancy=r,
        unique_1=ell - b2,
        unique_2=ell - b1,
        synergy=lp12 - ell,
        variant=variant,
        log_partition=log_partition,
    )


_MAX_OFFSET: Final = 1e5  # |mean| / spread of a feature that float32 assignment resolves


@dataclass(frozen=True)
class BROJALocalPointwise:
    """Per-sample terms (N,) in bits and the cluster ids.

    ``seen``: the sample's (cluster, label) pairs of both modalities are in the fitted
    histogram. Where not (left out by ``label_floor``, or never met) the terms are bounded by
    the log floors (s = 0, but a unique term near -60 bits): no evidence, so leave those
    samples out of any average (the mean identities hold over the histogram's samples).
    """

    redundancy: FloatArray
    unique_1: FloatArray
    unique_2: FloatArray
    synergy: FloatArray
    cluster_1: NDArray[np.int64]
    cluster_2: NDArray[np.int64]
    seen: NDArray[np.bool_]


class BROJALocal:
    """Cluster both modalities, solve ``exact_pid`` on the histogram, give per-sample terms.

    ``n_clusters`` per modality, one int or a pair (default 30, the CVX recipe); ``pca_dim``
    (None: no PCA; the recipe uses 5); k-means on standardised features. ``variant``: ``'dual'``
    (default; the synergy alarm's estimate, chosen by benchmarks/bench_pid_sample.py) or
    ``'exact_mean'``; both are fitted, :meth:`pointwise` can ask for either. Fitting and
    evaluation run in numpy; ``module`` is the default variant's exportable torch module,
    ``export_module(v)`` each variant's. ``label_floor`` τ in
    [0, 1): frames whose label has p(y|c) < τ in their cluster of either modality are left out
    of the histogram (see the module notes; 0 keeps every frame). ``dropped`` counts them.
    """

    def __init__(
        self,
        n_clusters: int | tuple[int, int] = 30,
        pca_dim: int | None = None,
        seed: int = 0,
        n_init: int = 3,
        variant: str = 'dual',
        *,
        label_floor: float = 0.0,
    ) -> None:
        if not 0.0 <= real('label_floor', label_floor) < 1.0:
            raise PIDInputError(f'label_floor: {label_floor!r} not in [0, 1)')
        ks = count_pair('n_clusters', n_clusters)
        seed = check_seed('seed', seed)
        if pca_dim is not None:
            pca_dim = count('pca_dim', pca_dim)
        n_init = count('n_init', n_init)
        if variant not in VARIANTS:
            raise PIDInputError(f'variant: {variant!r} not in {VARIANTS}')
        self.variant = variant
        self.label_floor = float(label_floor)
        self.dropped = 0
        self.tables: dict[str, LocalTable] = {}
        self.maps: dict[str, FloatArray] = {}  # w_m (D_m, P_m), b_m (P_m,), centroids_m (K_m, P_m)
        self.n_clusters: tuple[int, int] = ks
        self.pca_dim = pca_dim
        self.seed = seed
        self.n_init = n_init
        self.table: LocalTable | None = None
        self.pid: object = None
        self._offsets: dict[str, float] = {}  # features_m -> max |mean| / spread of a column
        self._warned: set[int] = set()

    def _cluster(
        self, f: FloatArray, n_clusters: int, name: str
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        from sklearn.cluster import KMeans

        mean = f.mean(0)
        raw_std = f.std(0)
        std = raw_std + 1e-9
        # assign() maps f w + b in float32 (as the exported module): an offset of many spreads
        # cancels there (epoch seconds 1.7e9 over a 60 s step took U1 from 1 to 0.09 bit when
        # the fit's histogram was built that way, review 22b #5). The fit assigns in float64;
        # assign() warns. Constant columns (no spread) are harmless: their z is one value.
        spread = raw_std > 0
        offsets = np.abs(mean[spread]) / std[spread]
        self._offsets[name] = float(offsets.max()) if offsets.size else 0.0
        w = np.diag(1.0 / std)
        z = (f - mean) / std
        if self.pca_dim is not None and self.pca_dim < f.shape[1]:
            _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
            proj = vt[: self.pca_dim].T  # (D, P)
            w = w @ proj
            z = z @ proj
        k = min(n_clusters, len(np.unique(z, axis=0)))
        if k < 1:
            raise PIDInputError(f'{name}: no samples to cluster')
        km = KMeans(k, n_init=self.n_init, random_state=self.seed).fit(z)
        b = -mean @ w
        return w, b, np.asarray(km.cluster_centers_, dtype=np.float64)

    def _label_floor_mask(
        self,
        a1: NDArray[np.int64],
        a2: NDArray[np.int64],
        y: NDArray[np.integer],
        shape: tuple[int, int, int],
    ) -> NDArray[np.bool_]:
        """Frames kept in the histogram: p(y|c1) >= τ and p(y|c2) >= τ (all when τ = 0)."""
        keep = np.ones(len(y), dtype=bool)
        if self.label_floor <= 0.0:
            return keep
        n1, n2, nc = shape
        for a, k in ((a1, n1), (a2, n2)):
            counts = np.zeros((k, nc))  # (K_m, C)
            np.add.at(counts, (a, y), 1.0)
            share = counts / np.maximum(counts.sum(1, keepdims=True), 1.0)
            keep &= share[a, y] >= self.label_floor
        if not keep.any():
            raise PIDInputError(f'label_floor {self.label_floor}: no frame left to fit')
        return keep

    def fit(
        self,
        features_1: NDArray[np.floating],
        features_2: NDArray[np.floating],
        labels: NDArray[np.integer],
        n_classes: int | None = None,
    ) -> BROJALocal:
        from dmil_ros.pid.exact import exact_pid

        f1, f2, y = check_inputs(features_1, features_2, labels)
        if y is None:
            raise PIDInputError('labels: required to fit')
        nc = class_count(y, n_classes)
        w1, b1, c1 = self._cluster(f1, self.n_clusters[0], 'features_1')
        w2, b2, c2 = self._cluster(f2, self.n_clusters[1], 'features_2')
        self.maps = {
            'w1': w1, 'b1': b1, 'centroids1': c1, 'w2': w2, 'b2': b2, 'centroids2': c2,
        }  # fmt: skip
        # float64: the histogram stays exact for features far from 0 (assign() warns)
        a1, a2 = self._nearest(f1, 1, np.float64), self._nearest(f2, 2, np.float64)
        hist = np.zeros((len(c1), len(c2), nc))
        keep = self._label_floor_mask(a1, a2, y, (len(c1), len(c2), nc))  # (N,)
        self.dropped = int(len(y) - keep.sum())
        np.add.at(hist, (a1[keep], a2[keep], y[keep]), 1.0)
        res = exact_pid(hist)
        self.pid = res
        self.tables = {v: local_table(hist, res.q, variant=v) for v in VARIANTS}
        self.table = self.tables[self.variant]
        return self

    def _nearest(
        self, features: NDArray[np.floating], m: int, dtype: type[np.floating]
    ) -> NDArray[np.int64]:
        """Nearest centroid (N,) of modality ``m`` computed in ``dtype``: z = f w_m + b_m,
        then argmin_k |c_k|² - 2 z·c_k (|z|² dropped)."""
        w = self.maps[f'w{m}'].astype(dtype)  # (D, P)
        c = self.maps[f'centroids{m}'].astype(dtype)  # (K, P)
        z = np.asarray(features, dtype) @ w + self.maps[f'b{m}'].astype(dtype)  # (N, P)
        d = (c * c).sum(1)[None, :] - dtype(2.0) * (z @ c.T)  # (N, K)
        return np.asarray(np.argmin(d, axis=1), np.int64)

    def assign(self, features: NDArray[np.floating], m: int) -> NDArray[np.int64]:
        """Nearest-centroid cluster (N,) of modality ``m``'s features (N, D_m), in float32.

        float32 as the exported :class:`~dmil_ros.pid.modules.BROJALocalModule`, so that a
        frame lands in the same cell here and on the robot: z = f w_m + b_m, then
        argmin_k |c_k|² - 2 z·c_k (|z|² dropped).
        """
        offset = self._offsets.get(f'features_{m}', 0.0)
        if offset > _MAX_OFFSET and m not in self._warned:
            self._warned.add(m)
            logger.warning(
                'BROJALocal: features_%d lie %.3g spreads from 0: float32 assignment (as the '
                'exported module) cannot resolve them beyond %.0e; centre them first',
                m, offset, _MAX_OFFSET,
            )  # fmt: skip
        return self._nearest(features, m, np.float32)

    def pointwise(
        self,
        features_1: NDArray[np.floating],
        features_2: NDArray[np.floating],
        labels: NDArray[np.integer],
        *,
        probs_1: NDArray[np.floating] | None = None,
        probs_2: NDArray[np.floating] | None = None,
        probs_12: NDArray[np.floating] | None = None,
        variant: str | None = None,
    ) -> BROJALocalPointwise:
        """Per-sample terms; pass all three ``probs_*`` (N, C) to use discriminators.

        ``variant`` (default: the estimator's) picks ``'dual'`` or ``'exact_mean'``. The steps
        of :class:`~dmil_ros.pid.modules.BROJALocalModule`, in float32 as exported:

        1. c_m = nearest centroid of x_m; ℓ, log2 p(y|c1), log2 p(y|c2), log2 p(y|c1,c2) and
           log2 p(y) looked up in the table;
        2. with discriminators: their log2 p(y|.) replace the table's, and ℓ := log2 p(y|x1,x2)
           where the table never saw the label with c1 or c2 (s = 0 there, as in the table);
        3. r = lp1 + lp2 - log2 p(y) - ℓ, u1 = ℓ - lp2, u2 = ℓ - lp1, s = lp12 - ℓ.
        """
        if self.table is None:
            raise PIDInputError('BROJALocal: call fit() before pointwise()')
        v = self.variant if variant is None else variant
        if v not in VARIANTS:
            raise PIDInputError(f'variant: {v!r} not in {VARIANTS}')
        tab = self.tables[v]
        f1, f2, y = check_inputs(features_1, features_2, labels)
        if y is None:  # check_inputs returns labels whenever it is given some
            raise PIDInputError('labels: required')
        check_widths(f1, f2, (self.maps['w1'].shape[0], self.maps['w2'].shape[0]))
        nc = tab.ell.shape[2]
        if y.size and int(y.max()) >= nc:
            raise PIDInputError(f'labels: values must lie in [0, {nc})')
        # rows renormalised as LSMI does: a scaled row would shift every term
        given = external_probs((probs_1, probs_2, probs_12), len(f1), nc)
        # 1. table lookups
        c1, c2 = self.assign(f1, 1), self.assign(f2, 2)  # (N,) each
        f32 = np.float32
        ell = np.asarray(tab.ell[c1, c2, y], f32)  # (N,)
        lpy = np.asarray(tab.log_prior[y], f32)
        lp1 = np.asarray(tab.log_p1[c1, y], f32)
        lp2 = np.asarray(tab.log_p2[c2, y], f32)
        lp12 = np.asarray(tab.log_p12[c1, c2, y], f32)
        if given is not None:
            # 2. the discriminators' conditionals
            impossible = (lp1 <= FLOOR) | (lp2 <= FLOOR)  # (N,)
            rows = np.arange(len(y))
            lp1, lp2, lp12 = (
                np.asarray(np.log(np.maximum(p.astype(f32), f32(1e-12)))[rows, y] / f32(_LN2), f32)
                for p in given
            )
            ell = np.where(impossible, lp12, ell)
        # 3. the terms
        r = lp1 + lp2 - lpy - ell
        t = [np.asarray(a, np.float64) for a in (r, ell - lp2, ell - lp1, lp12 - ell)]
        on_1, on_2 = tab.support
        seen = on_1[c1, y] & on_2[c2, y]  # (N,)
        return BROJALocalPointwise(t[0], t[1], t[2], t[3], c1, c2, seen)

    # -- export ---------------------------------------------------------------------------------
    def export_module(self, variant: str | None = None) -> BROJALocalModule:
        """The fit (``variant``, default the estimator's) as an exportable torch module."""
        if self.table is None:
            raise PIDInputError('BROJALocal: call fit() before export_module()')
        from dmil_ros.pid.modules import BROJALocalModule

        tab = self.tables[self.variant if variant is None else variant]
        return BROJALocalModule(
            {
                **self.maps,
                'ell': tab.ell,
                'lp1': tab.log_p1,
                'lp2': tab.log_p2,
                'lp12': tab.log_p12,
                'log2_prior': tab.log_prior,
            }
        ).eval()

    @property
    def module(self) -> BROJALocalModule | None:
        """:meth:`export_module` of the default variant; None before :meth:`fit`."""
        return None if self.table is None else self.export_module()
