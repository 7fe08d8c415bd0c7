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

"""Approximate-time pairing of camera frames with LiDAR sweeps, with bounded queues.

Policy (camera-driven, as the model predicts one action per camera frame): every camera frame is
paired with the LiDAR message whose header stamp is nearest to its own, provided
``|t_camera - t_lidar| <= slop``; a LiDAR sweep may serve several camera frames (the camera runs
faster than the LiDAR). A camera frame waits until a LiDAR stamp at or after its own has arrived
(then the nearest neighbour is known for certain, since each topic arrives in stamp order), and
is dropped when no LiDAR message lies within the slop. Both queues are bounded: when full, the
oldest entry is dropped and counted. Messages out of stamp order (at or before the last stamp
accepted from the same sensor, whether still queued or already paired) are counted and dropped.

The pairer only sees stamps (integer nanoseconds) and opaque items, so it is shared by the node
(rclpy messages) and the replay (rosbags messages), and is deterministic for a given input order.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from dmil_ros.runtime.errors import RuntimeConfigError

C = TypeVar('C')
L = TypeVar('L')


@dataclass(frozen=True)
class Pair(Generic[C, L]):
    """One camera frame and the LiDAR message nearest to it."""

    camera_stamp: int  # ns
    camera: C
    lidar_stamp: int  # ns
    lidar: L

    @property
    def skew_ns(self) -> int:
        """``t_lidar - t_camera`` in nanoseconds."""
        return self.lidar_stamp - self.camera_stamp


class ApproxTimePairer(Generic[C, L]):
    """Pairs each camera frame with the nearest LiDAR message within ``slop`` seconds.

    ``push_camera`` / ``push_lidar`` return the pairs that became decidable. ``drops`` counts
    every discarded message by reason: ``camera_queue_full``, ``lidar_queue_full``,
    ``camera_no_match`` (no LiDAR within slop), ``camera_out_of_order``,
    ``lidar_out_of_order``, and ``camera_reset`` / ``lidar_reset`` (queued when
    :meth:`reset` flushed the queues).
    """

    def __init__(self, slop: float = 0.05, queue_size: int = 10) -> None:
        if not (math.isfinite(slop) and slop > 0):
            msg = f'slop {slop!r} must be a positive number of seconds'
            raise RuntimeConfigError(msg)
        if queue_size < 1:
            msg = f'queue_size {queue_size!r} must be >= 1'
            raise RuntimeConfigError(msg)
        self.slop_ns = round(slop * 1e9)
        self.queue_size = int(queue_size)
        self._cams: deque[tuple[int, C]] = deque()
        self._lidars: deque[tuple[int, L]] = deque()
        self.drops: Counter[str] = Counter()
        self.pairs = 0
        # last accepted stamp per sensor: a message at or before it is a duplicate or late
        self.last_camera_ns: int | None = None
        self.last_lidar_ns: int | None = None

    @property
    def pending_camera(self) -> int:
        return len(self._cams)

    @property
    def pending_lidar(self) -> int:
        return len(self._lidars)

    def push_camera(self, stamp_ns: int, item: C) -> list[Pair[C, L]]:
        if self.last_camera_ns is not None and stamp_ns <= self.last_camera_ns:
            self.drops['camera_out_of_order'] += 1
            return []
        self.last_camera_ns = stamp_ns
        if len(self._cams) >= self.queue_size:
            self._cams.popleft()
            self.drops['camera_queue_full'] += 1
        self._cams.append((stamp_ns, item))
        return self._resolve()

    def push_lidar(self, stamp_ns: int, item: L) -> list[Pair[C, L]]:
        if self.last_lidar_ns is not None and stamp_ns <= self.last_lidar_ns:
            self.drops['lidar_out_of_order'] += 1
            return []
        self.last_lidar_ns = stamp_ns
        if len(self._lidars) >= self.queue_size:
            self._lidars.popleft()
            self.drops['lidar_queue_full'] += 1
        self._lidars.append((stamp_ns, item))
        return self._resolve()

    def finish(self) -> list[Pair[C, L]]:
        """End of stream: decide the camera frames still waiting for a later LiDAR message.

        None will come, so each frame's nearest is the newest queued LiDAR message (all queued
        stamps lie before the waiting frames'); a frame with none within slop is dropped as
        ``camera_no_match``, as during the stream.
        """
        out: list[Pair[C, L]] = []
        while self._cams:
            t_cam, cam = self._cams.popleft()
            if self._lidars:
                self._decide(t_cam, cam, *self._lidars[-1], out)
            else:
                self.drops['camera_no_match'] += 1
        return out

    def take_cameras(self) -> list[tuple[int, C]]:
        """Remove and return every waiting camera frame (used when the LiDAR falls silent)."""
        out = list(self._cams)
        self._cams.clear()
        return out

    def reset(self) -> None:
        """Forget both queues and the last stamps (after a time jump); counters are kept.

        Queued messages are counted as ``camera_reset`` / ``lidar_reset`` drops.
        """
        if self._cams:
            self.drops['camera_reset'] += len(self._cams)
        if self._lidars:
            self.drops['lidar_reset'] += len(self._lidars)
        self._cams.clear()
        self._lidars.clear()
        self.last_camera_ns = self.last_lidar_ns = None

    def _resolve(self) -> list[Pair[C, L]]:
        out: list[Pair[C, L]] = []
        while self._cams and self._lidars:
            t_cam, cam = self._cams[0]
            if self._lidars[-1][0] < t_cam:
                break  # no LiDAR at/after this frame yet: a later one may be nearer
            # 1. nearest LiDAR: the first stamp >= t_cam or the one just before it
            idx = next(i for i, (t, _) in enumerate(self._lidars) if t >= t_cam)
            best = idx
            if idx > 0 and t_cam - self._lidars[idx - 1][0] <= self._lidars[idx][0] - t_cam:
                best = idx - 1
            t_lid, lid = self._lidars[best]
            self._cams.popleft()
            # 2. LiDAR older than the chosen one can never be nearest for a later frame
            for _ in range(best):
                self._lidars.popleft()
            self._decide(t_cam, cam, t_lid, lid, out)
        return out

    def _decide(self, t_cam: int, cam: C, t_lid: int, lid: L, out: list[Pair[C, L]]) -> None:
        """Pair a camera frame with its nearest LiDAR message if within slop, else drop it."""
        if abs(t_lid - t_cam) <= self.slop_ns:
            out.append(Pair(t_cam, cam, t_lid, lid))
            self.pairs += 1
        else:
            self.drops['camera_no_match'] += 1
