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

"""rosbags -> rclpy conversion copies every field (found by mutation testing).

Run against stand-in message modules (no ROS here), on rosbags messages of the pinned
typestore: each converted message must hold exactly the source's values, field by field.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from dmil_ros.bagio import typestore
from tests.ros.stubs import message_module


@pytest.fixture
def convert(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    modules = {
        'builtin_interfaces.msg': message_module('Time'),
        'diagnostic_msgs.msg': message_module('DiagnosticArray', 'DiagnosticStatus', 'KeyValue'),
        'geometry_msgs.msg': message_module('Twist', 'TwistStamped', 'Vector3'),
        'sensor_msgs.msg': message_module('JointState'),
        'std_msgs.msg': message_module('Header'),
    }
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delitem(sys.modules, 'dmil_ros.ros.convert', raising=False)
    yield importlib.import_module('dmil_ros.ros.convert')
    sys.modules.pop('dmil_ros.ros.convert', None)


def _header(sec: int, nanosec: int, frame_id: str) -> Any:
    t = typestore().types
    stamp = t['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)
    return t['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)


def test_joint_state_copies_header_names_and_every_array(convert: Any) -> None:
    src = typestore().types['sensor_msgs/msg/JointState'](
        header=_header(12, 345_678_901, 'camera_optical_frame'),
        name=['forward', 'left', 'right', 'stop'],
        position=np.array([0.1, 0.2, 0.3, 0.4]),
        velocity=np.array([1.5, -2.5, 3.5, 0.0]),
        effort=np.array([-7.0, 8.25]),
    )
    out = convert.joint_state(src)
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (12, 345_678_901)
    assert out.header.frame_id == 'camera_optical_frame'
    assert out.name == ['forward', 'left', 'right', 'stop']
    assert out.position == [0.1, 0.2, 0.3, 0.4]
    assert out.velocity == [1.5, -2.5, 3.5, 0.0]
    assert out.effort == [-7.0, 8.25]
    assert all(type(v) is float for v in (*out.position, *out.velocity, *out.effort))


def test_diagnostic_array_copies_each_status_and_key_value(convert: Any) -> None:
    t = typestore().types
    kv = t['diagnostic_msgs/msg/KeyValue']
    status = [
        t['diagnostic_msgs/msg/DiagnosticStatus'](
            level=level,
            name=f'dmil/{level}',
            message=f'message {level}',
            hardware_id=f'hw{level}',
            values=[kv(key='frames', value=str(10 + level)), kv(key='provider', value='cpu')],
        )
        for level in (0, 1, 2, 3)
    ]
    src = t['diagnostic_msgs/msg/DiagnosticArray'](header=_header(3, 4, ''), status=status)
    out = convert.diagnostic_array(src)
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (3, 4)
    assert len(out.status) == 4
    for level, s in enumerate(out.status):
        assert s.level == bytes([level])  # rclpy's 'byte': bytes of length 1
        assert (s.name, s.message, s.hardware_id) == (
            f'dmil/{level}',
            f'message {level}',
            f'hw{level}',
        )
        assert [(v.key, v.value) for v in s.values] == [
            ('frames', str(10 + level)),
            ('provider', 'cpu'),
        ]


def test_twist_copies_all_six_components(convert: Any) -> None:
    t = typestore().types
    vec = t['geometry_msgs/msg/Vector3']
    src = t['geometry_msgs/msg/Twist'](
        linear=vec(x=1.0, y=2.0, z=3.0), angular=vec(x=-4.0, y=-5.0, z=-6.0)
    )
    out = convert.twist(src)
    assert (out.linear.x, out.linear.y, out.linear.z) == (1.0, 2.0, 3.0)
    assert (out.angular.x, out.angular.y, out.angular.z) == (-4.0, -5.0, -6.0)


def test_converters_map_each_type_to_its_own_class_and_function(convert: Any) -> None:
    for msgtype, (cls, fn) in convert.CONVERTERS.items():
        assert cls.__name__ == msgtype.rsplit('/', 1)[1]
        assert fn.__name__ == {
            'JointState': 'joint_state', 'DiagnosticArray': 'diagnostic_array', 'Twist': 'twist',
            'TwistStamped': 'twist_stamped',
        }[cls.__name__]  # fmt: skip
