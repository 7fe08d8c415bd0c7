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

"""Approximate-time pairing: nearest neighbour within slop, bounded queues, drop counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.runtime.errors import RuntimeConfigError
from dmil_ros.runtime.pairing import ApproxTimePairer, Pair

MS = 1_000_000


def feed(p: ApproxTimePairer[Any, Any], events: list[tuple[str, int]]) -> list[Pair[Any, Any]]:
    out = []
    for kind, t in events:
        push = p.push_camera if kind == 'c' else p.push_lidar
        out += push(t, f'{kind}{t}')
    return out


def brute_force(cams: list[int], lids: list[int], slop: int) -> dict[int, int | None]:
    """Reference: each camera stamp's nearest LiDAR stamp (ties -> earlier), None beyond slop."""
    ref: dict[int, int | None] = {}
    for c in cams:
        best = min(lids, key=lambda t: (abs(t - c), t)) if lids else None
        ref[c] = best if best is not None and abs(best - c) <= slop else None
    return ref


def test_camera_20hz_lidar_10hz() -> None:
    cams = [i * 50 * MS for i in range(40)]
    lids = [i * 100 * MS + 7 * MS for i in range(20)]
    events = sorted([('c', t) for t in cams] + [('l', t) for t in lids], key=lambda e: e[1])
    p: ApproxTimePairer[str, str] = ApproxTimePairer(slop=0.06, queue_size=10)
    pairs = feed(p, events)
    ref = brute_force(cams, lids, 60 * MS)
    got = {q.camera_stamp: q.lidar_stamp for q in pairs}
    # every frame except the last (no later LiDAR yet to prove it nearest) is decided
    assert got == {c: t for c, t in ref.items() if t is not None and c < lids[-1]}
    assert all(q.camera == f'c{q.camera_stamp}' and q.lidar == f'l{q.lidar_stamp}' for q in pairs)
    assert all(abs(q.skew_ns) <= 60 * MS for q in pairs)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 2000), min_size=1, max_size=40, unique=True),
    st.lists(st.integers(0, 2000), min_size=1, max_size=40, unique=True),
    st.integers(1, 300),
    st.integers(0, 60),
)
def test_matches_brute_force(cams: list[int], lids: list[int], slop_ms: int, lag: int) -> None:
    """LiDAR arrives ``lag`` ms late (typical); queues large enough: exact nearest neighbour."""
    cams, lids = sorted(cams), sorted(lids)
    events = [(t, 0, 'c', t) for t in cams] + [(t + lag, 1, 'l', t) for t in lids]
    events.sort()
    p: ApproxTimePairer[str, str] = ApproxTimePairer(slop=slop_ms / 1000, queue_size=100)
    pairs = []
    for _, _, kind, t in events:
        pairs += (p.push_camera if kind == 'c' else p.push_lidar)(t * MS, t)
    ref = brute_force(cams, lids, slop_ms)
    got = {q.camera_stamp // MS: q.lidar_stamp // MS for q in pairs}
    decided = {c: t for c, t in ref.items() if c <= lids[-1]}
    assert got == {c: t for c, t in decided.items() if t is not None}
    assert p.drops['camera_no_match'] == sum(t is None for t in decided.values())
    assert p.pending_camera == sum(c > lids[-1] for c in cams)
    # the end of the stream decides the rest: then every frame is as the brute force says
    pairs += p.finish()
    assert {q.camera_stamp // MS: q.lidar_stamp // MS for q in pairs} == {
        c: t for c, t in ref.items() if t is not None
    }
    assert p.drops['camera_no_match'] == sum(t is None for t in ref.values())
    assert p.pending_camera == 0
    assert p.pairs == len(pairs)


def test_bounded_queue_drops_oldest() -> None:
    p: ApproxTimePairer[str, str] = ApproxTimePairer(slop=0.05, queue_size=3)
    for i in range(5):  # LiDAR silent: the camera queue fills and drops its oldest
        assert p.push_camera(i * 50 * MS, f'c{i}') == []
    assert p.pending_camera == 3
    assert p.drops['camera_queue_full'] == 2
    pairs = p.push_lidar(150 * MS, 'l')
    # c2 (50 ms off, = slop) and c3 (exact) are decided; c4 waits for a later LiDAR
    assert [q.camera for q in pairs] == ['c2', 'c3']
    assert p.pending_camera == 1
    assert p.drops['camera_no_match'] == 0


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.integers(0, 100), min_size=2, max_size=30, unique=True),
    st.lists(st.integers(0, 99), min_size=1, max_size=30, unique=True),
    st.integers(1, 200),
)
def test_a_camera_frame_midway_between_two_sweeps_takes_the_earlier(
    lids: list[int], mids: list[int], slop_ms: int
) -> None:
    """Every camera stamp lies exactly halfway between two LiDAR stamps (even ms): the tie goes
    to the earlier sweep, as the brute force says."""
    lids = sorted(20 * t for t in lids)
    cams = sorted({(lids[i % (len(lids) - 1)] + lids[i % (len(lids) - 1) + 1]) // 2 for i in mids})
    events = sorted([(t, 'c') for t in cams] + [(t, 'l') for t in lids])
    p: ApproxTimePairer[str, str] = ApproxTimePairer(slop=slop_ms / 1000, queue_size=100)
    pairs = feed(p, [(kind, t * MS) for t, kind in events])
    got = {q.camera_stamp // MS: q.lidar_stamp // MS for q in pairs}
    assert got == {c: t for c, t in brute_force(cams, lids, slop_ms).items() if t is not None}


def test_bounded_lidar_queue_drops_oldest() -> None:
    """As the camera queue: a full LiDAR queue (camera silent) drops its oldest sweep, so a
    late camera frame still finds the sweeps nearest to it."""
    p: ApproxTimePairer[str, str] = ApproxTimePairer(slop=0.02, queue_size=3)
    for i in range(5):
        assert p.push_lidar(i * 100 * MS, f'l{i}') == []
    assert p.pending_lidar == 3
    assert p.drops['lidar_queue_full'] == 2
    assert [q.lidar for q in p.push_camera(200 * MS, 'c')] == ['l2']  # l0, l1 dropped


def test_a_repeated_camera_stamp_is_dropped_as_out_of_order() -> None:
    """A message at or before the last accepted stamp is a duplicate or late: the same camera
    stamp twice would be inferred and published twice."""
    p: ApproxTimePairer[str, str] = ApproxTimePairer(slop=0.05, queue_size=5)
    p.push_camera(100 * MS, 'a')
    assert p.push_camera(100 * MS, 'b') == []
    assert p.drops['camera_out_of_order'] == 1
    assert p.pending_camera == 1
    assert [q.camera for q in p.push_lidar(100 * MS, 'l')] == ['a']


def test_out_of_order_dropped() -> None:
    p: ApproxTimePairer[str, str] = ApproxTimePairer(slop=0.05, queue_size=3)
    p.push_lidar(100 * MS, 'a')
    p.push_lidar(90 * MS, 'b')
    assert p.drops['lidar_out_of_order'] == 1


def test_take_cameras() -> None:
    p: ApproxTimePairer[str, str] = ApproxTimePairer(slop=0.05, queue_size=3)
    p.push_camera(1, 'a')
    p.push_camera(2, 'b')
    assert p.take_cameras() == [(1, 'a'), (2, 'b')]
    assert p.pending_camera == 0


@pytest.mark.parametrize(('slop', 'queue'), [(0.0, 3), (-1.0, 3), (np.nan, 3), (0.1, 0)])
def test_bad_config(slop: float, queue: int) -> None:
    with pytest.raises(RuntimeConfigError):
        ApproxTimePairer(slop=slop, queue_size=queue)
