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

"""rosbags output messages -> rclpy messages (dmil_ros/ros/convert.py), against stand-in
message modules (no ROS here).

Each stand-in class takes exactly the fields of its ROS message definition (read from rosbags'
typestore, which carries the ``.msg`` definitions), as rosidl's generated ``__init__`` asserts;
a field a converter forgets stays unset and fails the comparison below.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import types
from typing import Any

import numpy as np
import pytest

from dmil_ros.bagio import typestore
from dmil_ros.runtime.diagnostics import Status
from dmil_ros.runtime.outputs import OutputBuilder, Twists
from dmil_ros.runtime.records import Header

STORE = typestore()
UNSET = object()
MODULES = {
    'builtin_interfaces.msg': ('builtin_interfaces/msg', ('Time',)),
    'diagnostic_msgs.msg': (
        'diagnostic_msgs/msg',
        ('DiagnosticArray', 'DiagnosticStatus', 'KeyValue'),
    ),
    'geometry_msgs.msg': ('geometry_msgs/msg', ('Twist', 'TwistStamped', 'Vector3')),
    'sensor_msgs.msg': ('sensor_msgs/msg', ('JointState',)),
    'std_msgs.msg': ('std_msgs/msg', ('Header',)),
}


def _fields(msgtype: str) -> tuple[str, ...]:
    """The message definition's fields (not its constants), in order."""
    return tuple(name for name, _ in STORE.fielddefs[msgtype][1])


def _stand_in(msgtype: str) -> type:
    fields = _fields(msgtype)

    def __init__(self: Any, **kwargs: Any) -> None:  # noqa: N807
        unknown = set(kwargs) - set(fields)
        assert not unknown, f'{msgtype} has no field(s) {unknown}'  # rosidl's own assert
        for name in fields:
            setattr(self, name, kwargs.get(name, UNSET))

    return type(msgtype.rsplit('/', 1)[1], (), {'__init__': __init__, 'msgtype': msgtype})


@pytest.fixture
def convert(monkeypatch: pytest.MonkeyPatch) -> Any:
    for module, (package, names) in MODULES.items():
        mod = types.ModuleType(module)
        for name in names:
            setattr(mod, name, _stand_in(f'{package}/{name}'))
        monkeypatch.setitem(sys.modules, module, mod)
    monkeypatch.delitem(sys.modules, 'dmil_ros.ros.convert', raising=False)
    yield importlib.import_module('dmil_ros.ros.convert')
    sys.modules.pop('dmil_ros.ros.convert', None)


def _same(src: Any, out: Any, path: str) -> None:
    """``out`` (stand-in) carries every field of ``src`` (rosbags), with rclpy's Python types."""
    if dataclasses.is_dataclass(src):
        assert type(out).msgtype == src.__msgtype__, path  # type: ignore[attr-defined]
        for name in _fields(src.__msgtype__):  # type: ignore[attr-defined]
            _same(getattr(src, name), getattr(out, name), f'{path}.{name}')
    elif isinstance(src, (list, np.ndarray)):
        assert isinstance(out, list), path
        assert len(out) == len(src), path
        for k, (a, b) in enumerate(zip(src, out, strict=True)):
            _same(a, b, f'{path}[{k}]')
    elif path.endswith('.level'):  # 'byte': bytes of length 1 in rclpy
        assert out == bytes([src]), path
    else:
        assert out is not UNSET, path
        assert type(out) in (int, float, str), (path, type(out))
        assert out == src or (isinstance(src, float) and np.isnan(src) and np.isnan(out)), path


def test_every_output_type_has_a_converter(convert: Any) -> None:
    for stamped in (False, True):
        wanted = set(OutputBuilder(Twists(), stamped=stamped).topics().values())
        assert wanted <= set(convert.CONVERTERS), wanted - set(convert.CONVERTERS)


def test_twist_stamped_copies_header_and_twist(convert: Any) -> None:
    builder = OutputBuilder(Twists(), stamped=True)
    src = builder.twist(0.3, -0.6, Header(1_700_000_000, 123_456_789, 'camera_optical_frame'))
    cls, fn = convert.CONVERTERS['geometry_msgs/msg/TwistStamped']
    out = fn(src)
    assert isinstance(out, cls)
    _same(src, out, 'TwistStamped')
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert out.header.frame_id == 'camera_optical_frame'
    assert (out.twist.linear.x, out.twist.angular.z) == (0.3, -0.6)


def test_the_other_converters_copy_every_field(convert: Any) -> None:
    builder = OutputBuilder(Twists())
    h = Header(5, 6, 'f')
    status = Status(2, '/robot1/fusion_node: fusion', 'no input', 'host', (('model', 'm'),))
    for msgtype, src in (
        ('geometry_msgs/msg/Twist', builder.twist(0.3, 0.0)),
        ('sensor_msgs/msg/JointState', builder.joint_state(h, ['a', 'b'], [0.5, np.nan])),
        ('diagnostic_msgs/msg/DiagnosticArray', builder.diagnostics(h, [status])),
    ):
        cls, fn = convert.CONVERTERS[msgtype]
        out = fn(src)
        assert isinstance(out, cls)
        _same(src, out, msgtype)
