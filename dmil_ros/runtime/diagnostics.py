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

"""Diagnostics of the running pipeline: input rates, latency, drops, provider, alert, degraded.

:class:`DiagnosticsTracker` turns the pipeline's counters into a list of
:class:`Status` records (``diagnostic_msgs/DiagnosticStatus`` without ROS), published about once
a second by the node and written to the replay bag at the same cadence of bag time. Levels:

* ``ERROR``: degraded mode (one sensor silent), or both sensors silent for ``silence_timeout``;
  a topic that never delivered counts as silent since ``start`` (a mistyped topic or namespace
  is an ERROR after ``silence_timeout``, not an OK "waiting for input" forever); a sensor that
  publishes, but whose every message for ``silence_timeout`` since its last usable one was
  refused (a truncated or re-laid-out cloud, an unsupported encoding, unstamped headers) is
  named as such, with the refusal reasons, not as silent or out of step;
* ``WARN``: the clock jumped back (pairing reset), messages were dropped or malformed since the
  previous report, or a synergy alert is on;
* ``OK`` otherwise.

Naming follows diagnostic_updater: the status is named ``<node>: <task>`` with the node's
fully qualified name (:func:`status_name`, as diagnostic_updater with ``use_fqn``), so the
statuses of two namespaced nodes on the one ``/diagnostics`` topic do not overwrite each other
in diagnostic_aggregator; ``hardware_id`` is the host's name (the model's path is the
``model`` value).

``latency p50/p99`` is the sum of the pipeline's stage timers for a frame pair (decode and
preprocess of its camera frame, and of its sweep when this is the first pair the sweep serves,
inference, monitor). Headers, pairing and the records built per message are in no timer: about
10% more (the ``glue`` row of benchmarks/bench_runtime.py); ``queue wait p99`` is the time a
message waited for the inference thread.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Final

import numpy as np

from dmil_ros.runtime.inbox import Inbox
from dmil_ros.runtime.pipeline import CAMERA_SILENT, LIDAR_SILENT, FusionPipeline
from dmil_ros.runtime.records import RefusalRun

OK: Final = 0
WARN: Final = 1
ERROR: Final = 2
STALE: Final = 3
TASK: Final = 'fusion'


def status_name(fully_qualified_node: str) -> str:
    """The status name diagnostic_updater gives a task of that node (``<node>: <task>``,
    ``diagnostic_updater.cpp``, with ``use_fqn``): ``/robot1/fusion_node: fusion``."""
    return f'{fully_qualified_node}: {TASK}'


NAME: Final = status_name('/fusion_node')  # the root namespace's node: a replay's default


@dataclass(frozen=True)
class Status:
    """One ``diagnostic_msgs/DiagnosticStatus``: level, name, message, key/value pairs."""

    level: int
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]


class DiagnosticsTracker:
    """Records message arrival times per input and reports the pipeline's state.

    Times are seconds on any monotonic clock: receive wall time in the node, bag time in the
    replay. ``window`` is the span over which input rates are measured. The node passes its
    :class:`~dmil_ros.runtime.inbox.Inbox`: its drops count with the pipeline's, and the queue
    wait p99 is reported. ``start`` is when the inputs were first awaited (the node's start-up;
    ``None``: the first arrival, as in a replay). ``arrived`` and ``report`` may run on different
    threads (the node's intake and work threads): a lock keeps a report from reading an arrival
    queue mid-append. ``name``: the status name (:func:`status_name` of the node's fully
    qualified name); ``hardware_id``: None for this host's name (``socket.gethostname()``).
    """

    def __init__(
        self,
        pipeline: FusionPipeline,
        window: float = 5.0,
        inbox: Inbox | None = None,
        start: float | None = None,
        *,
        name: str = NAME,
        hardware_id: str | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.name = name
        self.hardware_id = socket.gethostname() if hardware_id is None else hardware_id
        self.start = start
        self.inbox = inbox
        self.window = window
        self.topics = (pipeline.config.camera_topic, pipeline.config.lidar_topic)
        self._arrivals: dict[str, deque[float]] = {t: deque(maxlen=2000) for t in self.topics}
        self._last_drops: Counter[str] = Counter()
        self._last_alerts = 0
        self._last_jumps = 0
        self._lock = threading.Lock()

    def arrived(self, topic: str, now: float) -> None:
        with self._lock:
            if self.start is None:
                self.start = now
            self._arrivals[topic].append(now)

    def rate(self, topic: str, now: float) -> float:
        times = [t for t in self._arrivals[topic] if now - t <= self.window]
        if len(times) < 2:
            return 0.0
        # up to now, not to the last arrival: a sensor that fell silent shows a falling rate
        span = max(now - times[0], times[-1] - times[0], 1e-9)
        return (len(times) - 1) / span

    def silent_for(self, topic: str, now: float) -> float | None:
        arrivals = self._arrivals[topic]
        return now - arrivals[-1] if arrivals else None

    def unusable_for(self, topic: str, now: float) -> tuple[float, RefusalRun] | None:
        """``(seconds, refusals)`` when every message of ``topic`` since its last usable one (or
        since the first) was refused: the seconds since that usable message arrived (since
        ``start`` when none was usable); None when its newest message was usable, or none came
        (or none was recorded here).

        The refusals are counted back over the arrivals; arrivals the pipeline has not taken
        yet (the node's inbox) or never took (inbox drops) make the seconds an underestimate:
        the report then names the refusals later, never sooner.
        """
        run = self.pipeline.refused_run(topic)
        arrivals = self._arrivals[topic]
        if run is None or not arrivals:  # no arrival recorded: no time to tell
            return None
        if run.count < min(len(arrivals), self.pipeline.received[topic]):
            return now - arrivals[-run.count - 1], run
        if run.count < self.pipeline.received[topic]:  # the usable one left the window
            return now - arrivals[0], run
        return now - (arrivals[0] if self.start is None else self.start), run

    def _unusable(self, now: float, timeout: float) -> dict[str, str]:
        """Topic -> why, for each sensor still publishing whose messages were all refused for
        more than ``timeout`` seconds (the reasons with their counts, and the latest text)."""
        out: dict[str, str] = {}
        for topic in self.topics:
            found = self.unusable_for(topic, now)
            silent = self.silent_for(topic, now)
            if found is None or found[0] <= timeout or silent is None or silent > timeout:
                continue
            run = found[1]
            reasons = ', '.join(f'{r} x{n}' for r, n in run.reasons.most_common())
            out[topic] = f'{reasons}: {run.last}'
        return out

    def _out_of_step(self, now: float, timeout: float) -> str | None:
        """The message for a degraded mode whose "silent" sensor is in fact publishing, with
        its stamps behind the other's (a clock step on one sensor); None otherwise."""
        p = self.pipeline
        cam, lid = self.topics
        if p.degraded == LIDAR_SILENT:
            topic, name, other, behind = lid, 'LiDAR', 'camera', p.last_lidar_ns
            ahead = p.last_camera_ns
        elif p.degraded == CAMERA_SILENT:
            topic, name, other, behind = cam, 'camera', 'LiDAR', p.last_camera_ns
            ahead = p.last_lidar_ns
        else:
            return None
        silent = self.silent_for(topic, now)
        if silent is None or silent > timeout or behind is None or ahead is None:
            return None
        return (
            f'degraded: {name} {topic!r} publishing, but its stamps trail the {other} by '
            f'{(ahead - behind) / 1e9:.2f} s (sensor clocks out of step?); {other} only'
        )

    def report(self, now: float) -> list[Status]:
        with self._lock:
            return self._report(now)

    def _report(self, now: float) -> list[Status]:
        p = self.pipeline
        timeout = p.config.silence_timeout
        cam, lid = self.topics
        values: list[tuple[str, str]] = []
        silence = [self.silent_for(topic, now) for topic in self.topics]  # None: never received
        for topic, silent in zip(self.topics, silence, strict=True):
            values.append((f'{topic} rate (Hz)', f'{self.rate(topic, now):.2f}'))
            values.append((f'{topic} received', str(p.received[topic])))
            values.append(
                (f'{topic} silent (s)', 'never received' if silent is None else f'{silent:.2f}')
            )
        lat = np.asarray(p.latency, np.float64) * 1e3
        if lat.size:
            values.append(('latency p50 (ms)', f'{np.percentile(lat, 50):.3f}'))
            values.append(('latency p99 (ms)', f'{np.percentile(lat, 99):.3f}'))
        if self.inbox is not None:
            wait = self.inbox.wait_p99()
            if wait is not None:
                values.append(('queue wait p99 (ms)', f'{wait * 1e3:.3f}'))
        values.append(('frames', str(p.frames)))
        drops = p.drops + (self.inbox.drop_counts() if self.inbox is not None else Counter())
        values.append(('drops total', str(sum(drops.values()))))
        values.extend((f'drop: {k}', str(n)) for k, n in sorted(drops.items()))
        if p.last_error:
            values.append(('last error', p.last_error))
        if p.planar_lidar:
            values.append(('lidar input', p.planar_lidar))
        values.append(('provider', p.model.provider))
        if p.model.provider == 'cuda':
            off = p.model.cuda_graphs_off
            values.append(('cuda graphs', f'off: {off}' if off else 'on'))
        values.append(('model', p.model.path))
        values.append(('synergy source', p.pid_source or 'unavailable'))
        values.append(('gates', 'available' if p.model.has('gates') else 'unavailable'))
        values.append(('synergy alert', 'on' if p.alert else 'off'))
        values.append(('synergy alerts raised', str(p.monitor.alerts)))
        values.append(('degraded', p.degraded or 'no'))
        values.append(('degraded frames', str(p.degraded_frames)))
        if p.model.has('pid_broja'):  # rows at the table's floor, set to NaN
            values.append(('pid_broja frames without evidence', str(p.no_evidence_frames)))
        values.append(('clock jumps back', str(p.clock_jumps_back)))
        if p.last_jump:
            values.append(('last clock jump', p.last_jump))
        # level and one-line message
        new_drops = sum((drops - self._last_drops).values())
        self._last_drops = drops
        new_jumps = p.clock_jumps_back - self._last_jumps
        self._last_jumps = p.clock_jumps_back
        since_start = 0.0 if self.start is None else now - self.start
        never = [t for t, s in zip(self.topics, silence, strict=True) if s is None]
        silent_cam, silent_lid = ((since_start if s is None else s) > timeout for s in silence)
        out_of_step = self._out_of_step(now, timeout)
        unusable = self._unusable(now, timeout)
        no_cam, no_lid = silent_cam or cam in unusable, silent_lid or lid in unusable
        roles = {cam: ('camera', 'LiDAR'), lid: ('LiDAR', 'camera')}
        refused = [
            f'{roles[t][0]} {t!r} publishing, but its messages are unusable ({why})'
            for t, why in unusable.items()
        ]
        if never and since_start > timeout:
            # nothing ever came on a topic: most often its name or the namespace is wrong
            names = ', '.join(repr(t) for t in never)
            state = 'no input' if no_cam and no_lid else 'degraded'
            level = ERROR
            message = f'{state}: nothing received on {names} in {since_start:.1f} s (topic name?)'
            message = '; '.join([message, *refused])
        elif silent_cam and silent_lid:
            level, message = ERROR, 'no input: both sensors silent'
        elif no_cam and no_lid:  # one publishing unusable messages at least
            quiet = [f'{roles[t][0]} {t!r} silent' for t in self.topics if t not in unusable]
            level, message = ERROR, 'no input: ' + '; '.join([*refused, *quiet])
        elif unusable:
            ((topic, _),) = unusable.items()
            level, message = ERROR, f'degraded: {refused[0]}; {roles[topic][1]} only'
        elif out_of_step:
            level, message = ERROR, out_of_step
        elif p.degraded == LIDAR_SILENT or silent_lid:
            level, message = ERROR, f'degraded: LiDAR {lid!r} silent, camera only'
        elif p.degraded == CAMERA_SILENT or silent_cam:
            level, message = ERROR, f'degraded: camera {cam!r} silent, LiDAR only'
        elif new_jumps:
            level, message = WARN, f'clock jumped back ({new_jumps}x): pairing reset'
        elif p.alert:
            level, message = WARN, 'synergy alert: decision rests on both sensors'
        elif new_drops:
            level, message = WARN, f'{new_drops} messages dropped or malformed'
        elif p.frames == 0:
            level, message = OK, 'waiting for input'
        else:
            level, message = OK, 'running'
        return [Status(level, self.name, message, self.hardware_id, tuple(values))]
