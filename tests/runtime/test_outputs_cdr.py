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

"""The hand-written JointState CDR encoder against rosbags' serializer (the reference)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.actions import ACTIONS
from dmil_ros.runtime.monitor import MonitorState
from dmil_ros.runtime.outputs import OutputBuilder, Twists, joint_state_cdr
from dmil_ros.runtime.records import FrameResult, Header
from dmil_ros.sim.expert import COMMANDS

BUILDER = OutputBuilder()
NAME = st.text(st.characters(codec='utf-8', exclude_characters='\x00'), max_size=9)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    sec=st.integers(-(2**31), 2**31 - 1),
    nanosec=st.integers(0, 999_999_999),
    frame_id=NAME,
    names=st.lists(NAME, max_size=5),
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5),
)
def test_joint_state_bytes_match_rosbags(
    sec: int, nanosec: int, frame_id: str, names: list[str], values: list[float]
) -> None:
    h = Header(sec, nanosec, frame_id)
    reference = BUILDER.serialize('~/gates', BUILDER.joint_state(h, names, values))
    encoded = tuple(n.encode() for n in names)
    assert joint_state_cdr(h, encoded, np.asarray(values, np.float64)) == reference
    assert joint_state_cdr(h, encoded, values) == reference  # a list of floats, too


@pytest.mark.parametrize(
    'values',
    [1.5, np.float32(0.25), [[1.0, 2.0], [3.0, -0.0]], [np.array([1.0]), np.array([2.5])],
     ['1.5', '-2'], np.array([[1, 2]], np.int64), [True, False], []],
)  # fmt: skip
def test_joint_state_takes_what_numpy_takes(values: Any) -> None:
    # the struct fast path must not narrow what np.asarray(values, '<f8') accepted
    h = Header(3, 4, 'base_link')
    flat = np.asarray(values, '<f8').reshape(-1)
    names = [f'j{i}' for i in range(flat.size)]
    reference = BUILDER.serialize('~/gates', BUILDER.joint_state(h, names, flat))
    assert joint_state_cdr(h, tuple(n.encode() for n in names), values) == reference


def _result(gates: bool, pid: bool, monitor: bool, degraded: str) -> FrameResult:
    rng = np.random.default_rng(len(degraded) + 2 * gates + 4 * pid)
    probs = rng.dirichlet(np.ones(4)).astype(np.float32)
    state = MonitorState(0.3, 0.1, 0.05, 4.0, True, True, False) if monitor else None
    return FrameResult(
        header=Header(12, 345, 'camera_optical_frame'),
        lidar_stamp_ns=None,
        probs=probs,
        action=int(np.argmax(probs)),
        gates=rng.dirichlet(np.ones(4)).astype(np.float32) if gates else None,
        pid={'pid_lsmi': rng.normal(size=4).astype(np.float32)} if pid else {},
        pid_source='pid_lsmi' if pid else None,
        monitor=state,
        alert=True,
        degraded=degraded,
        timings={},
    )


def test_frame_cdr_equals_serialised_frame() -> None:
    for twists in (None, Twists()):
        builder = OutputBuilder(twists)
        for gates in (False, True):
            for pid in (False, True):
                for monitor, degraded in ((True, ''), (False, 'lidar_silent')):
                    r = _result(gates, pid, monitor, degraded)
                    want = [(t, builder.serialize(t, m)) for t, m in builder.frame(r)]
                    assert builder.frame_cdr(r) == want
                    back = builder.store.deserialize_cdr(want[0][1], 'sensor_msgs/msg/JointState')
                    assert math.isclose(back.position[0], float(r.probs[r.action]))


@pytest.mark.parametrize('degraded', ['', 'lidar_silent', 'camera_silent'])
def test_a_degraded_frame_publishes_no_interaction_estimate(degraded: str) -> None:
    # one modality zeroed: the heads' terms describe no real input (the replay summary and the
    # audit leave such frames out too), so the node publishes NaN, not numbers that look valid
    builder = OutputBuilder()
    r = _result(gates=True, pid=True, monitor=not degraded, degraded=degraded)
    for frame in (
        builder.frame_cdr(r),
        [(t, builder.serialize(t, m)) for t, m in builder.frame(r)],
    ):
        raw = dict(frame)['~/interactions']
        position = builder.store.deserialize_cdr(raw, 'sensor_msgs/msg/JointState').position
        if degraded:
            assert np.isnan(position).all()
        else:
            np.testing.assert_array_equal(position, r.pid['pid_lsmi'].astype(np.float64))


@pytest.mark.parametrize('action', ACTIONS)
def test_cmd_vel_turns_the_way_the_action_says(action: str) -> None:
    """REP 103: +angular.z turns left (counter-clockwise seen from above), so 'right' is a
    negative yaw rate, with the signs of the simulator expert's commands. Checked on the bytes
    ~/cmd_vel publishes."""
    twists = Twists(linear=0.3, angular=0.6)
    builder = OutputBuilder(twists)
    r = dataclasses.replace(_result(False, False, True, ''), action=ACTIONS.index(action))
    raw = dict(builder.frame_cdr(r))['~/cmd_vel']
    twist = builder.store.deserialize_cdr(raw, 'geometry_msgs/msg/Twist')
    want = {'forward': (0.3, 0.0), 'left': (0.0, 0.6), 'right': (0.0, -0.6), 'stop': (0.0, 0.0)}
    assert (twist.linear.x, twist.angular.z) == want[action] == twists.of(action)
    assert np.sign(twist.angular.z) == np.sign(COMMANDS[action][1])
