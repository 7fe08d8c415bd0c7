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

import numpy as np
import pytest

from dmil_ros.audit.dataset_pid import dataset_pid
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
