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

"""Bad estimator arguments: a PIDInputError naming the argument, never truncated or raw."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from dmil_ros.pid import exact_pid
from dmil_ros.pid.batch import BATCH
from dmil_ros.pid.broja_local import BROJALocal
from dmil_ros.pid.checks import SEED_LIMIT, check_seed, count, in_range, real
from dmil_ros.pid.cvx import cvx_pid, suggest_n_clusters
from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.knife import fit_mixtures
from dmil_ros.pid.lsmi import LSMI
from dmil_ros.pid.tasks import make_task


@pytest.fixture(scope='module')
def data() -> dict[str, Any]:
    task = make_task('AND')
    s = task.sample(200, seed=0)
    probs = dict(zip(('probs_1', 'probs_2', 'probs_12'), task.posteriors(s), strict=True))
    return {'f1': s.features_1, 'f2': s.features_2, 'y': s.labels, 'probs': probs}


_MASKED = np.ma.masked_array(np.ones((2, 2, 2)), mask=np.eye(8, dtype=bool)[0].reshape(2, 2, 2))
CASES: dict[str, tuple[str, Callable[[dict[str, Any]], object]]] = {
    # n_classes 2.9 was truncated to 2 by all three
    'lsmi n_classes float': (
        'n_classes',
        lambda d: LSMI().fit(d['f1'], d['f2'], d['y'], n_classes=2.9, **d['probs']),
    ),
    'broja_local n_classes float': (
        'n_classes',
        lambda d: BROJALocal(n_clusters=4).fit(d['f1'], d['f2'], d['y'], n_classes=2.9),
    ),
    'batch n_classes float': (
        'n_classes',
        lambda d: BATCH(epochs=1).fit(d['f1'], d['f2'], d['y'], n_classes=2.9, **d['probs']),
    ),
    # seeds reached scikit-learn or torch, which raised their own errors
    'lsmi seed negative': ('seed', lambda d: LSMI(seed=-1)),
    'broja_local seed negative': ('seed', lambda d: BROJALocal(seed=-1)),
    'batch seed float': ('seed', lambda d: BATCH(seed=2.5)),
    'knife seed negative': ('seed', lambda d: fit_mixtures(d['f1'], seed=-1)),
    'knife reg_covar string': ('reg_covar', lambda d: fit_mixtures(d['f1'], reg_covar='1')),
    # an unknown keyword was a raw TypeError from the dataclass
    'lsmi unknown option': ('n_component', lambda d: LSMI(n_component=3)),
    'lsmi lr string': ('lr', lambda d: LSMI(lr='0.1')),
    'broja_local label_floor string': ('label_floor', lambda d: BROJALocal(label_floor='0.02')),
    'exact tol string': ('tol', lambda d: exact_pid(np.ones((2, 2, 2)), tol='1e-9')),
    'exact max_gap None': ('max_gap', lambda d: exact_pid(np.ones((2, 2, 2)), max_gap=None)),
    'exact tol zero': ('tol', lambda d: exact_pid(np.ones((2, 2, 2)), tol=0.0)),
    # seeds above scikit-learn's 2**32 - 1 (or torch's 2**64, seed + 2 included) raised the
    # library's own errors, which the audit does not catch (review 22b #3)
    'cvx seed 2**32': ('seed', lambda d: cvx_pid(d['f1'], d['f2'], d['y'], seed=2**32)),
    'broja_local seed 2**32': ('seed', lambda d: BROJALocal(seed=2**32)),
    'knife seed 2**32': ('seed', lambda d: fit_mixtures(d['f1'], seed=2**32)),
    'lsmi seed + 2 beyond 2**32 - 1': ('seed', lambda d: LSMI(seed=2**32 - 2)),
    'batch seed 2**64': ('seed', lambda d: BATCH(seed=2**64)),
    # 0 failed scikit-learn's EM on a constant or duplicated column (review 22b #6)
    'lsmi reg_covar 0': ('reg_covar', lambda d: LSMI(reg_covar=0.0)),
    'knife reg_covar 0': ('reg_covar', lambda d: fit_mixtures(d['f1'], reg_covar=0.0)),
    # OverflowError, or bools and floats taken as counts (review 22b #8)
    'suggest bias_bits inf': ('bias_bits', lambda d: suggest_n_clusters(1000, 4, math.inf)),
    'suggest n_samples bool': ('n_samples', lambda d: suggest_n_clusters(True, 2)),
    'suggest n_classes float': ('n_classes', lambda d: suggest_n_clusters(1000, 4.7)),
    # a masked array's hidden cells counted as data; complex parts were dropped with a
    # warning (review 22b #7)
    'exact masked joint': ('masked', lambda d: exact_pid(_MASKED)),
    'exact complex joint': ('complex', lambda d: exact_pid(np.ones((2, 2, 2)) + 1j)),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_bad_argument_is_refused_by_name(case: str, data: dict[str, Any]) -> None:
    name, call = CASES[case]
    with pytest.raises(PIDInputError, match=name):
        call(data)


def test_an_integral_numpy_class_count_is_accepted(data: dict[str, Any]) -> None:
    fit = LSMI().fit(data['f1'], data['f2'], data['y'], n_classes=np.int64(2), **data['probs'])
    assert fit.n_classes == 2


@pytest.mark.parametrize('value', [True, '1', None, float('nan'), float('inf'), [1.0]])
def test_real_refuses_what_is_not_a_finite_number(value: object) -> None:
    with pytest.raises(PIDInputError, match='x'):
        real('x', value)


def test_in_range_tests_after_the_type() -> None:
    assert in_range('x', np.float32(0.5), lambda v: 0 < v < 1) == 0.5
    with pytest.raises(PIDInputError, match=r'x: 1\.5 out of range'):
        in_range('x', 1.5, lambda v: 0 < v < 1)
    assert count('k', np.int16(3)) == 3


def test_the_largest_seeds_are_accepted() -> None:
    assert check_seed('seed', SEED_LIMIT) == 2**32 - 1
    assert check_seed('seed', SEED_LIMIT - 2, derived=2) == 2**32 - 3
    assert LSMI(seed=2**32 - 3).config.seed == 2**32 - 3
