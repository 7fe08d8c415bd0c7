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

"""The hand-off between a node's sensor callbacks and its inference callback (ROS-free).

Subscription callbacks :meth:`Inbox.put` each message with its receive time; the inference
callback :meth:`Inbox.pop` s them in arrival order. Two bounds keep the node acting on recent
frames when inference falls behind its input (a slow CPU, a GPU stall):

1. per sensor at most ``capacity`` messages; a new one pushes that sensor's oldest out
   (``<sensor>_inbox_full``), so a fast camera cannot crowd out the LiDAR;
2. a message that waited longer than ``max_age`` seconds is dropped when it comes up
   (``<sensor>_stale``): a backlog never turns into actions (and ``cmd_vel``) seconds late.

The wait of every message taken is kept (the last 500) for the diagnostics. Thread-safe: one
lock guards the queue, the counters and the waits.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

from dmil_ros.runtime.errors import RuntimeConfigError


def _sensor(camera: bool) -> str:
    return 'camera' if camera else 'lidar'


class Inbox:
    """Bounded, age-limited message queue of the two sensors (see the module docstring)."""

    def __init__(self, capacity: int, max_age: float) -> None:
        if capacity < 1:
            msg = f'inbox capacity {capacity!r} must be >= 1'
            raise RuntimeConfigError(msg)
        if not max_age > 0:
            msg = f'inbox max_age {max_age!r} must be positive (seconds)'
            raise RuntimeConfigError(msg)
        self.capacity = capacity
        self.max_age = max_age
        self._queue: deque[tuple[bool, Any, float]] = deque()  # (camera, msg, received)
        self._count = {True: 0, False: 0}
        self._lock = threading.Lock()
        self.drops: Counter[str] = Counter()
        self.waits: deque[float] = deque(maxlen=500)  # seconds, messages taken

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)

    def put(self, camera: bool, msg: Any, now: float) -> None:
        """Queue ``msg`` received at ``now`` (monotonic seconds)."""
        with self._lock:
            if self._count[camera] >= self.capacity:
                oldest = next(i for i, e in enumerate(self._queue) if e[0] is camera)
                del self._queue[oldest]  # a short queue: at most 2 x capacity entries
                self._count[camera] -= 1
                self.drops[f'{_sensor(camera)}_inbox_full'] += 1
            self._queue.append((camera, msg, now))
            self._count[camera] += 1

    def drop_counts(self) -> Counter[str]:
        """A copy of :attr:`drops`, taken under the lock (the intake thread adds to it)."""
        with self._lock:
            return Counter(self.drops)

    def wait_p99(self) -> float | None:
        """99th percentile of the recent queue waits (s); None before any message was taken."""
        with self._lock:
            waits = sorted(self.waits)
        return waits[(len(waits) * 99) // 100] if waits else None

    def pop(self, now: float) -> tuple[bool, Any] | None:
        """The oldest message that is not stale at ``now`` as ``(camera, msg)``; None: empty."""
        with self._lock:
            while self._queue:
                camera, msg, received = self._queue.popleft()
                self._count[camera] -= 1
                if now - received > self.max_age:
                    self.drops[f'{_sensor(camera)}_stale'] += 1
                    continue
                self.waits.append(now - received)
                return camera, msg
            return None


__all__ = ['Inbox']
