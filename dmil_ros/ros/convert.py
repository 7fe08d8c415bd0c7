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

"""rosbags output messages -> rclpy messages, by attribute copying (ROS imports inside).

The core builds every output as a ``rosbags`` message object (:mod:`dmil_ros.runtime.outputs`);
the node copies the attributes into the rclpy class of the same type, so the two paths publish
the same fields (the replay test checks the CDR bytes of the rosbags side). Inputs need no
conversion: the decoders read rclpy messages directly (same attribute names).
"""

from __future__ import annotations

from typing import Any

from builtin_interfaces.msg import Time  # type: ignore[import-not-found,unused-ignore]
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped, Vector3
from sensor_msgs.msg import JointState
from std_msgs.msg import Header


def header(src: Any) -> Header:
    return Header(
        stamp=Time(sec=int(src.stamp.sec), nanosec=int(src.stamp.nanosec)),
        frame_id=str(src.frame_id),
    )


def joint_state(src: Any) -> JointState:
    return JointState(
        header=header(src.header),
        name=[str(n) for n in src.name],
        position=[float(v) for v in src.position],
        velocity=[float(v) for v in src.velocity],
        effort=[float(v) for v in src.effort],
    )


def diagnostic_array(src: Any) -> DiagnosticArray:
    return DiagnosticArray(
        header=header(src.header),
        status=[
            DiagnosticStatus(
                level=bytes([int(s.level)]),  # 'byte' is bytes of length 1 in rclpy
                name=str(s.name),
                message=str(s.message),
                hardware_id=str(s.hardware_id),
                values=[KeyValue(key=str(kv.key), value=str(kv.value)) for kv in s.values],
            )
            for s in src.status
        ],
    )


def twist(src: Any) -> Twist:
    return Twist(
        linear=Vector3(x=float(src.linear.x), y=float(src.linear.y), z=float(src.linear.z)),
        angular=Vector3(x=float(src.angular.x), y=float(src.angular.y), z=float(src.angular.z)),
    )


def twist_stamped(src: Any) -> TwistStamped:
    return TwistStamped(header=header(src.header), twist=twist(src.twist))


CONVERTERS: dict[str, tuple[type, Any]] = {
    'sensor_msgs/msg/JointState': (JointState, joint_state),
    'diagnostic_msgs/msg/DiagnosticArray': (DiagnosticArray, diagnostic_array),
    'geometry_msgs/msg/Twist': (Twist, twist),
    'geometry_msgs/msg/TwistStamped': (TwistStamped, twist_stamped),
}
