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

"""Cluster count of the dataset-level CVX PID: never fewer clusters than classes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dmil_ros.actions import FAMILIES
from dmil_ros.audit.dataset_pid import dataset_pid, ground_truth, occupied_bias_bits
from dmil_ros.pid.errors import PIDSolverError


def _copies(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both sensors see the action (4 classes, balanced): R = H(Y) = 2 bits, U = S = 0."""
    rng = np.random.default_rng(seed)
    label = np.arange(frames) % 4
    f1 = np.eye(4)[label] + 0.01 * rng.standard_normal((frames, 4))
    f2 = np.eye(4)[label] + 0.01 * rng.standard_normal((frames, 4))
    return f1, f2, label.astype(np.int64)


def test_few_frames_use_as_many_clusters_as_classes_and_warn() -> None:
    f1, f2, label = _copies(24)  # too few for 10 frames per occupied cell at k = 4
    atoms, meta = dataset_pid(f1, f2, label, None, 0)
    assert atoms is not None
    assert meta['n_clusters'] == 4
    assert 'warning' in meta
    assert abs(atoms['redundancy'] - 2.0) < 1e-6
    assert abs(atoms['unique_camera']) + abs(atoms['unique_lidar']) + abs(atoms['synergy']) < 1e-6


def test_enough_frames_need_no_warning() -> None:
    f1, f2, label = _copies(400)
    atoms, meta = dataset_pid(f1, f2, label, None, 0)
    assert atoms is not None
    assert meta['n_clusters'] >= 4
    assert 'warning' not in meta
    assert abs(atoms['redundancy'] - 2.0) < 1e-6


def test_few_runs_of_equal_targets_warn_that_frames_are_not_independent() -> None:
    """400 frames in 8 scenes of 50 (a recording: the action holds through a scene) are far
    fewer independent units than frames; the same frames shuffled are not."""
    f1, f2, label = _copies(400)
    order = np.argsort(label, kind='stable')  # 4 runs of 100
    atoms, meta = dataset_pid(f1[order], f2[order], label[order], None, 0)
    assert atoms is not None
    assert meta['target_runs'] == 4
    assert f'4 runs of equal targets for k={meta["n_clusters"]} clusters' in meta['warning']
    _, shuffled = dataset_pid(f1, f2, label, None, 0)
    assert shuffled['target_runs'] == 400
    assert 'warning' not in shuffled


def test_a_solver_failure_is_an_error_entry_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The merge of a whole audit stops on an exception here: a PIDSolverError (a histogram the
    exact solver cannot certify) becomes the level's error entry, as a refused input does."""
    import dmil_ros.pid

    def fails(*args: object, **kwargs: object) -> None:
        raise PIDSolverError('no certified optimum')

    monkeypatch.setattr(dmil_ros.pid, 'cvx_pid', fails)
    f1, f2, label = _copies(400)
    atoms, meta = dataset_pid(f1, f2, label, None, 0)
    assert atoms is None
    assert meta == {'error': '400 usable frames: no certified optimum'}


def test_occupied_bias_is_panzeri_treves() -> None:
    """(R_xy - R_x - R_y + 1) / (2 N ln 2), R_* the occupied cells of p(c1,c2,y), p(c1,c2) and
    p(y), counted by hand as cells are filled."""
    hist = np.zeros((2, 2, 2), np.int64)
    hist[0, 0, 0] = hist[1, 1, 1] = 50
    hist[0, 1, 0] = hist[0, 1, 1] = 50  # R_xy 4, R_x 3, R_y 2: no bias
    assert occupied_bias_bits(hist) == 0.0
    hist[1, 0, 1] = 50  # R_xy 5, R_x 4
    assert occupied_bias_bits(hist) == 0.0
    hist[1, 0, 0] = 50  # R_xy 6: one cell more than the marginals explain
    assert occupied_bias_bits(hist) == pytest.approx(1 / (2 * 300 * math.log(2)))


def test_ground_truth_given_family_weighs_only_the_frames_with_truth() -> None:
    """100 frames without truth, 100 of family S (y = c XOR l, the four latent pairs equally
    often: 1 bit of synergy) and 100 of R (c = l = y: 1 bit of redundancy): the frame-weighted
    PID given the family is half a bit of each, whatever the frames without truth."""
    n = 100
    c = np.tile([0, 0, 1, 1], n // 4)
    lat = np.tile([0, 1, 0, 1], n // 4)
    arrays = {
        'family': np.repeat([-1, FAMILIES.index('S'), FAMILIES.index('R')], n),
        'camera_latent': np.concatenate([np.full(n, -1), c, c]),
        'lidar_latent': np.concatenate([np.full(n, -1), lat, c]),
        'label': np.concatenate([np.zeros(n, np.int64), c ^ lat, c]),
    }
    gt = ground_truth(arrays)
    assert gt is not None
    assert gt['frames'] == 2 * n
    want = {'redundancy': 0.5, 'unique_camera': 0.0, 'unique_lidar': 0.0, 'synergy': 0.5}
    assert gt['pid_given_family'] == pytest.approx(want, abs=1e-6)


def test_targets_of_the_same_features_share_their_k_means_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shared ``clusters`` dict changes no atom (the fits depend on features, rows and k
    only): the second target of the same frames fits nothing; other rows fit anew."""
    import dmil_ros.pid.cvx as cvx

    f1, f2, label = _copies(400)
    other = (label + 1) % 4  # a second target of the same frames (a model's argmax)
    alone = [dataset_pid(f1, f2, t, None, 0) for t in (label, other)]
    calls: list[tuple[object, int, int]] = []
    fit = cvx.fit_discretiser

    def counted(x: np.ndarray, k: int, **kwargs: object) -> cvx.Discretiser:
        calls.append((kwargs.get('name'), len(x), k))
        return fit(x, k, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cvx, 'fit_discretiser', counted)
    cache: dict = {}
    first = dataset_pid(f1, f2, label, None, 0, clusters=cache)
    fitted = len(calls)
    second = dataset_pid(f1, f2, other, None, 0, clusters=cache)
    assert [first, second] == alone
    assert fitted > 0
    assert len(calls) == fitted  # the second target reused every fit
    assert len(set(calls)) == len(calls)
    partial = np.where(np.arange(400) % 4 == 0, -1, label)  # a quarter unlabelled
    dataset_pid(f1, f2, partial, None, 0, clusters=cache)
    assert len(calls) > fitted
    assert all(n == 300 for _, n, _ in calls[fitted:])
