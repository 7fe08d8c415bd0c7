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

"""Sensor fault injection for replay streams: what broken drivers and networks do to a robot.

A stream is a sequence of :class:`Event` (topic, arrival time, message). Each fault rewrites the
stream the way a real failure would, without touching message payloads:

* :class:`DropOut`: a sensor falls silent for a while (driver crash, cable, USB reset);
* :class:`Burst`: a topic's messages are held back and then arrive all at once (a stalled
  transport or executor), header stamps unchanged;
* :class:`Delay`: a topic arrives late by a fixed latency (slow driver, transport);
* :class:`Duplicate`: a message is delivered twice (QoS retransmission, a bridge loop);
* :class:`Reorder`: two consecutive messages of a topic arrive swapped (multi-path transport);
* :class:`ClockJump`: every header stamp from some point on is shifted (NTP/PTP step, a robot
  clock reset); negative offsets jump back;
* :class:`Loop`: the whole stream played several times, as ``ros2 bag play --loop`` does: the
  header stamps start over at each pass (a clock jump back by the stream's span), arrival time
  keeps running;
* :class:`RateChange`: a topic keeps only every ``keep_every``-th message for a while (a driver
  dropping to a lower rate, bandwidth throttling).

Times (``start``, ``duration``, ``at``) are seconds after the first event's arrival. Faults are
applied in order by :func:`inject`; the random ones (duplicates, reordering) draw from one
``random.Random(seed)``, so a fault plan is deterministic per seed. Messages are any objects
with a ROS ``header.stamp`` (rosbags or rclpy); restamped copies are made with
:func:`dataclasses.replace` (rosbags) or :func:`copy.deepcopy` (rclpy), so the input stream is
never modified.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dmil_ros.runtime.errors import RuntimeConfigError

NS = 1_000_000_000


@dataclass(frozen=True)
class Event:
    """One message as it reaches the pipeline: ``log_ns`` is its arrival (receive/log) time."""

    topic: str
    log_ns: int
    msg: Any

    @property
    def stamp_ns(self) -> int:
        return stamp_ns(self.msg)


def stamp_ns(msg: Any) -> int:
    """Header stamp of a ROS-like message in nanoseconds."""
    stamp = msg.header.stamp
    return int(stamp.sec) * NS + int(stamp.nanosec)


def restamp(msg: Any, ns: int) -> Any:
    """A copy of ``msg`` with ``header.stamp`` = ``ns`` (clamped at 0: stamps are unsigned).

    rosbags messages (dataclasses) share their payload with the original; other messages
    (rclpy's ``__slots__`` classes) are deep-copied, then restamped.
    """
    ns = max(int(ns), 0)
    is_record: bool = dataclasses.is_dataclass(msg)  # a bool, so msg keeps its type Any
    if not is_record:
        out = copy.deepcopy(msg)
        out.header.stamp.sec, out.header.stamp.nanosec = ns // NS, ns % NS
        return out
    stamp = msg.header.stamp
    new_stamp = dataclasses.replace(stamp, sec=ns // NS, nanosec=ns % NS)
    return dataclasses.replace(msg, header=dataclasses.replace(msg.header, stamp=new_stamp))


class Fault(Protocol):
    """A stream rewrite: ``apply(events, t0_ns, rng) -> events``."""

    def apply(self, events: list[Event], t0_ns: int, rng: random.Random) -> list[Event]: ...


def _check_window(name: str, start: float, duration: float) -> None:
    if not (start >= 0 and duration > 0):
        msg = f'{name}: start {start!r} must be >= 0 and duration {duration!r} > 0 seconds'
        raise RuntimeConfigError(msg)


def _in(event: Event, t0_ns: int, start: float, duration: float) -> bool:
    t = (event.log_ns - t0_ns) / NS
    return start <= t < start + duration


@dataclass(frozen=True)
class DropOut:
    """Messages of ``topics`` arriving in ``[start, start + duration)`` are lost."""

    topics: tuple[str, ...]
    start: float
    duration: float

    def __post_init__(self) -> None:
        _check_window('DropOut', self.start, self.duration)

    def apply(self, events: list[Event], t0_ns: int, rng: random.Random) -> list[Event]:
        return [
            e
            for e in events
            if not (e.topic in self.topics and _in(e, t0_ns, self.start, self.duration))
        ]


@dataclass(frozen=True)
class Burst:
    """Messages of ``topic`` in the window are held and all arrive at its end, in order."""

    topic: str
    start: float
    duration: float

    def __post_init__(self) -> None:
        _check_window('Burst', self.start, self.duration)

    def apply(self, events: list[Event], t0_ns: int, rng: random.Random) -> list[Event]:
        release = t0_ns + round((self.start + self.duration) * NS)
        out = []
        for e in events:
            if e.topic == self.topic and _in(e, t0_ns, self.start, self.duration):
                out.append(dataclasses.replace(e, log_ns=release))
            else:
                out.append(e)
        # stable sort: held messages land after everything that arrived before the release
        return sorted(out, key=lambda e: e.log_ns)


@dataclass(frozen=True)
class Delay:
    """Every message of ``topic`` arrives ``seconds`` late (a slow driver or transport).

    Header stamps are unchanged; the stream is re-sorted by arrival, so the delayed topic's
    messages now arrive after the other sensor's later messages.
    """

    topic: str
    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            msg = f'Delay: seconds {self.seconds!r} must be positive'
            raise RuntimeConfigError(msg)

    def apply(self, events: list[Event], t0_ns: int, rng: random.Random) -> list[Event]:
        shift = round(self.seconds * NS)
        out = [
            dataclasses.replace(e, log_ns=e.log_ns + shift) if e.topic == self.topic else e
            for e in events
        ]
        return sorted(out, key=lambda e: e.log_ns)


@dataclass(frozen=True)
class Duplicate:
    """Each message of ``topic`` is delivered twice with probability ``probability``."""

    topic: str
    probability: float

    def __post_init__(self) -> None:
        if not 0 <= self.probability <= 1:
            msg = f'Duplicate: probability {self.probability!r} not in [0, 1]'
            raise RuntimeConfigError(msg)

    def apply(self, events: list[Event], t0_ns: int, rng: random.Random) -> list[Event]:
        out = []
        for e in events:
            out.append(e)
            if e.topic == self.topic and rng.random() < self.probability:
                out.append(e)
        return out


@dataclass(frozen=True)
class Reorder:
    """With ``probability``, a message of ``topic`` swaps places with the topic's next one.

    The two keep their own header stamps and exchange arrival times, so the topic's stamps
    arrive out of order while the arrival clock stays monotonic.
    """

    topic: str
    probability: float

    def __post_init__(self) -> None:
        if not 0 <= self.probability <= 1:
            msg = f'Reorder: probability {self.probability!r} not in [0, 1]'
            raise RuntimeConfigError(msg)

    def apply(self, events: list[Event], t0_ns: int, rng: random.Random) -> list[Event]:
        out = list(events)
        idx = [i for i, e in enumerate(out) if e.topic == self.topic]
        k = 0
        while k < len(idx) - 1:
            if rng.random() < self.probability:
                i, j = idx[k], idx[k + 1]
                a, b = out[i], out[j]
                out[i] = dataclasses.replace(b, log_ns=a.log_ns)
                out[j] = dataclasses.replace(a, log_ns=b.log_ns)
                k += 2  # a swapped pair is not swapped again
            else:
                k += 1
        return out


@dataclass(frozen=True)
class ClockJump:
    """Header stamps of every message arriving at/after ``at`` are shifted by ``offset`` s."""

    at: float
    offset: float

    def __post_init__(self) -> None:
        if not self.at >= 0 or self.offset == 0:
            msg = f'ClockJump: at {self.at!r} must be >= 0 and offset {self.offset!r} non-zero'
            raise RuntimeConfigError(msg)

    def apply(self, events: list[Event], t0_ns: int, rng: random.Random) -> list[Event]:
        shift = round(self.offset * NS)
        cut = t0_ns + round(self.at * NS)
        return [
            dataclasses.replace(e, msg=restamp(e.msg, e.stamp_ns + shift))
            if e.log_ns >= cut
            else e
            for e in events
        ]


@dataclass(frozen=True)
class Loop:
    """The stream played ``times`` times back to back (``ros2 bag play --loop``).

    Header stamps repeat at every pass; arrival times continue, one nominal period after the
    previous pass's last message.
    """

    times: int
    gap: float = 0.05  # s between the end of one pass and the start of the next

    def __post_init__(self) -> None:
        if self.times < 1 or self.gap < 0:
            msg = f'Loop: times {self.times!r} must be >= 1 and gap {self.gap!r} >= 0'
            raise RuntimeConfigError(msg)

    def apply(self, events: list[Event], t0_ns: int, rng: random.Random) -> list[Event]:
        if not events:
            return []
        span = events[-1].log_ns - events[0].log_ns + round(self.gap * NS)
        return [
            dataclasses.replace(e, log_ns=e.log_ns + k * span)
            for k in range(self.times)
            for e in events
        ]


@dataclass(frozen=True)
class RateChange:
    """In ``[start, start + duration)`` only every ``keep_every``-th message of ``topic`` arrives.

    ``keep_every=2`` halves a 20 Hz camera to 10 Hz; ``keep_every=4`` turns a 10 Hz LiDAR into
    2.5 Hz.
    """

    topic: str
    start: float
    duration: float
    keep_every: int

    def __post_init__(self) -> None:
        _check_window('RateChange', self.start, self.duration)
        if self.keep_every < 1:
            msg = f'RateChange: keep_every {self.keep_every!r} must be >= 1'
            raise RuntimeConfigError(msg)

    def apply(self, events: list[Event], t0_ns: int, rng: random.Random) -> list[Event]:
        out = []
        n = 0
        for e in events:
            if e.topic == self.topic and _in(e, t0_ns, self.start, self.duration):
                n += 1
                if (n - 1) % self.keep_every:
                    continue
            out.append(e)
        return out


def inject(events: Iterable[Event], faults: Sequence[Fault], seed: int = 0) -> list[Event]:
    """Apply ``faults`` in order to ``events`` (deterministic for ``seed``)."""
    stream = list(events)
    if not stream:
        return stream
    t0 = stream[0].log_ns
    rng = random.Random(seed)
    for fault in faults:
        stream = fault.apply(stream, t0, rng)
    return stream


__all__ = [
    'Burst',
    'ClockJump',
    'Delay',
    'DropOut',
    'Duplicate',
    'Event',
    'Fault',
    'Loop',
    'RateChange',
    'Reorder',
    'inject',
    'restamp',
    'stamp_ns',
]
