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


"""Argument checks shared by the estimators: integers that are integers, pairs that are pairs.

Each raises :class:`dmil_ros.pid.errors.PIDInputError` naming the argument and its value,
instead of letting a float be truncated (``n_clusters=2.7`` -> 2) or a library deep inside
raise its own error type.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

from dmil_ros.pid.errors import PIDInputError


def count(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; bools, floats and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f'{name}: expected an integer, got {value!r}'
        raise PIDInputError(msg)
    if int(value) < minimum:
        msg = f'{name}: must be >= {minimum}, got {value!r}'
        raise PIDInputError(msg)
    return int(value)


SEED_LIMIT = 2**32 - 1  # scikit-learn's random_state maximum (torch and numpy take more)


def check_seed(name: str, value: object, derived: int = 0) -> int:
    """``value`` as a seed in ``[0, 2**32 - 1 - derived]``: scikit-learn refuses a random_state
    above 2**32 - 1 with its own error, and an estimator seeding ``derived`` more generators
    with ``seed + 1 ... seed + derived`` must keep those inside too."""
    number = count(name, value, minimum=0)
    if number > SEED_LIMIT - derived:
        msg = f'{name}: must be <= {SEED_LIMIT - derived}, got {value!r}'
        raise PIDInputError(msg)
    return number


def real(name: str, value: object) -> float:
    """``value`` as a finite float; bools, strings, None and NaN / inf are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f'{name}: expected a number, got {value!r}'
        raise PIDInputError(msg)
    if not math.isfinite(value):
        msg = f'{name}: {value!r} out of range'
        raise PIDInputError(msg)
    return float(value)


def in_range(name: str, value: object, test: Callable[[float], bool]) -> float:
    """``value`` as a finite float (:func:`real`) for which ``test`` holds."""
    number = real(name, value)
    if not test(number):
        msg = f'{name}: {value!r} out of range'
        raise PIDInputError(msg)
    return number


def count_pair(name: str, value: object, minimum: int = 1) -> tuple[int, int]:
    """One count for both modalities, or a pair ``(k1, k2)`` (tuple or list)."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            msg = f'{name}: expected an integer or a pair (k1, k2), got {value!r}'
            raise PIDInputError(msg)
        return count(name, value[0], minimum), count(name, value[1], minimum)
    k = count(name, value, minimum)
    return k, k


__all__ = ['SEED_LIMIT', 'check_seed', 'count', 'count_pair', 'in_range', 'real']
