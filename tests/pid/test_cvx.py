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

"""cvx_pid: recovers analytic atoms on separable synthetic features; determinism; bad input."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from dmil_ros.pid import PIDInputError, exact_pid
from dmil_ros.pid.cvx import cvx_pid, fit_discretiser, suggest_n_clusters


def _bits_features(
    rng: np.random.Generator, n: int, rule: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two fair bits hidden in well-separated 3-D Gaussian clouds; labels from ``rule``."""
    a = rng.integers(0, 2, n)
    b = rng.integers(0, 2, n)
    centres = np.array([[-3.0, 0.5, 1.0], [3.0, -0.5, -1.0]])
    f1 = centres[a] + 0.3 * rng.standard_normal((n, 3))
    f2 = centres[b] @ np.diag([1.0, -2.0, 0.5]) + 0.3 * rng.standard_normal((n, 3))
    y = {'xor': a ^ b, 'and': a & b, 'copy': 2 * a + b, 'unq1': a}[rule]
    return f1, f2, y, a, b


@pytest.mark.parametrize(
    ('rule', 'atoms'),
    [
        ('xor', (0.0, 0.0, 0.0, 1.0)),
        ('and', (0.311278, 0.0, 0.0, 0.5)),
        ('copy', (0.0, 1.0, 1.0, 0.0)),
        ('unq1', (0.0, 1.0, 0.0, 0.0)),
    ],
)
def test_recovers_analytic_atoms_of_separable_features(rule: str, atoms: tuple) -> None:
    rng = np.random.default_rng(3)
    f1, f2, y, a, b = _bits_features(rng, 4000, rule)
    res = cvx_pid(f1, f2, y, n_clusters=2, seed=0)
    # The clouds are separable, so the clusters are the latent bits and the estimate is the
    # exact PID of the latent sample histogram ...
    latent = np.zeros((2, 2, int(y.max()) + 1))
    np.add.at(latent, (a, b, y), 1)
    np.testing.assert_allclose(res.pid.atoms, exact_pid(latent).atoms, atol=1e-8)
    # ... which is within sampling error of the analytic atoms.
    np.testing.assert_allclose(res.pid.atoms, atoms, atol=0.03)
    assert res.histogram.sum() == 4000
    assert res.histogram.shape[:2] == (2, 2)


def test_matches_exact_pid_of_its_own_histogram_and_assigns_training_points() -> None:
    rng = np.random.default_rng(5)
    f1, f2, y, _, _ = _bits_features(rng, 1500, 'and')
    res = cvx_pid(f1, f2, y, n_clusters=(3, 4), seed=1)
    ref = exact_pid(res.histogram)
    np.testing.assert_allclose(res.pid.atoms, ref.atoms, atol=1e-12)
    c1, c2 = res.assign(f1, f2)
    np.testing.assert_array_equal(c1, res.labels_1)
    np.testing.assert_array_equal(c2, res.labels_2)
    np.testing.assert_array_equal(res.classes, [0, 1])
    # The histogram is the count of (c1, c2, y) triples.
    counts = np.zeros_like(res.histogram)
    np.add.at(counts, (c1, c2, y), 1)
    np.testing.assert_array_equal(counts, res.histogram)


@pytest.mark.parametrize('pca_dim', [None, 2])
def test_assign_is_the_nearest_centroid_on_more_rows_than_one_chunk(pca_dim: int | None) -> None:
    """Brute force: the index of the centroid at the least Euclidean distance from each row's
    standardised (projected) features, over 9000 rows (rows are assigned in chunks of 4096).
    With two symmetric clusters a wrong distance only permutes labels; here there are five."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9000, 3)) + rng.integers(0, 4, (9000, 1)) * 3.0
    d = fit_discretiser(x, 5, pca_dim=pca_dim, seed=0)
    z = d.transform(x)
    brute = np.linalg.norm(z[:, None, :] - d.centroids[None], axis=2).argmin(axis=1)
    np.testing.assert_array_equal(d.assign(x), brute)


def test_deterministic_per_seed_and_pca_path() -> None:
    rng = np.random.default_rng(11)
    n = 800
    f1 = rng.standard_normal((n, 12))
    f2 = rng.standard_normal((n, 9))
    y = (f1[:, 0] + f2[:, 0] > 0).astype(int)
    a = cvx_pid(f1, f2, y, n_clusters=6, seed=4, pca_dim=5)
    b = cvx_pid(f1, f2, y, n_clusters=6, seed=4, pca_dim=5)
    np.testing.assert_array_equal(a.labels_1, b.labels_1)
    np.testing.assert_array_equal(a.histogram, b.histogram)
    assert a.pid.atoms == b.pid.atoms
    assert a.discretiser_1.components.shape == (5, 12)
    assert a.discretiser_1.centroids.shape == (6, 5)


def test_bias_estimate_and_cluster_rule() -> None:
    assert suggest_n_clusters(1000, 4) == 4
    assert suggest_n_clusters(10_000, 4) == 15
    assert suggest_n_clusters(10**6, 4) == 30
    assert suggest_n_clusters(10, 4) == 2
    rng = np.random.default_rng(0)
    f1, f2, y, _, _ = _bits_features(rng, 500, 'xor')
    res = cvx_pid(f1, f2, y)  # default k from the sample count
    k = suggest_n_clusters(500, 2)
    assert res.discretiser_1.n_clusters == k
    assert res.joint_bias_bits == pytest.approx((k * k - 1) / (2 * 500 * math.log(2)))


def test_plug_in_bias_inflates_synergy_on_independent_noise() -> None:
    # Y independent of both features: true atoms are 0, but the plug-in I(X1,X2;Y) of n samples
    # on k*k cells is chi-squared: 2 n ln2 I ~ chi2(k*k - 1) for binary Y, mean = the reported
    # first-order bias, relative sd sqrt(2 / 63) = 0.18 per draw, 0.05 over 12 draws. Measured:
    # mean 1.14x the first-order value (k-means cells of unequal size add higher-order bias).
    n, draws = 400, 12
    mi, synergy, bias = [], [], 0.0
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        res = cvx_pid(
            rng.standard_normal((n, 2)),
            rng.standard_normal((n, 2)),
            rng.integers(0, 2, n),
            n_clusters=8,
        )
        mi.append(res.pid.mi_12)
        synergy.append(res.pid.synergy)
        bias = res.joint_bias_bits
    assert min(synergy) > 0
    assert float(np.mean(mi)) == pytest.approx(bias, rel=0.25)


@pytest.mark.parametrize(
    ('args', 'match'),
    [
        ((np.ones((5, 2)), np.ones((4, 2)), np.zeros(5)), 'sample counts differ'),
        ((np.ones((5, 2)), np.ones((5, 2)), np.zeros((5, 1))), '1-D'),
        ((np.full((5, 2), np.nan), np.ones((5, 2)), np.zeros(5)), 'non-finite'),
        ((np.ones((1, 2)), np.ones((1, 2)), np.zeros(1)), 'at least 2'),
        ((np.ones((5, 0)), np.ones((5, 2)), np.zeros(5)), 'features_1'),
    ],
)
def test_bad_input(args: tuple, match: str) -> None:
    with pytest.raises(PIDInputError, match=match):
        cvx_pid(*args, n_clusters=2)


def test_assign_checks_width() -> None:
    rng = np.random.default_rng(0)
    f1, f2, y, _, _ = _bits_features(rng, 200, 'xor')
    res = cvx_pid(f1, f2, y, n_clusters=2)
    with pytest.raises(PIDInputError, match='feature dimensions'):
        res.assign(f1[:, :2], f2)


def test_n_clusters_tuple_must_name_two_sizes() -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 2))
    y = (f[:, 0] > 0).astype(np.int64)
    with pytest.raises(PIDInputError, match=r'n_clusters: expected an integer or a pair'):
        cvx_pid(f, f, y, n_clusters=(2, 2, 2))  # type: ignore[arg-type]
    assert cvx_pid(f, f, y, n_clusters=[2, 3]).histogram.shape[:2] == (2, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'n_clusters': 2.7}, 'n_clusters: expected an integer, got 2.7'),  # was truncated to 2
        ({'n_clusters': '5'}, "n_clusters: expected an integer, got '5'"),
        ({'n_clusters': (3.5, 4)}, 'n_clusters: expected an integer, got 3.5'),
        ({'n_clusters': True}, 'n_clusters: expected an integer, got True'),
        ({'pca_dim': 2.5}, 'pca_dim: expected an integer, got 2.5'),
        ({'n_init': 0}, 'n_init: must be >= 1, got 0'),
        ({'seed': -1}, 'seed: must be >= 0, got -1'),
    ],
)
def test_arguments_are_checked_by_name(kwargs: dict[str, object], match: str) -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 8))
    y = (f[:, 0] > 0).astype(np.int64)
    with pytest.raises(PIDInputError, match=re.escape(match)):
        cvx_pid(f, f, y, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PIDInputError, match='labels: NaN'):
        cvx_pid(f, f, np.where(y > 0, 1.0, np.nan), n_clusters=2)


def test_fewer_samples_than_pca_dimensions() -> None:
    # 4 frames of 16-d features (a tiny audit): PCA keeps at most 4 dimensions; the estimate
    # equals the one without PCA when k-means sees the same geometry (4 distinct points)
    rng = np.random.default_rng(0)
    f = rng.standard_normal((4, 16))
    y = np.array([0, 1, 0, 1])
    res = cvx_pid(f, f + 0.1, y, n_clusters=2)
    assert res.discretiser_1.components.shape == (4, 16)
    assert res.pid.mi_12 <= 1.0 + 1e-9


def test_object_labels_with_missing_values_are_refused() -> None:
    """A pandas object column: NaN never equals itself, so sorting made 380 classes of two
    labels (NaN, 1.0) and 3.9 bits of I(X1,X2;Y) from noise; None and mixed types do not
    sort (a raw TypeError). Review 22b #2."""
    rng = np.random.default_rng(0)
    f = rng.normal(size=(400, 2))
    y = np.array([np.nan if v else 1.0 for v in rng.random(400) < 0.5], dtype=object)
    with pytest.raises(PIDInputError, match=r'labels: \d+ missing values \(nan\)'):
        cvx_pid(f, f, y, n_clusters=2)
    with pytest.raises(PIDInputError, match=r'labels: .*None'):
        cvx_pid(f[:4], f[:4], np.array([None, 1, 1, 2], dtype=object), n_clusters=2)
    with pytest.raises(PIDInputError, match='labels: values that do not compare'):
        cvx_pid(f[:4], f[:4], np.array([1, 'a', 1, 'a'], dtype=object), n_clusters=2)
    words = np.array(['stop', 'left', 'stop', 'left'] * 10, dtype=object)
    assert cvx_pid(f[:40], f[:40], words, n_clusters=2).histogram.shape[2] == 2


def test_features_too_large_for_their_spread_are_refused() -> None:
    """std overflowed to inf, the column read as constant and the modality as one cluster
    (U1 0.98 -> 0 bit, unannounced). Review 22b #9."""
    rng = np.random.default_rng(0)
    f1, f2, y, _, _ = _bits_features(rng, 400, 'unq1')
    with pytest.raises(PIDInputError, match=r'features_1: values up to .* too large'):
        cvx_pid(f1 * 1e160, f2, y, n_clusters=2)


def test_discretisers_fitted_once_serve_other_labels_of_the_same_features() -> None:
    """One k-means pair, two targets (AND, then XOR of the same bits): each estimate equals
    the one that fits its own clusters (same seed) and is the exact PID of its histogram, and
    the clusters are the ones given."""
    rng = np.random.default_rng(7)
    f1, f2, y_and, b1, b2 = _bits_features(rng, 2000, 'and')
    y_xor = b1 ^ b2
    first = cvx_pid(f1, f2, y_and, n_clusters=2, seed=3)
    pair = (first.discretiser_1, first.discretiser_2)
    for y in (y_and, y_xor):
        shared = cvx_pid(f1, f2, y, discretisers=pair)
        own = cvx_pid(f1, f2, y, n_clusters=2, seed=3)
        assert shared.discretiser_1 is pair[0]
        assert shared.discretiser_2 is pair[1]
        np.testing.assert_array_equal(shared.histogram, own.histogram)
        np.testing.assert_allclose(shared.pid.atoms, exact_pid(shared.histogram).atoms)
    assert cvx_pid(f1, f2, y_xor, discretisers=pair).pid.atoms[3] > 0.9  # XOR: synergy


@pytest.mark.parametrize('bad', [(), ('a', 'b'), (None,)])
def test_discretisers_must_be_a_pair_of_discretisers(bad: tuple) -> None:
    x = np.arange(20.0)
    with pytest.raises(PIDInputError, match='discretisers: expected a pair of Discretiser'):
        cvx_pid(x, x, x % 2, discretisers=bad)


def test_discretisers_of_other_widths_are_refused_naming_the_modality() -> None:
    rng = np.random.default_rng(0)
    wide = fit_discretiser(rng.standard_normal((50, 3)), 2)
    narrow = rng.standard_normal((50, 2))
    with pytest.raises(PIDInputError, match='features_2: expected 3 feature dimensions'):
        cvx_pid(narrow, narrow, np.arange(50) % 2, discretisers=(fit_discretiser(narrow, 2), wide))
