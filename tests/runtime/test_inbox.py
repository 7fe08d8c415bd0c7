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

"""Inbox: per-sensor capacity, age limit, arrival order, waits."""

from __future__ import annotations

import pytest

from dmil_ros.runtime.errors import RuntimeConfigError
from dmil_ros.runtime.inbox import Inbox


def test_arrival_order_capacity_per_sensor_and_age() -> None:
    inbox = Inbox(capacity=2, max_age=0.5)
    for k, camera in enumerate([True, False, True, True, False]):
        inbox.put(camera, k, now=10.0 + 0.01 * k)
    # the camera's third message pushed its first out; the LiDAR's two stay
    assert inbox.drops == {'camera_inbox_full': 1}
    assert inbox.pop(now=10.1) == (False, 1)
    assert inbox.pop(now=10.1) == (True, 2)
    # at 10.6 s messages 3 and 4 (received at 10.03 and 10.04 s) waited over 0.5 s: stale
    assert inbox.pop(now=10.6) is None
    assert inbox.drops == {'camera_inbox_full': 1, 'camera_stale': 1, 'lidar_stale': 1}
    assert inbox.wait_p99() == pytest.approx(0.09)
    assert len(inbox) == 0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(RuntimeConfigError, match='capacity 0'):
        Inbox(0, 0.5)
    with pytest.raises(RuntimeConfigError, match='max_age'):
        Inbox(1, 0.0)
