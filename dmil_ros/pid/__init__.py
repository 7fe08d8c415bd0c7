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

"""Partial information decomposition: exact BROJA solver, CVX dataset estimator, measures.

Public API (issue 3): :func:`exact_pid` -> :class:`PIDResult`, :func:`cvx_pid` ->
:class:`CVXResult`, the canonical distributions in :mod:`dmil_ros.pid.catalogue` and small
information measures in :mod:`dmil_ros.pid.measures`.
"""

from dmil_ros.pid.catalogue import CATALOGUE, Canonical
from dmil_ros.pid.cvx import CVXResult, Discretiser, cvx_pid, suggest_n_clusters
from dmil_ros.pid.errors import PIDError, PIDInputError, PIDSolverError
from dmil_ros.pid.exact import PIDResult, exact_pid
from dmil_ros.pid.measures import (
    conditional_entropy,
    conditional_mutual_information,
    entropy,
    mutual_information,
    pid_informations,
)

__all__ = [
    'CATALOGUE',
    'CVXResult',
    'Canonical',
    'Discretiser',
    'PIDError',
    'PIDInputError',
    'PIDResult',
    'PIDSolverError',
    'conditional_entropy',
    'conditional_mutual_information',
    'cvx_pid',
    'entropy',
    'exact_pid',
    'mutual_information',
    'pid_informations',
    'suggest_n_clusters',
]

# --- issue 4: sample-level estimators. pointwise_pid, synergy_indicator, LSMI (with external
# class probabilities) and BROJALocal are numpy-only; BATCH, KNIFE and the ONNX-exportable modules
# need torch. The estimators load on first access (scikit-learn and torch take seconds to import).
# Synthetic tasks: dmil_ros.pid.tasks.
from dmil_ros.pid.indicator import synergy_indicator
from dmil_ros.pid.pointwise import PointwisePID, pointwise_pid, shift_delta

_LAZY = {
    'LSMI': 'dmil_ros.pid.lsmi',
    'LSMIConfig': 'dmil_ros.pid.lsmi',
    'LSMIDensities': 'dmil_ros.pid.modules',
    'LSMITerms': 'dmil_ros.pid.modules',
    'lsmi_terms': 'dmil_ros.pid.modules',
    'KNIFE': 'dmil_ros.pid.modules',
    'Mixtures': 'dmil_ros.pid.knife',
    'BROJALocal': 'dmil_ros.pid.broja_local',
    'BROJALocalModule': 'dmil_ros.pid.modules',
    'local_table': 'dmil_ros.pid.broja_local',
    'BATCH': 'dmil_ros.pid.batch',
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        msg = f'module {__name__!r} has no attribute {name!r}'
        raise AttributeError(msg)
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ += [
    'BATCH',
    'KNIFE',
    'LSMI',
    'BROJALocal',
    'BROJALocalModule',
    'LSMIConfig',
    'LSMIDensities',
    'LSMITerms',
    'Mixtures',
    'PointwisePID',
    'local_table',
    'lsmi_terms',
    'pointwise_pid',
    'shift_delta',
    'synergy_indicator',
]

# issue 4 (continued): BROJA-local variants ('dual' = the synergy alarm's estimate, 'exact_mean')
_LAZY['dual_extension'] = 'dmil_ros.pid.broja_local'
__all__ += ['dual_extension']
