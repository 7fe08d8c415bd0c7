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

"""The reference implementation the exact solver is checked against: dit's BROJA PID.

``dit`` is a development dependency (``pip install .[dev]``), imported only when called. Its
default BROJA solver returns wrong, even negative, atoms on non-binary alphabets, so the cone
method (ECOS) is used, as the project's tests and benchmarks require.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.measures import normalise


def dit_atoms(joint: npt.NDArray[np.floating]) -> tuple[float, float, float, float]:
    """(R, U1, U2, S) in bits of ``joint`` p[x1, x2, y] (probabilities or counts) by
    ``dit.pid.PID_BROJA(method='cone')``."""
    import dit
    from dit.pid import PID_BROJA

    try:  # counts are welcome: dit reads the values as probabilities as they are
        p = normalise(joint, ndim=3)
    except PIDInputError as exc:
        msg = f'joint: expected a non-negative finite (n1, n2, ny) table with mass ({exc})'
        raise PIDInputError(msg) from exc
    idx = np.argwhere(p > 0)
    d = dit.Distribution(
        [tuple(int(v) for v in i) for i in idx], [float(p[tuple(i)]) for i in idx]
    )
    res = PID_BROJA(d, [[0], [1]], [2], method='cone')
    return (
        float(res.get_pi(((0,), (1,)))),
        float(res.get_pi(((0,),))),
        float(res.get_pi(((1,),))),
        float(res.get_pi(((0, 1),))),
    )
