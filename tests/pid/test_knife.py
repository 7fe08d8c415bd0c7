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

"""KNIFE: densities against scipy's, scale equivariance, the kernel cap; the torch twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.knife import Mixtures, fit_mixtures
from dmil_ros.pid.modules import KNIFE


def _module_bits(model: KNIFE, x: np.ndarray, dtype: torch.dtype = torch.float64) -> np.ndarray:
    with torch.no_grad():
        return model.to(dtype)(torch.as_tensor(x, dtype=dtype)).double().numpy()


def _scipy_bits(mix: Mixtures, x: np.ndarray, group: int) -> np.ndarray:
    """-log2 p(x) of the fitted mixture, mapped back to raw coordinates, by scipy."""
    c, s = mix.center, mix.scale
    log_w = mix.log_weights[group] - logsumexp(mix.log_weights[group])  # (K,)
    terms = []
    for k in range(mix.n_components):
        p = np.triu(mix.prec_chol[group, k])  # (D, D) upper triangular
        cov_std = np.linalg.inv(p @ p.T)  # covariance in standardised coordinates
        mean = c + s * mix.means[group, k]
        cov = cov_std * np.outer(s, s)
        terms.append(log_w[k] + multivariate_normal(mean, cov).logpdf(x))
    return -logsumexp(np.stack(terms), axis=0) / math.log(2.0)


def test_density_matches_scipy_in_raw_coordinates() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(5.0, 0.2, (300, 2)), rng.normal(-3.0, 2.0, (300, 2))])
    y = np.repeat([0, 1], 300)
    mix = fit_mixtures(x, y, 2, n_components=3)
    grid = rng.normal(0.0, 4.0, (200, 2))
    got = mix.bits(grid)  # (200, 2)
    for g in range(2):
        np.testing.assert_allclose(got[:, g], _scipy_bits(mix, grid, g), rtol=1e-9, atol=1e-9)


def test_the_torch_module_computes_the_numpy_densities() -> None:
    # the exported twin (run in float64) against the estimator on the module's own parameters
    # (stored as float32, as exported), on and off the data; and those parameters' rounding
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 3)) * [1.0, 0.2, 5.0] + [0.0, 3.0, -1.0]
    y = (x[:, 0] > 0).astype(np.int64)
    mix = fit_mixtures(x, y, 2, n_components=3)
    model = KNIFE.from_mixtures(mix)
    grid = np.concatenate([x[:100], rng.normal(0.0, 6.0, (100, 3))])
    err = np.abs(_module_bits(model, grid) - model.mixtures().bits(grid)).max()
    assert err < 1e-9, err
    on_data = np.abs(model.mixtures().bits(x) - mix.bits(x)).max()
    assert on_data < 1e-4, on_data


@pytest.mark.parametrize('factor', [1e-4, 1e4])
def test_scaling_the_data_shifts_every_entropy_by_d_log2_factor(factor: float) -> None:
    # h(a x) = h(x) + D log2 a: reg_covar acts in standardised coordinates, so the fit does
    # not depend on the unit. An absolute reg_covar of 1e-6 swamped data of spread 1e-4.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0, 0, 0.2]])
    base = fit_mixtures(x, n_components=2).bits(x)
    scaled = fit_mixtures(factor * x, n_components=2).bits(factor * x)
    np.testing.assert_allclose(scaled, base + 3 * math.log2(factor), atol=1e-6)


def test_a_small_group_gets_a_kernel_per_parameter_count_of_samples() -> None:
    # D = 3: a full-covariance kernel has 3 + 6 = 9 free parameters
    rng = np.random.default_rng(2)
    sizes = [2, 9, 17, 18, 200]
    x = rng.normal(size=(sum(sizes), 3))
    y = np.repeat(np.arange(len(sizes)), sizes)
    mix = fit_mixtures(x, y, len(sizes), n_components=5)
    used = (mix.log_weights > -1e3).sum(1)  # unused kernels are padding
    assert used.tolist() == [1, 1, 1, 2, 5]
    assert np.all(np.isfinite(mix.bits(x)))


def test_float32_far_from_the_origin() -> None:
    # Features offset by 1024 with spread 0.05, on a grid float32 holds exactly: the float32
    # graph must agree with float64. Computing x P - mu P (products of size 1e4 before the
    # difference) lost 0.05 bits here.
    rng = np.random.default_rng(3)
    x = 1024.0 + np.round(rng.normal(0.0, 0.05, (1000, 3)) * 1024) / 1024
    model = KNIFE.from_mixtures(fit_mixtures(x, n_components=2))
    err = np.abs(_module_bits(model, x, torch.float32) - _module_bits(model, x)).max()
    assert err < 1e-3


def test_bad_input_names_the_array() -> None:
    with pytest.raises(PIDInputError, match='camera: expected a finite'):
        fit_mixtures(np.array([[0.0], [np.nan]]), name='camera')
    with pytest.raises(PIDInputError, match='group 1 has 1 samples'):
        fit_mixtures(np.zeros((3, 1)) + np.arange(3)[:, None], np.array([0, 0, 1]), 2)
    mix = fit_mixtures(np.arange(10.0).reshape(5, 2))
    with pytest.raises(PIDInputError, match=r'expected \(N, 2\) samples, got shape \(3, 3\)'):
        mix.bits(np.zeros((3, 3)))
