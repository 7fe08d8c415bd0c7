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

"""The hand-written JointState and Twist(Stamped) CDR encoders against rosbags' serializer (the
reference), and what ``~/cmd_vel`` carries."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.actions import ACTIONS
from dmil_ros.bagio import typestore
from dmil_ros.runtime.errors import RuntimeConfigError
from dmil_ros.runtime.monitor import MonitorState
from dmil_ros.runtime.outputs import (
    TOPICS,
    OutputBuilder,
    StaleCommand,
    Twists,
    joint_state_cdr,
    resolve,
    twist_cdr,
)
from dmil_ros.runtime.records import FrameResult, Header
from dmil_ros.sim.expert import COMMANDS

BUILDER = OutputBuilder()
STORE = typestore()  # the reference: rosbags' own message classes and serializer
TYPES = STORE.types
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


@pytest.mark.parametrize(
    ('twists', 'stamped'), [(None, False), (Twists(), False), (Twists(), True)]
)
def test_frame_cdr_equals_serialised_frame(twists: Twists | None, stamped: bool) -> None:
    builder = OutputBuilder(twists, stamped=stamped)
    for gates in (False, True):
        for pid in (False, True):
            for monitor, degraded in ((True, ''), (False, 'lidar_silent')):
                r = _result(gates, pid, monitor, degraded)
                want = [(t, builder.serialize(t, m)) for t, m in builder.frame(r)]
                assert builder.frame_cdr(r) == want
                back = builder.store.deserialize_cdr(want[0][1], 'sensor_msgs/msg/JointState')
                assert math.isclose(back.position[0], float(r.probs[r.action]))
    invalid = dataclasses.replace(_result(True, True, True, ''), valid=False)
    want = [(t, builder.serialize(t, m)) for t, m in builder.frame(invalid)]
    assert builder.frame_cdr(invalid) == want
    assert [t for t, _ in want] == ([] if twists is None else ['~/cmd_vel'])


FINITE = st.floats(allow_nan=False, allow_infinity=False)


def _reference_twist(linear: float, angular: float) -> Any:
    vector = TYPES['geometry_msgs/msg/Vector3']
    return TYPES['geometry_msgs/msg/Twist'](
        linear=vector(x=linear, y=0.0, z=0.0), angular=vector(x=0.0, y=0.0, z=angular)
    )


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    sec=st.integers(-(2**31), 2**31 - 1),
    nanosec=st.integers(0, 999_999_999),
    frame_id=NAME,
    linear=FINITE,
    angular=FINITE,
)
def test_twist_bytes_match_rosbags(
    sec: int, nanosec: int, frame_id: str, linear: float, angular: float
) -> None:
    """Twist and TwistStamped, written byte by byte (every frame_id length, so every padding
    before the float64s), equal rosbags' serialisation of messages built from its own types."""
    twist = _reference_twist(linear, angular)
    assert twist_cdr(linear, angular) == bytes(
        STORE.serialize_cdr(twist, 'geometry_msgs/msg/Twist')
    )
    stamped = TYPES['geometry_msgs/msg/TwistStamped'](
        header=TYPES['std_msgs/msg/Header'](
            stamp=TYPES['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
            frame_id=frame_id,
        ),
        twist=twist,
    )
    h = Header(sec, nanosec, frame_id)
    assert twist_cdr(linear, angular, h) == bytes(
        STORE.serialize_cdr(stamped, 'geometry_msgs/msg/TwistStamped')
    )


@pytest.mark.parametrize('degraded', ['', 'camera_silent'])
@pytest.mark.parametrize('valid', [True, False])
def test_a_stamped_cmd_vel_carries_the_frames_header(degraded: str, valid: bool) -> None:
    """cmd_vel_stamped: a TwistStamped with the camera frame's stamp and frame_id (what a base
    such as diff_drive_controller expires by its cmd_vel_timeout), also for the zero command
    of a degraded frame or of a non-finite model output."""
    builder = OutputBuilder(Twists(linear=0.3, angular=0.6), stamped=True)
    assert builder.topics()['~/cmd_vel'] == 'geometry_msgs/msg/TwistStamped'
    r = dataclasses.replace(_result(True, True, not degraded, degraded), valid=valid)
    for frame in (
        builder.frame_cdr(r),
        [(t, builder.serialize(t, m)) for t, m in builder.frame(r)],
    ):
        msg = STORE.deserialize_cdr(dict(frame)['~/cmd_vel'], 'geometry_msgs/msg/TwistStamped')
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)
        assert msg.header.frame_id == 'camera_optical_frame'
        moving = valid and not degraded
        want = Twists(0.3, 0.6).of(r.action_label) if moving else (0.0, 0.0)
        assert (msg.twist.linear.x, msg.twist.angular.z) == want


def test_the_cmd_vel_type_follows_the_builder() -> None:
    plain = OutputBuilder(Twists())
    assert plain.topics() == TOPICS  # the module table is the unstamped default
    assert plain.topics()['~/cmd_vel'] == 'geometry_msgs/msg/Twist'
    h = Header(1, 2, 'f')
    assert plain.twist(0.3, 0.0, h).__msgtype__ == 'geometry_msgs/msg/Twist'  # header unused
    stamped = OutputBuilder(Twists(), stamped=True)
    assert {t: m for t, m in stamped.topics().items() if t != '~/cmd_vel'} == {
        t: m for t, m in TOPICS.items() if t != '~/cmd_vel'
    }
    msg = stamped.twist(0.3, -0.6, h)
    assert msg.__msgtype__ == 'geometry_msgs/msg/TwistStamped'
    assert (msg.twist.linear.x, msg.twist.angular.z, msg.header.frame_id) == (0.3, -0.6, 'f')
    with pytest.raises(RuntimeConfigError, match='needs a header'):
        stamped.twist(0.0, 0.0)


def test_diagnostics_go_to_the_absolute_topic_in_any_namespace() -> None:
    """diagnostic_updater publishes on '/diagnostics' and diagnostic_aggregator listens there:
    a namespaced node's statuses must land there too, while the other outputs follow the
    namespace."""
    assert TOPICS['/diagnostics'] == 'diagnostic_msgs/msg/DiagnosticArray'
    for ns in ('', 'robot1', '/fleet/robot_1'):
        assert resolve('/diagnostics', ns) == '/diagnostics'
    assert resolve('~/action', 'robot1') == '/robot1/fusion_node/action'


@pytest.mark.parametrize('stamped', [False, True])
def test_stale_command_reads_twist_and_twist_stamped(stamped: bool) -> None:
    builder = OutputBuilder(Twists(), stamped=stamped)
    h = Header(7, 8, 'camera_optical_frame')
    command = StaleCommand(timeout=0.5)
    command.sent(builder.twist(0.3, 0.0, h), now=10.0)
    assert not command.due(10.4)
    assert command.due(10.6)  # the moving command went stale: one zero command
    assert not command.due(11.0)
    assert command.frame_id == ('camera_optical_frame' if stamped else '')
    command.sent(builder.twist(0.0, 0.0, h), now=20.0)  # a zero command needs no follow-up
    assert not command.due(30.0)


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
