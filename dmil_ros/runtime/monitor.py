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

"""Synergy spike monitor: rolling robust baseline, threshold, hysteresis.

Why (methods §6): a frame whose decision rests on the *combination* of camera and LiDAR is the
frame where losing or miscalibrating either sensor is most dangerous; a spike of the per-frame
synergy estimate s (bits) above its recent level is the safety signal.

Per frame, with the last ``window`` non-alert values of s:

1. baseline ``m = median(s_window)``, scale ``σ = max(1.4826 · MAD(s_window), min_scale)``
   (the MAD-based σ is a robust standard deviation: one spike does not inflate it);
2. score ``z = (s - m) / σ``;
3. hysteresis: the alert switches on after ``on_frames`` consecutive frames with
   ``z >= on_z`` and ``s >= min_synergy`` (or ``s >= absolute_on`` when that is set, baseline or
   not), and switches off after ``off_frames`` consecutive frames with ``z < off_z`` (and
   ``s < absolute_on``);
4. frames scored while the alert is on do not enter the baseline, so a long synergy segment keeps
   the alert on instead of becoming the new normal; no alert is raised before ``warmup`` values
   are in the baseline (unless ``absolute_on`` fires).

Parameters (defaults tuned for ~20 Hz camera frames): ``window`` 100 frames (5 s), ``warmup`` 20,
``on_z`` 3.0, ``off_z`` 1.5, ``on_frames`` 2, ``off_frames`` 5, ``min_synergy`` 0.05 bits,
``min_scale`` 0.02 bits, ``absolute_on`` 0 (off).
"""

from __future__ import annotations

import bisect
import math
import re
from collections import deque
from dataclasses import dataclass

from dmil_ros.runtime.errors import RuntimeConfigError


def _median(ordered: list[float]) -> float:
    """Median of an ascending, non-empty list (mean of the two middle values when even)."""
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _mad(ordered: list[float], centre: float) -> float:
    """Median of ``|v - centre|`` over an ascending, non-empty list: O(log n), no sort.

    The distances of the values below ``centre`` (read right to left) and of those at or above
    it (left to right) are two ascending runs. The ``take = ceil(n / 2)`` smallest distances
    are ``i`` from the left run and ``take - i`` from the right one; ``i`` is bisected (the
    k-th element of two sorted arrays), and the lower median distance is the largest taken,
    the upper one (even ``n``) the smallest not taken. The floats equal those of sorting
    ``[abs(v - centre) for v in ordered]``: ``centre - v`` is exactly ``abs(v - centre)`` for
    ``v < centre`` (tests/runtime/test_monitor.py).
    """
    n = len(ordered)
    split = bisect.bisect_left(ordered, centre)  # the left run: ordered[:split]
    n_right = n - split
    take = (n + 1) // 2
    lo, hi = max(0, take - n_right), min(take, split)
    while lo < hi:
        i = (lo + hi) // 2
        # the left run's next distance below the right run's last taken: take more from the left
        if centre - ordered[split - 1 - i] < ordered[split + take - i - 1] - centre:
            lo = i + 1
        else:
            hi = i
    i, j = lo, take - lo
    lower = max(
        centre - ordered[split - i] if i else -math.inf,
        ordered[split + j - 1] - centre if j else -math.inf,
    )
    if n % 2:
        return lower
    upper = min(
        centre - ordered[split - 1 - i] if i < split else math.inf,
        ordered[split + j] - centre if j < n_right else math.inf,
    )
    return (lower + upper) / 2


@dataclass(frozen=True)
class MonitorConfig:
    """Synergy monitor parameters (validated on construction; see the module docstring)."""

    window: int = 100
    warmup: int = 20
    on_z: float = 3.0
    off_z: float = 1.5
    on_frames: int = 2
    off_frames: int = 5
    min_synergy: float = 0.05
    min_scale: float = 0.02
    absolute_on: float = 0.0

    def __post_init__(self) -> None:
        checks = {  # name: (holds, the rule)
            'window': (self.window >= 2, 'window >= 2'),
            'warmup': (1 <= self.warmup <= self.window, '1 <= warmup <= window'),
            'on_z': (math.isfinite(self.on_z), 'on_z finite'),
            'off_z': (
                math.isfinite(self.off_z) and self.off_z <= self.on_z,
                'off_z finite and <= on_z',
            ),
            'on_frames': (self.on_frames >= 1, 'on_frames >= 1'),
            'off_frames': (self.off_frames >= 1, 'off_frames >= 1'),
            'min_synergy': (math.isfinite(self.min_synergy), 'min_synergy finite'),
            'min_scale': (
                math.isfinite(self.min_scale) and self.min_scale > 0,
                'min_scale finite and > 0',
            ),
            'absolute_on': (
                math.isfinite(self.absolute_on) and self.absolute_on >= 0,
                'absolute_on finite and >= 0 (0: off)',
            ),
        }
        for ok, rule in checks.values():
            if not ok:
                values = ', '.join(
                    f'{k}={getattr(self, k)!r}' for k in checks if re.search(rf'\b{k}\b', rule)
                )
                msg = f'synergy monitor: {values} breaks the rule {rule}'
                raise RuntimeConfigError(msg)


@dataclass(frozen=True)
class MonitorState:
    """The monitor's verdict on one frame."""

    synergy: float  # s of this frame (bits)
    baseline: float  # median of the window (nan during an empty baseline)
    scale: float  # robust sigma of the window
    z: float  # (s - baseline) / scale (nan before warm-up)
    alert: bool  # alert state after this frame
    started: bool  # True on the frame the alert switched on
    ended: bool  # True on the frame the alert switched off


class SynergyMonitor:
    """Feed one synergy value per frame with :meth:`update`; read the alert state back."""

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = config or MonitorConfig()
        self._window: deque[float] = deque(maxlen=self.config.window)
        self._sorted: list[float] = []  # the window's values in ascending order
        self.alert = False
        self._above = 0
        self._below = 0
        self.alerts = 0  # number of times the alert switched on
        self.frames = 0
        self.alert_frames = 0

    def update(self, synergy: float) -> MonitorState:
        cfg = self.config
        s = float(synergy)
        self.frames += 1
        if not math.isfinite(s):
            # a non-finite estimate says nothing: keep the state, count nothing
            return MonitorState(s, math.nan, math.nan, math.nan, self.alert, False, False)
        # 1. baseline and robust scale from the window (kept sorted: the median is read off, the
        #    MAD bisected; ~10x cheaper than two np.median calls)
        if self._sorted:
            baseline = _median(self._sorted)
            scale = max(1.4826 * _mad(self._sorted, baseline), cfg.min_scale)
        else:
            baseline, scale = math.nan, cfg.min_scale
        warm = len(self._window) >= cfg.warmup
        # 2. score
        z = (s - baseline) / scale if warm else math.nan
        absolute = cfg.absolute_on > 0 and s >= cfg.absolute_on
        high = absolute or (warm and z >= cfg.on_z and s >= cfg.min_synergy)
        low = not absolute and (not warm or z < cfg.off_z)
        # 3. hysteresis
        started = ended = False
        if not self.alert:
            self._above = self._above + 1 if high else 0
            if self._above >= cfg.on_frames:
                self.alert, started, self._below = True, True, 0
                self.alerts += 1
        else:
            self._below = self._below + 1 if low else 0
            if self._below >= cfg.off_frames:
                self.alert, ended, self._above = False, True, 0
        # 4. only calm frames teach the baseline
        if not self.alert and not high:
            if len(self._window) == self._window.maxlen:
                del self._sorted[bisect.bisect_left(self._sorted, self._window[0])]
            self._window.append(s)
            bisect.insort(self._sorted, s)
        if self.alert:
            self.alert_frames += 1
        return MonitorState(s, baseline, scale, z, self.alert, started, ended)

    def reset(self) -> None:
        self._window.clear()
        self._sorted.clear()
        self.alert = False
        self._above = self._below = 0
