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

"""The records the fusion pipeline passes along (ROS-free): a message's checked header, a
preprocessed message, a model input (pair or degraded frame), the per-frame result the node
publishes, and a topic's run of refused messages (:mod:`dmil_ros.runtime.pipeline`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dmil_ros.actions import ACTIONS
from dmil_ros.runtime.errors import DecodeError
from dmil_ros.runtime.monitor import MonitorState

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Header:
    """A message header: ``stamp`` (sec, nanosec) and ``frame_id``, copied from the input."""

    sec: int
    nanosec: int
    frame_id: str

    @property
    def ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec


@dataclass(frozen=True)
class Prepared:
    """One preprocessed message: model input, header, stage times (s)."""

    header: Header
    tensor: F32
    decode: float
    preprocess: float


@dataclass(frozen=True)
class Job:
    """One model input ready for inference: a pair, or one sensor in degraded mode."""

    header: Header  # the output's header (camera's; the LiDAR's when the camera is silent)
    image: F32
    lidar: F32
    lidar_stamp_ns: int | None
    camera_stamp_ns: int | None
    decode: float
    preprocess: float
    degraded: str = ''


@dataclass(frozen=True)
class FrameResult:
    """Everything the node publishes for one frame pair."""

    header: Header
    lidar_stamp_ns: int | None
    probs: F32  # (4,) over ACTIONS
    action: int
    gates: F32 | None  # (4,) over COMPONENTS, None when the model has no gates
    pid: dict[str, F32]  # 'pid_lsmi' / 'pid_broja' -> (4,) r, u_camera, u_lidar, s (bits)
    pid_source: str | None  # which of ``pid`` drives the monitor
    monitor: MonitorState | None  # None without a pid output, or in degraded mode
    alert: bool  # the synergy alert state after this frame
    degraded: str
    timings: dict[str, float]  # stage -> seconds for this frame
    valid: bool = True  # False: non-finite model output, counted; publishers skip the frame

    @property
    def action_label(self) -> str:
        return ACTIONS[self.action]

    @property
    def interactions(self) -> F32 | None:
        return self.pid.get(self.pid_source) if self.pid_source else None


def header_of(msg: Any, topic: str) -> Header:
    """The header of any ROS-like message (rosbags or rclpy), checked."""
    try:
        stamp = msg.header.stamp
        sec, nanosec, frame_id = int(stamp.sec), int(stamp.nanosec), str(msg.header.frame_id)
    except (AttributeError, TypeError, ValueError) as exc:
        text = f'header unreadable ({exc})'
        raise DecodeError(text, topic=topic, field='header', reason='header') from exc
    if not 0 <= nanosec < 1_000_000_000:
        text = f'header.stamp.nanosec {nanosec} out of range'
        raise DecodeError(text, topic=topic, field='header.stamp', reason='header')
    if not -(2**31) <= sec < 2**31:  # builtin_interfaces/Time.sec is an int32
        text = f'header.stamp.sec {sec} out of the int32 range'
        raise DecodeError(text, topic=topic, field='header.stamp', reason='header')
    if sec == 0 and nanosec == 0:  # unset: would read as a clock jump back, then as reordering
        text = (
            'header.stamp is 0 s 0 ns: not stamped (a driver that leaves the stamp unset, or '
            'use_sim_time without a /clock)'
        )
        raise DecodeError(text, topic=topic, field='header.stamp', reason='header')
    try:  # copied into every output message, encoded as UTF-8 there
        frame_id.encode()
    except UnicodeEncodeError as exc:
        text = f'header.frame_id {frame_id!r} is not valid UTF-8 ({exc.reason})'
        raise DecodeError(text, topic=topic, field='header.frame_id', reason='header') from exc
    return Header(sec, nanosec, frame_id)


def planar_warning(topic: str, beams: int) -> str:
    """What a planar LaserScan on ``topic`` means for a model of ``beams`` rows ('' for one
    row): it fills one row of the range image, so a model trained on a 3-D LiDAR (the shipped
    one) decides almost as from the camera alone. For the diagnostics, the node's start-up log
    and the replay's warnings."""
    if beams <= 1:
        return ''
    return (
        f'topic {topic!r}: a LaserScan fills 1 of the {beams} rows the model was trained on '
        '(a 3-D LiDAR): expect decisions close to camera-only'
    )


@dataclass
class RefusalRun:
    """The refused messages of one topic since its last usable one (or its first message)."""

    count: int = 0  # refused in a row
    at: int = 0  # the topic's ``received`` count at the latest of them
    reasons: Counter[str] = field(default_factory=Counter)  # reason -> refused in the run
    last: str = ''  # the latest refusal's text, without its topic
