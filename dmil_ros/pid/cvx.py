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

"""CVX dataset-level PID estimator for continuous features (Liang et al., NeurIPS 2023).

"Quantifying & Modeling Multimodal Interactions: An Information Decomposition Framework",
Liang, Cheng, Fan, Ling, Nie, Chen, Deng, Allen, Auerbach, Mahmood, Salakhutdinov, Morency
(2023), §3.1:

1. Discretise each modality m: standardise the features (zero mean, unit variance per
   dimension), optionally project on the first ``pca_dim`` principal components (their recipe:
   5), and cluster with k-means (their recipe: 30 clusters); c_m = nearest centroid.
2. Histogram the empirical joint p̂(c1, c2, y) = #{i: c1_i, c2_i, y_i} / N.
3. Solve the BROJA programme exactly on p̂ (:func:`dmil_ros.pid.exact.exact_pid`).

Plug-in bias. The atoms are functionals of p̂, not of the true p. Mutual information estimated
by plug-in is biased upwards; to first order (Miller 1955; Paninski 2003, Neural Comput. 15)

    E[Î(A;B)] - I(A;B) ≈ (|A| - 1)(|B| - 1) / (2 N ln 2)  bits,

so I(C1,C2;Y) is inflated by about (k1 k2 - 1)(|Y| - 1) / (2 N ln 2) and I(Ci;Y) by
(ki - 1)(|Y| - 1) / (2 N ln 2). The excess of the joint term over the unimodal ones lands mostly
in synergy (empty or singleton cells make Y look predictable from (c1, c2) only). The estimate
``joint_bias_bits`` is reported with every result. Choosing k: the discretisation also loses
information (too few clusters merge what predicts Y), so k should be as large as the bias
allows. :func:`suggest_n_clusters` takes the largest k with k^2 (|Y| - 1) / (2 N ln 2) below a
bias budget (default 0.05 bits), i.e. k ~ sqrt(0.069 N / (|Y| - 1)), within [2, 30]: N = 1,000
and 4 classes give 4 clusters, N = 10,000 give 15, N >= 39,000 reach the paper's 30.

Deterministic for a given ``seed`` (k-means initialisation, PCA solver 'full').
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dmil_ros.pid.checks import check_seed, count, count_pair, in_range
from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.exact import PIDResult, exact_pid

__all__ = ['CVXResult', 'Discretiser', 'cvx_pid', 'fit_discretiser', 'suggest_n_clusters']

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_ASSIGN_CHUNK = 4096


@dataclass(frozen=True, eq=False)
class Discretiser:
    """Fitted discretisation of one modality: z = ((x - mean) / scale) @ components', then the
    nearest of ``centroids`` (k, d). ``components`` is (d, D), the identity when no PCA."""

    mean: FloatArray
    scale: FloatArray
    components: FloatArray
    centroids: FloatArray

    @property
    def n_clusters(self) -> int:
        return int(self.centroids.shape[0])

    def transform(self, features: ArrayLike, name: str = 'features') -> FloatArray:
        """Standardised (and projected) features, (N, d)."""
        x = _as_features(features, name, dim=self.mean.shape[0])
        return np.asarray(((x - self.mean) / self.scale) @ self.components.T, dtype=np.float64)

    def assign(self, features: ArrayLike, name: str = 'features') -> IntArray:
        """Nearest-centroid cluster index of each row, (N,); errors name ``name``."""
        z = self.transform(features, name)
        out = np.empty(z.shape[0], dtype=np.int64)
        c2 = (self.centroids**2).sum(axis=1)  # (k,)
        for start in range(0, z.shape[0], _ASSIGN_CHUNK):
            block = z[start : start + _ASSIGN_CHUNK]  # (B, d)
            dist = c2[None, :] - 2.0 * block @ self.centroids.T  # (B, k), up to |z|^2
            out[start : start + block.shape[0]] = np.argmin(dist, axis=1)
        return out


@dataclass(frozen=True, eq=False)
class CVXResult:
    """CVX estimate: the exact PID of the cluster histogram plus the clustering used.

    ``histogram`` is the count array [c1, c2, y] (classes in the order of ``classes``);
    ``joint_bias_bits`` the first-order plug-in bias of I(C1,C2;Y) (see the module notes).
    """

    pid: PIDResult
    labels_1: IntArray
    labels_2: IntArray
    classes: NDArray[np.generic]
    histogram: NDArray[np.int64]
    discretiser_1: Discretiser
    discretiser_2: Discretiser
    joint_bias_bits: float

    def assign(self, features_1: ArrayLike, features_2: ArrayLike) -> tuple[IntArray, IntArray]:
        """Cluster indices of new samples of both modalities."""
        return self.discretiser_1.assign(features_1), self.discretiser_2.assign(features_2)


def suggest_n_clusters(
    n_samples: int, n_classes: int, bias_bits: float = 0.05, max_clusters: int = 30
) -> int:
    """Largest k in [2, max_clusters] with k^2 (n_classes - 1) / (2 N ln 2) <= bias_bits."""
    n_samples = count('n_samples', n_samples)
    n_classes = count('n_classes', n_classes)
    bias_bits = in_range('bias_bits', bias_bits, lambda v: v > 0)  # finite too
    max_clusters = count('max_clusters', max_clusters, minimum=2)
    k = math.floor(math.sqrt(2.0 * n_samples * math.log(2.0) * bias_bits / max(n_classes - 1, 1)))
    return int(min(max(k, 2), max_clusters))


def fit_discretiser(
    features: ArrayLike,
    n_clusters: int,
    *,
    pca_dim: int | None = 5,
    seed: int = 0,
    n_init: int = 3,
    name: str = 'features',
) -> Discretiser:
    """Standardise, optionally PCA to ``pca_dim`` dimensions, and fit k-means (scikit-learn)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    x = _as_features(features, name)
    n_clusters = count('n_clusters', n_clusters)
    n_init = count('n_init', n_init)
    seed = check_seed('seed', seed)
    if pca_dim is not None:
        pca_dim = count('pca_dim', pca_dim)
    mean = x.mean(axis=0)
    with np.errstate(over='ignore'):  # an overflow is refused just below
        std = x.std(axis=0)
    if not np.isfinite(std).all():  # squares beyond 1.8e308: the column would read as constant
        msg = f'{name}: values up to {np.abs(x).max():.3g} too large for their spread (rescale)'
        raise PIDInputError(msg)
    scale = np.where(std > 0, std, 1.0)
    z = (x - mean) / scale  # (N, D)
    dim = z.shape[1]
    # N samples span at most N dimensions (PCA refuses more: a tiny audit asked for 5 of 4)
    d = dim if pca_dim is None else min(pca_dim, len(z))
    if d < dim:
        pca = PCA(n_components=d, svd_solver='full', random_state=seed).fit(z)
        components = np.asarray(pca.components_, dtype=np.float64)  # (d, D)
        # PCA centres on the (already zero) mean; keep the projection linear.
    else:
        components = np.eye(dim)
    zp = z @ components.T  # (N, d)
    distinct = np.unique(zp, axis=0).shape[0]
    k = min(n_clusters, distinct)
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(zp)
    centroids = np.asarray(km.cluster_centers_, dtype=np.float64)  # (k, d)
    return Discretiser(mean=mean, scale=scale, components=components, centroids=centroids)


def _classes(y: NDArray[Any]) -> tuple[NDArray[Any], IntArray]:
    """The distinct labels and each sample's index among them.

    An object array (a pandas column) is checked first: NaN is unequal to itself, so sorting
    split two labels (NaN, 1.0) into 380 classes, and None or mixed types do not sort.
    """
    if y.dtype == object:
        missing = [v for v in y if v is None or v != v]  # noqa: PLR0124 (NaN != NaN)
        if missing:
            msg = f'labels: {len(missing)} missing values ({missing[0]!r})'
            raise PIDInputError(msg)
    try:
        classes, index = np.unique(y, return_inverse=True)
    except TypeError as exc:
        msg = f'labels: values that do not compare with each other ({exc})'
        raise PIDInputError(msg) from exc
    return classes, index.astype(np.int64)


def cvx_pid(
    features_1: ArrayLike,
    features_2: ArrayLike,
    labels: ArrayLike,
    n_clusters: int | tuple[int, int] | None = None,
    *,
    pca_dim: int | None = 5,
    seed: int = 0,
    n_init: int = 3,
    discretisers: tuple[Discretiser, Discretiser] | None = None,
) -> CVXResult:
    """CVX estimate of the BROJA atoms of (features_1, features_2; labels) in bits.

    ``n_clusters``: one k for both modalities, a pair (k1, k2), or None for
    :func:`suggest_n_clusters` (plug-in bias budget 0.05 bits).
    ``discretisers``: a pair fitted before (:func:`fit_discretiser`, or a result's
    ``discretiser_1`` / ``discretiser_2``), to estimate other labels of the same features on the
    same clusters without fitting k-means again; ``n_clusters``, ``pca_dim``, ``seed`` and
    ``n_init`` are then not used.
    """
    x1 = _as_features(features_1, 'features_1')
    x2 = _as_features(features_2, 'features_2')
    y = np.asarray(labels)
    if y.ndim != 1:
        msg = f'labels: expected a 1-D array, got shape {y.shape}'
        raise PIDInputError(msg)
    n = y.shape[0]
    if x1.shape[0] != n or x2.shape[0] != n:
        msg = (
            f'features_1, features_2, labels: sample counts differ '
            f'({x1.shape[0]}, {x2.shape[0]}, {n})'
        )
        raise PIDInputError(msg)
    if n < 2:
        msg = f'labels: need at least 2 samples, got {n}'
        raise PIDInputError(msg)
    if y.dtype.kind == 'f' and not np.isfinite(y).all():
        msg = 'labels: NaN or infinite values'
        raise PIDInputError(msg)
    classes, y_idx = _classes(y)
    if discretisers is not None:
        if len(discretisers) != 2 or not all(isinstance(d, Discretiser) for d in discretisers):
            msg = f'discretisers: expected a pair of Discretiser, got {discretisers!r:.80}'
            raise PIDInputError(msg)
        d1, d2 = discretisers
    else:
        if n_clusters is None:
            k1 = k2 = suggest_n_clusters(n, len(classes))
        else:
            k1, k2 = count_pair('n_clusters', n_clusters)
        d1 = fit_discretiser(x1, k1, pca_dim=pca_dim, seed=seed, n_init=n_init, name='features_1')
        d2 = fit_discretiser(x2, k2, pca_dim=pca_dim, seed=seed, n_init=n_init, name='features_2')
    c1, c2 = d1.assign(x1, 'features_1'), d2.assign(x2, 'features_2')
    hist = np.zeros((d1.n_clusters, d2.n_clusters, len(classes)), dtype=np.int64)
    np.add.at(hist, (c1, c2, y_idx), 1)
    pid = exact_pid(hist)
    bias = (d1.n_clusters * d2.n_clusters - 1) * (len(classes) - 1) / (2.0 * n * math.log(2.0))
    return CVXResult(
        pid=pid,
        labels_1=c1,
        labels_2=c2,
        classes=classes,
        histogram=hist,
        discretiser_1=d1,
        discretiser_2=d2,
        joint_bias_bits=float(bias),
    )


def _as_features(features: ArrayLike, name: str, dim: int | None = None) -> FloatArray:
    """(N, D) float64 view of 1-D or 2-D features, validated (finite, right width)."""
    try:
        x = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        msg = f'{name}: cannot be read as a float array ({exc})'
        raise PIDInputError(msg) from exc
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        msg = f'{name}: expected a non-empty (N, D) array, got shape {x.shape}'
        raise PIDInputError(msg)
    if dim is not None and x.shape[1] != dim:
        msg = f'{name}: expected {dim} feature dimensions, got {x.shape[1]}'
        raise PIDInputError(msg)
    if not np.all(np.isfinite(x)):
        row = int(np.argwhere(~np.isfinite(x))[0, 0])
        msg = f'{name}: non-finite value in row {row}'
        raise PIDInputError(msg)
    return x
