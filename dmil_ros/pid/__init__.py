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
