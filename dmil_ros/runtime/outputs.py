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

"""Output messages, built as ``rosbags`` message objects (the node copies them into rclpy ones).

Only standard message types, so PlotJuggler / Foxglove / rqt / ``ros2 topic echo`` read them
without this package (rviz2 has no display for named values); every per-frame message carries
the camera frame's header (stamp and frame_id copied from the input; the LiDAR sweep's in
camera-silent degraded mode, :mod:`~dmil_ros.runtime.pipeline`). Topic names are private to
the node (``~/``), so they land under its namespace: ``/<namespace>/fusion_node/<name>``; the
diagnostics go to the absolute ``/diagnostics``, where diagnostic_updater publishes and
diagnostic_aggregator listens, whatever the namespace.

=====================  ==========================  ==========================================
topic                  type                        content
=====================  ==========================  ==========================================
``~/action``           sensor_msgs/JointState      name = [chosen action], position = [its p]
``~/action_probs``     sensor_msgs/JointState      name = ACTIONS, position = probabilities
``~/gates``            sensor_msgs/JointState      name = COMPONENTS, position = gates
``~/interactions``     sensor_msgs/JointState      name = R, U_camera, U_lidar, S (bits), from
                                                   the model's ``pid_broja`` or ``pid_lsmi``;
                                                   NaN where ``pid_broja`` has no evidence
                                                   and in degraded mode
                                                   (:mod:`~dmil_ros.runtime.pipeline`)
``~/synergy_alert``    sensor_msgs/JointState      name = alert (1/0), synergy, baseline, z
``/diagnostics``       diagnostic_msgs/            one DiagnosticStatus, named as
                       DiagnosticArray             diagnostic_updater names a task:
                                                   ``/<namespace>/fusion_node: fusion``
                                                   (:func:`~dmil_ros.runtime.diagnostics.
                                                   status_name`); about 1 Hz
``~/cmd_vel``          geometry_msgs/Twist, or     optional (off by default): the action as a
                       TwistStamped with the       velocity command; zero in degraded mode
                       camera frame's header       and for a non-finite model output
                       (``cmd_vel_stamped``)
=====================  ==========================  ==========================================

Why JointState: it is the one standard, stamped message with *named* float arrays; PlotJuggler
makes each name a series (``/ns/fusion_node/gates/synergy/position``), Foxglove plots a message
path (``/ns/fusion_node/gates.position[3]``), ``ros2 topic echo`` prints the names beside the
values. Outputs the model lacks (gates, PID terms) are not published and the diagnostics say
``unavailable``.
"""

from __future__ import annotations

import functools
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from dmil_ros.actions import ACTIONS, COMPONENTS, FAMILIES
from dmil_ros.bagio import typestore
from dmil_ros.runtime.diagnostics import Status
from dmil_ros.runtime.errors import RuntimeConfigError
from dmil_ros.runtime.records import FrameResult, Header

NODE_NAME: Final = 'fusion_node'
JOINT_STATE: Final = 'sensor_msgs/msg/JointState'
DIAGNOSTIC_ARRAY: Final = 'diagnostic_msgs/msg/DiagnosticArray'
TWIST: Final = 'geometry_msgs/msg/Twist'
TWIST_STAMPED: Final = 'geometry_msgs/msg/TwistStamped'
ALERT_NAMES: Final = ('alert', 'synergy', 'baseline', 'z')
DIAGNOSTICS: Final = '/diagnostics'  # absolute, as diagnostic_updater's publisher
CMD_VEL: Final = '~/cmd_vel'

# topic name (private or absolute) -> message type, in publication order; ``~/cmd_vel`` as an
# unstamped Twist: :meth:`OutputBuilder.topics` has the table of a given configuration
TOPICS: Final[dict[str, str]] = {
    '~/action': JOINT_STATE,
    '~/action_probs': JOINT_STATE,
    '~/gates': JOINT_STATE,
    '~/interactions': JOINT_STATE,
    '~/synergy_alert': JOINT_STATE,
    DIAGNOSTICS: DIAGNOSTIC_ARRAY,
    CMD_VEL: TWIST,
}


_NAME_TOKEN: Final = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def check_namespace(namespace: str, what: str = 'namespace') -> str:
    """``namespace`` when ROS 2 accepts it (rmw_validate_namespace: tokens of letters, digits
    and underscores, none starting with a digit, between single slashes, no trailing slash but
    for ``/`` itself; ``''`` is the root here), else :class:`RuntimeConfigError` naming ``what``.
    """
    tokens = namespace.strip('/').split('/') if namespace.strip('/') else []
    trailing = len(namespace) > 1 and namespace.endswith('/')
    if trailing or '//' in namespace or not all(_NAME_TOKEN.fullmatch(t) for t in tokens):
        msg = (
            f'{what} {namespace!r} is not a ROS 2 namespace (letters, digits and underscores '
            'between single slashes, no token starting with a digit, no trailing slash)'
        )
        raise RuntimeConfigError(msg)
    return namespace


def resolve(name: str, namespace: str = '', node: str = NODE_NAME) -> str:
    """ROS 2 name resolution for this node's relative (``x``) and private (``~/x``, ``~``)
    names (rcl_expand_topic_name, without its ``{node}`` / ``{ns}`` substitutions)."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    if name.startswith('/'):
        return name
    if name == '~':
        return f'{ns}/{node}'
    if name.startswith('~/'):
        return f'{ns}/{node}/{name[2:]}'
    return f'{ns}/{name}'


def node_fqn(namespace: str = '', node: str = NODE_NAME) -> str:
    """The node's fully qualified name, as rclpy's ``Node.get_fully_qualified_name()``:
    ``/fusion_node`` in the root namespace, ``/robot1/fusion_node`` in ``robot1``."""
    return resolve('~', namespace, node)


@dataclass(frozen=True)
class Twists:
    """Velocity per action for the optional ``~/cmd_vel`` output."""

    linear: float = 0.3  # m/s for 'forward'
    angular: float = 0.6  # rad/s for 'left' (positive) and 'right' (negative)

    def __post_init__(self) -> None:
        # a NaN or infinite command would reach the base controller
        for name in ('linear', 'angular'):
            value = getattr(self, name)
            if not math.isfinite(value):
                msg = f'cmd_vel.{name}={value!r} must be a finite velocity'
                raise RuntimeConfigError(msg)

    def of(self, action: str) -> tuple[float, float]:
        return {
            'forward': (self.linear, 0.0),
            'left': (0.0, self.angular),
            'right': (0.0, -self.angular),
        }.get(action, (0.0, 0.0))


class StaleCommand:
    """When to send a zero ``~/cmd_vel``: Twist has no stamp, so a base keeps the last command
    until its own timeout (a TwistStamped one can be expired by its stamp, but only by a base
    that checks it); once the last non-zero command is older than ``timeout`` s (no frame
    came: input stopped, frames dropped), one zero command is due. Times are seconds on a
    monotonic clock. ``frame_id``: the last stamped command's, for the zero command's header."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.frame_id = ''
        self._moving_since: float | None = None  # time of the last non-zero command

    def sent(self, command: Any, now: float) -> None:
        """Record a command (a Twist or a TwistStamped, rosbags or rclpy) as published."""
        header = getattr(command, 'header', None)
        if header is not None:
            self.frame_id = str(header.frame_id)
        twist = getattr(command, 'twist', command)
        self._moving_since = now if (twist.linear.x or twist.angular.z) else None

    def due(self, now: float) -> bool:
        """True once per stale non-zero command: the caller sends a zero one."""
        since = self._moving_since
        if since is None or now - since <= self.timeout:
            return False
        self._moving_since = None
        return True


_CDR_LE: Final = b'\x00\x01\x00\x00'  # encapsulation: CDR, little endian
_U32: Final = struct.Struct('<I')
_STAMP: Final = struct.Struct('<iI')


def _cdr_string(text: bytes, offset: int) -> bytes:
    """A CDR string at ``offset`` (past the encapsulation): pad to 4, uint32 length, bytes, NUL."""
    return b'\x00' * (-offset % 4) + _U32.pack(len(text) + 1) + text + b'\x00'


_MIDDLE: dict[tuple[str, tuple[bytes, ...]], tuple[bytes, bytes]] = {}


def _middle(frame_id: str, names: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    """frame_id + names + position-count padding, and the 8-byte padding before the doubles.

    Everything between the stamp and the position values depends only on (frame_id, names),
    so it is built once per pair (a node publishes a handful of them).
    """
    key = (frame_id, names)
    hit = _MIDDLE.get(key)
    if hit is None:
        # 1. offsets are relative to the end of the encapsulation header; the stamp is 8 bytes
        body = _cdr_string(frame_id.encode(), 8)
        body += b'\x00' * (-(8 + len(body)) % 4) + _U32.pack(len(names))
        for name in names:
            body += _cdr_string(name, 8 + len(body))
        # 2. position's element count, aligned to 4; the doubles then align to 8
        body += b'\x00' * (-(8 + len(body)) % 4)
        pad8 = b'\x00' * (-(8 + len(body) + 4) % 8)
        hit = (body, pad8)
        if len(_MIDDLE) > 256:
            _MIDDLE.clear()
        _MIDDLE[key] = hit
    return hit


_EMPTY_TAIL: Final = b'\x00' * 8  # velocity and effort: two empty sequences


def _doubles(values: Any) -> bytes:
    """``values`` as little-endian float64 bytes, as ``np.asarray(values, '<f8').reshape(-1)``.

    A numeric array or a flat sequence of numbers (what the pipeline hands over) is packed with
    :mod:`struct`; anything else (a scalar, nested sequences, numeric strings) goes through numpy.
    """
    try:
        if isinstance(values, np.ndarray) and values.dtype.kind in 'biuf':
            floats = values.ravel().tolist()
        else:
            floats = list(values)
        return _packer(len(floats)).pack(*floats)
    except (TypeError, struct.error):
        return np.asarray(values, '<f8').tobytes()


@functools.lru_cache(maxsize=64)
def _packer(n: int) -> struct.Struct:
    return struct.Struct(f'<{n}d')


def joint_state_cdr(
    h: Header, names: tuple[bytes, ...], values: Any, head: bytes | None = None
) -> bytes:
    """``sensor_msgs/JointState`` CDR bytes with empty velocity/effort, written directly.

    Byte-identical to ``typestore.serialize_cdr`` (tests/runtime/test_outputs_cdr.py) at a
    fraction of the cost (benchmarks/bench_runtime.py); alignment is relative to the end of
    the 4-byte encapsulation header, as in the CDR spec. ``head`` is :func:`cdr_head` of ``h``
    when the caller encodes several messages of one frame.
    """
    position = _doubles(values)
    n = len(position) // 8
    body, pad8 = _middle(h.frame_id, names)
    return b''.join(
        (
            cdr_head(h) if head is None else head,
            body,
            _U32.pack(n),
            pad8 if n else b'',
            position,
            _EMPTY_TAIL,
        )
    )


def cdr_head(h: Header) -> bytes:
    """The encapsulation header and the stamp: the first 12 bytes of a stamped message."""
    return _CDR_LE + _STAMP.pack(h.sec, h.nanosec)


_TWIST: Final = struct.Struct('<6d')  # linear x y z, angular x y z


def twist_cdr(linear: float, angular: float, h: Header | None = None) -> bytes:
    """``geometry_msgs/Twist`` CDR bytes (``h`` None) or ``TwistStamped`` with header ``h``.

    Byte-identical to ``typestore.serialize_cdr`` (tests/runtime/test_outputs_cdr.py). Twist:
    six float64, aligned to 8 at offset 0. TwistStamped: the stamp, the frame_id string, the
    padding to 8, then the same six float64 (offsets past the encapsulation header).
    """
    values = _TWIST.pack(linear, 0.0, 0.0, 0.0, 0.0, angular)
    if h is None:
        return _CDR_LE + values
    frame_id = _cdr_string(h.frame_id.encode(), 8)
    pad8 = b'\x00' * (-(8 + len(frame_id)) % 8)
    return b''.join((cdr_head(h), frame_id, pad8, values))


def _names(values: tuple[str, ...] | list[str]) -> tuple[bytes, ...]:
    return tuple(v.encode() for v in values)


_ACTION_NAMES: Final = tuple((a.encode(),) for a in ACTIONS)
_ACTIONS: Final = _names(ACTIONS)
_COMPONENTS: Final = _names(COMPONENTS)
_FAMILIES: Final = _names(FAMILIES)
_ALERT: Final = _names(ALERT_NAMES)
_NO_TERMS: Final = np.full(len(FAMILIES), np.nan, np.float32)  # a degraded frame's interactions
_NO_TERMS.flags.writeable = False  # shared by every frame


class OutputBuilder:
    """Builds the output messages of a frame (rosbags objects, Humble typestore).

    ``twists``: the ``~/cmd_vel`` velocities (None: no ``~/cmd_vel``); ``stamped``: publish it
    as ``geometry_msgs/TwistStamped`` carrying the frame's header (ros2_control's
    diff_drive_controller: the only type on Jazzy, the default on Humble) instead of Twist.
    """

    def __init__(self, twists: Twists | None = None, stamped: bool = False) -> None:
        self.stamped = stamped
        self._topics = {**TOPICS, CMD_VEL: TWIST_STAMPED if stamped else TWIST}
        self.store = typestore()
        t = self.store.types
        self._header = t['std_msgs/msg/Header']
        self._time = t['builtin_interfaces/msg/Time']
        self._joint = t[JOINT_STATE]
        self._array = t[DIAGNOSTIC_ARRAY]
        self._status = t['diagnostic_msgs/msg/DiagnosticStatus']
        self._kv = t['diagnostic_msgs/msg/KeyValue']
        self._twist = t[TWIST]
        self._twist_stamped = t[TWIST_STAMPED]
        self._vector = t['geometry_msgs/msg/Vector3']
        self._empty = np.zeros(0, np.float64)
        self.twists = twists

    def topics(self) -> dict[str, str]:
        """Topic -> message type of this configuration, in publication order (``~/cmd_vel``:
        Twist or TwistStamped); a copy, for the publishers or the bag's connections."""
        return dict(self._topics)

    def header(self, h: Header) -> Any:
        return self._header(stamp=self._time(sec=h.sec, nanosec=h.nanosec), frame_id=h.frame_id)

    def joint_state(self, h: Header, names: list[str], values: Any) -> Any:
        return self._joint(
            header=self.header(h),
            name=names,
            position=np.asarray(values, np.float64).reshape(-1),
            velocity=self._empty,
            effort=self._empty,
        )

    def frame(self, r: FrameResult) -> list[tuple[str, Any]]:
        """``[(topic, message), ...]`` for one frame, in :meth:`topics` order.

        A frame whose model output was not finite (``r.valid`` False) publishes only a zero
        velocity command (when ``~/cmd_vel`` is on): no action, and the robot stops. A degraded
        frame (one sensor silent, its input zeroed) publishes NaN interactions and NaN synergy,
        baseline and z: terms read off a zeroed modality are not estimates. A stamped
        ``~/cmd_vel`` carries the frame's header, as the other outputs.
        """
        if not r.valid:
            if self.twists is None:
                return []
            return [(CMD_VEL, self.twist(0.0, 0.0, r.header))]
        out = [
            ('~/action', self.joint_state(r.header, [r.action_label], [r.probs[r.action]])),
            ('~/action_probs', self.joint_state(r.header, list(ACTIONS), r.probs)),
        ]
        if r.gates is not None:
            out.append(('~/gates', self.joint_state(r.header, list(COMPONENTS), r.gates)))
        pid = r.interactions
        if pid is not None:
            pid = _NO_TERMS if r.degraded else pid  # one modality zeroed: no estimate
            out.append(('~/interactions', self.joint_state(r.header, list(FAMILIES), pid)))
            m = r.monitor
            if m is None:  # degraded: the alert keeps its state, no new estimate
                values = [float(r.alert), math.nan, math.nan, math.nan]
            else:
                values = [float(m.alert), m.synergy, m.baseline, m.z]
            out.append(('~/synergy_alert', self.joint_state(r.header, list(ALERT_NAMES), values)))
        if self.twists is not None:
            linear, angular = (0.0, 0.0) if r.degraded else self.twists.of(r.action_label)
            out.append((CMD_VEL, self.twist(linear, angular, r.header)))
        return out

    def frame_cdr(self, r: FrameResult) -> list[tuple[str, bytes]]:
        """:meth:`frame` already CDR-encoded (what the replay writes), without message objects.

        Same topics, order and bytes as ``[(t, serialize(t, m)) for t, m in frame(r)]``.
        """
        h = r.header
        stamp = h if self.stamped else None
        if not r.valid:
            return [(CMD_VEL, twist_cdr(0.0, 0.0, stamp))] if self.twists is not None else []
        head = cdr_head(h)
        probs = r.probs.tolist()
        out = [
            (
                '~/action',
                joint_state_cdr(h, _ACTION_NAMES[r.action], probs[r.action : r.action + 1], head),
            ),
            ('~/action_probs', joint_state_cdr(h, _ACTIONS, probs, head)),
        ]
        if r.gates is not None:
            out.append(('~/gates', joint_state_cdr(h, _COMPONENTS, r.gates, head)))
        pid = r.interactions
        if pid is not None:
            pid = _NO_TERMS if r.degraded else pid
            out.append(('~/interactions', joint_state_cdr(h, _FAMILIES, pid, head)))
            m = r.monitor
            if m is None:
                values = [float(r.alert), math.nan, math.nan, math.nan]
            else:
                values = [float(m.alert), m.synergy, m.baseline, m.z]
            out.append(('~/synergy_alert', joint_state_cdr(h, _ALERT, values, head)))
        if self.twists is not None:
            linear, angular = (0.0, 0.0) if r.degraded else self.twists.of(r.action_label)
            out.append((CMD_VEL, twist_cdr(linear, angular, stamp)))
        return out

    def twist(self, linear: float, angular: float, header: Header | None = None) -> Any:
        """A ``~/cmd_vel`` message: a Twist, or a TwistStamped with ``header`` when this
        builder is ``stamped`` (which then needs one: :class:`RuntimeConfigError` without)."""
        twist = self._twist(
            linear=self._vector(x=linear, y=0.0, z=0.0),
            angular=self._vector(x=0.0, y=0.0, z=angular),
        )
        if not self.stamped:
            return twist
        if header is None:
            msg = 'a stamped ~/cmd_vel (cmd_vel_stamped) needs a header: stamp and frame_id'
            raise RuntimeConfigError(msg)
        return self._twist_stamped(header=self.header(header), twist=twist)

    def diagnostics(self, h: Header, statuses: list[Status]) -> Any:
        return self._array(
            header=self.header(h),
            status=[
                self._status(
                    level=s.level,
                    name=s.name,
                    message=s.message,
                    hardware_id=s.hardware_id,
                    values=[self._kv(key=k, value=v) for k, v in s.values],
                )
                for s in statuses
            ],
        )

    def serialize(self, topic: str, msg: Any) -> bytes:
        """CDR bytes, exactly as ROS 2 would put them on the wire / in a bag."""
        return bytes(self.store.serialize_cdr(msg, self._topics[topic]))
