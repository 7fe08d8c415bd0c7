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

"""ROS-less replay: the node's pipeline fed from a rosbag2, its outputs written to another one.

Every output topic is written with the type and the CDR bytes the node would publish (the same
:class:`~dmil_ros.runtime.outputs.OutputBuilder`), under the same resolved names
(``/<namespace>/fusion_node/...``). An output's log time is the log time of the input message that
completed its frame pair (when the node would have had it); its header is the camera frame's.
Diagnostics are written once per second of bag time. A damaged input bag is read as far as it can
be (:class:`~dmil_ros.bagio.reader.RobustReader`); what could not be read is in the summary.

With ``rate`` the replay is paced to ``rate`` x real time and runs the model frame by frame, as
the node does; without it (``max speed``) it batches ``batch`` pairs per model call (batch size
hardly matters for the shipped model: benchmarks/bench_runtime.py compares 1, 4 and 32).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dmil_ros.actions import ACTIONS
from dmil_ros.bagio.reader import RobustReader
from dmil_ros.runtime.diagnostics import DiagnosticsTracker, status_name
from dmil_ros.runtime.errors import RuntimeConfigError
from dmil_ros.runtime.outputs import (
    DIAGNOSTICS,
    OutputBuilder,
    Twists,
    check_namespace,
    node_fqn,
    resolve,
)
from dmil_ros.runtime.pipeline import FusionPipeline
from dmil_ros.runtime.records import FrameResult, Header, Job

STAGE_ORDER = ('decode', 'preprocess', 'inference', 'monitor', 'serialise', 'total')
MAX_GAP_REPORTS = 60  # diagnostics written through one gap in the bag (one per period)


@dataclass
class ReplaySummary:
    """What a replay did (JSON-ready through :meth:`as_dict`)."""

    bag: str
    out: str
    model: str
    provider: str
    frames: int = 0
    bag_seconds: float = 0.0
    wall_seconds: float = 0.0
    alerts: int = 0
    alert_frames: int = 0
    degraded_frames: int = 0
    no_evidence_frames: int = 0  # pid_broja rows at the model table's floor, set to NaN
    actions: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)
    drops: Counter[str] = field(default_factory=Counter)
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)  # p50, p99 in ms
    mean_interactions: tuple[float, float, float, float] | None = None
    read: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # e.g. an input topic the bag lacks
    silent: list[str] = field(default_factory=list)  # input topics without a single message
    unusable: list[str] = field(default_factory=list)  # input topics without a usable message
    mismatched: list[str] = field(default_factory=list)  # of a type the node would not hear
    interrupted: bool = False  # stopped by Ctrl-C: the output holds the frames before it
    written_frames: int = 0  # frames whose outputs are in the bag (all of them, unless stopped)

    @property
    def failed(self) -> bool:
        """Nothing to act on: no frame pair came out, or an input topic had no message (a
        wrong topic name, a bag without that sensor) or none usable (a topic of another type;
        the frames are then degraded ones), or one of a type the node would not subscribe to."""
        return self.frames == 0 or bool(self.silent or self.unusable or self.mismatched)

    @property
    def realtime_factor(self) -> float:
        return self.bag_seconds / self.wall_seconds if self.wall_seconds > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        return {
            'bag': self.bag,
            'out': self.out,
            'model': self.model,
            'provider': self.provider,
            'frames': self.frames,
            'bag_seconds': self.bag_seconds,
            'wall_seconds': self.wall_seconds,
            'realtime_factor': self.realtime_factor,
            'alerts': self.alerts,
            'alert_frames': self.alert_frames,
            'degraded_frames': self.degraded_frames,
            'no_evidence_frames': self.no_evidence_frames,
            'actions': dict(self.actions),
            'written': dict(self.written),
            'drops': dict(self.drops),
            'stages_ms_p50_p99': self.stages,
            'problems': self.problems,
            'silent_topics': self.silent,
            'unusable_topics': self.unusable,
            'mismatched_topics': self.mismatched,
            'failed': self.failed,
            'interrupted': self.interrupted,
            'written_frames': self.written_frames,
            'mean_interactions': self.mean_interactions,
            'read': self.read,
        }

    def lines(self) -> list[str]:
        """A human-readable account, one line per fact."""
        out = [
            f'replayed {self.bag} -> {self.out}',
            f'model {self.model} on {self.provider}',
            (
                f'{self.frames} frame pairs from {self.bag_seconds:.1f} s of bag in '
                f'{self.wall_seconds:.2f} s: {self.realtime_factor:.1f}x real time, '
                f'{self.frames / max(self.wall_seconds, 1e-9):.0f} frames/s'
            ),
        ]
        for stage in STAGE_ORDER:
            if stage in self.stages:
                p50, p99 = self.stages[stage]
                out.append(f'  {stage:<10} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms')
        acts = ', '.join(f'{a} {self.actions.get(a, 0)}' for a in ACTIONS)
        out.append(f'actions: {acts}')
        if self.mean_interactions is not None:
            r, uc, ul, s = self.mean_interactions
            out.append(
                f'mean per-frame interactions (bits): R {r:.3f}  U_camera {uc:.3f}  '
                f'U_lidar {ul:.3f}  S {s:.3f}'
            )
        out.append(
            f'synergy alerts: {self.alerts} raised, {self.alert_frames} frames in alert '
            f'({self.alert_frames / max(self.frames, 1):.1%})'
        )
        if self.degraded_frames:
            out.append(f'degraded frames (one sensor silent): {self.degraded_frames}')
        if self.no_evidence_frames:
            out.append(f'pid_broja frames without evidence (NaN): {self.no_evidence_frames}')
        drops = ', '.join(f'{k} {n}' for k, n in sorted(self.drops.items())) or 'none'
        out.append(f'dropped / malformed: {drops}')
        out.append('written: ' + ', '.join(f'{t} {n}' for t, n in sorted(self.written.items())))
        return out

    def warnings(self) -> list[str]:
        """What went wrong with the input, one line each (empty for a clean replay)."""
        out = [f'{self.bag}: {p}' for p in self.problems]
        if self.interrupted:
            text = f'interrupted; {self.out} holds the {self.written_frames} frames before it'
            out.append(f'{self.bag}: {text}')
        if self.frames == 0:
            out.append(f'{self.bag}: no frame pair came out of the bag')
        if not self.read.get('complete', True):
            issues = self.read.get('issues', [])
            skipped = self.read.get('skipped', {})
            text = f'{self.bag}: damaged input, {self.read.get("messages", 0)} messages read'
            if self.read.get('mode') == 'salvage':
                text += ' (salvaged: the index was unusable)'
            if issues:
                text += f'; {len(issues)} problem(s), the first: {issues[0]["message"]}'
            if skipped:
                text += '; undecodable messages skipped: ' + ', '.join(
                    f'{topic} {n}' for topic, n in sorted(skipped.items())
                )
            out.append(text)
        return out


def _header_of_ns(ns: int) -> Header:
    sec, nanosec = divmod(ns, 1_000_000_000)
    return Header(sec, nanosec, '')


class _Writer:
    """Output bag with one connection per output topic, created on first use."""

    def __init__(self, out: Path, namespace: str, builder: OutputBuilder) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if out.exists():
            msg = f'output bag {str(out)!r} already exists'
            raise RuntimeConfigError(msg)
        # metadata version 8: the newest both Humble and Jazzy read (rosbag2's humble
        # metadata_io.cpp checks no version and reads only its own keys; version 9 writes
        # offered_qos_profiles as a YAML list, which Humble fails on: ros2/rosbag2#2013)
        self.writer = Writer(out, version=8, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.builder = builder
        self.types = builder.topics()
        self.namespace = namespace
        self.conns: dict[str, Any] = {}
        self.written: Counter[str] = Counter()

    def write(self, topic: str, msg: Any, log_ns: int) -> None:
        self.write_cdr(topic, self.builder.serialize(topic, msg), log_ns)

    def write_cdr(self, topic: str, data: bytes, log_ns: int) -> None:
        conn = self.conns.get(topic)
        if conn is None:
            name = resolve(topic, self.namespace)
            store = self.builder.store
            conn = self.writer.add_connection(name, self.types[topic], typestore=store)
            self.conns[topic] = conn
        self.writer.write(conn, log_ns, data)
        self.written[conn.topic] += 1

    def close(self) -> None:
        self.writer.close()


def _stats(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, np.float64) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def replay(
    pipeline: FusionPipeline,
    bag: str | Path,
    out: str | Path,
    *,
    namespace: str = '',
    rate: float | None = None,
    batch: int = 32,
    twists: Twists | None = None,
    cmd_vel_stamped: bool = False,
    diagnostics_period: float = 1.0,
    progress: bool = True,
    keep_on_interrupt: bool = False,
    subscribed: Mapping[str, tuple[str, str]] | None = None,
) -> ReplaySummary:
    """Run ``pipeline`` over ``bag`` and write every output topic to ``out`` (MCAP).

    What went wrong with the input is in the summary (:meth:`ReplaySummary.warnings`), not
    logged. A Ctrl-C closes the output bag (readable, with the frames written so far) and
    propagates, unless ``keep_on_interrupt``: then the summary comes back ``interrupted``.
    Diagnostics are written every ``diagnostics_period`` s of bag time, as the node's timer,
    under the status name the node in ``namespace`` gives them. ``~/cmd_vel`` (``twists``) is a
    TwistStamped with the frame's header with ``cmd_vel_stamped``, else a Twist.
    The pipeline's input topics are resolved names (:meth:`NodeSettings.resolved`: relative
    ones are in the node's namespace), the names the bag holds; a relative one is refused.
    ``subscribed`` (:meth:`NodeSettings.subscribed_types`): the type the node would subscribe
    to on each input topic; the replay decodes whatever the bag holds, so a topic of another
    type is a problem (the node would hear nothing) and the replay fails.
    """
    if rate is not None and not 0 < rate < math.inf:
        msg = f'rate {rate!r} must be a positive number (as fast as possible: no rate)'
        raise RuntimeConfigError(msg)
    if batch < 1:
        msg = f'batch {batch!r} must be >= 1'
        raise RuntimeConfigError(msg)
    if not diagnostics_period > 0:
        msg = f'diagnostics_period {diagnostics_period!r} must be positive'
        raise RuntimeConfigError(msg)
    period_ns = max(1, round(diagnostics_period * 1e9))
    check_namespace(namespace)
    for topic in (pipeline.config.camera_topic, pipeline.config.lidar_topic):
        if not topic.startswith('/'):  # a bag holds resolved names only
            msg = (
                f'input topic {topic!r} is not resolved: build the pipeline from '
                'NodeSettings.resolved(namespace), as dmil-ros replay does'
            )
            raise RuntimeConfigError(msg)
    if rate is None and pipeline.model.fixed_shapes:
        pipeline.model.warm_up(batch)  # a GPU session's shape for the batches to come, untimed
    cfg = pipeline.config
    cam_topic, lid_topic = cfg.camera_topic, cfg.lidar_topic
    reader = RobustReader(bag, topics=[cam_topic, lid_topic])
    builder = OutputBuilder(twists, stamped=cmd_vel_stamped)
    tracker = DiagnosticsTracker(pipeline, name=status_name(node_fqn(namespace)))
    writer = _Writer(Path(out), namespace, builder)
    summary = ReplaySummary(str(bag), str(out), pipeline.model.path, pipeline.model.provider)
    stage_times: dict[str, list[float]] = {s: [] for s in STAGE_ORDER}
    pid_sum = np.zeros(4, np.float64)
    pid_n = 0
    pending: list[tuple[Job, int]] = []  # job, log time of the message that completed it
    first_log: int | None = None
    last_log = 0
    pace_skip = 0  # ns of bag gaps longer than MAX_GAP_REPORTS s, not waited for at --rate
    next_diag: int | None = None
    wall0 = time.perf_counter()
    bar = _progress(progress)
    last_shown = 0.0
    last: FrameResult | None = None

    def emit(items: list[tuple[Job, int]]) -> None:
        # at most ``batch`` jobs per model call: one message (or the end of the bag) can
        # complete several, and a GPU session warmed up to ``batch`` would otherwise grow its
        # padded shape for the rest of the run (model.py)
        for start in range(0, len(items), batch):
            emit_batch(items[start : start + batch])

    def emit_batch(items: list[tuple[Job, int]]) -> None:
        nonlocal pid_n, last
        results = pipeline.infer([j for j, _ in items])
        for (_, log_ns), r in zip(items, results, strict=True):
            t0 = time.perf_counter()
            for topic, data in builder.frame_cdr(r):
                writer.write_cdr(topic, data, log_ns)
            serialise = time.perf_counter() - t0
            for stage in STAGE_ORDER[:4]:
                stage_times[stage].append(r.timings[stage])
            stage_times['serialise'].append(serialise)
            stage_times['total'].append(r.timings['total'] + serialise)
            if not r.valid:
                continue  # counted by the pipeline (non-finite model output)
            summary.actions[r.action_label] += 1
            pid = r.interactions
            if pid is not None and not r.degraded and np.isfinite(pid).all():
                pid_sum[:] += pid
                pid_n += 1
            last = r

    try:
        for raw, msg in reader.decoded():
            log_ns = raw.timestamp
            first_log = log_ns if first_log is None else first_log
            if log_ns - max(last_log, first_log) > MAX_GAP_REPORTS * 1_000_000_000:
                pace_skip += log_ns - max(last_log, first_log)  # not slept through at --rate
            last_log = max(last_log, log_ns)
            if rate is not None:  # pace bag time to wall time
                bag_s = (log_ns - first_log - pace_skip) / 1e9
                ahead = bag_s / rate - (time.perf_counter() - wall0)
                if ahead > 0:
                    time.sleep(ahead)
            # diagnostics once per period of bag time, through gaps too (the node's timer):
            # each report covers the time before this message arrived; a gap longer than
            # MAX_GAP_REPORTS s (two recordings in one bag, a clock step) gets that many, then
            # the reports resume at this message (not millions of 'silent' reports)
            if next_diag is None:
                next_diag = log_ns + period_ns
            written = 0
            while log_ns >= next_diag:
                emit(pending)
                pending = []
                diag = builder.diagnostics(
                    _header_of_ns(next_diag), tracker.report(next_diag / 1e9)
                )
                writer.write(DIAGNOSTICS, diag, next_diag)
                next_diag += period_ns
                written += 1
                if written == MAX_GAP_REPORTS and log_ns >= next_diag:
                    skipped = (log_ns - next_diag) // period_ns + 1
                    jump = (log_ns - next_diag) / 1e9 + written * diagnostics_period
                    summary.problems.append(
                        f'bag time jumps {jump:.0f} s at {next_diag / 1e9:.3f} s: '
                        f'{skipped} diagnostics reports of the gap not written'
                    )
                    next_diag += skipped * period_ns
            now_s = log_ns / 1e9
            tracker.arrived(raw.topic, now_s)
            jobs = (
                pipeline.feed_camera(msg) if raw.topic == cam_topic else pipeline.feed_lidar(msg)
            )
            pending.extend((j, log_ns) for j in jobs)
            if pending and (rate is not None or len(pending) >= batch):
                emit(pending)
                pending = []
            if bar is not None and time.perf_counter() - last_shown > 0.2 and last is not None:
                last_shown = time.perf_counter()
                bar.set_postfix_str(_progress_text(pipeline, last, wall0), refresh=False)
            if bar is not None:
                bar.update(1)
        pending.extend((j, last_log) for j in pipeline.finish())
        emit(pending)
        final = builder.diagnostics(_header_of_ns(last_log), tracker.report(last_log / 1e9))
        writer.write(DIAGNOSTICS, final, last_log)
    except KeyboardInterrupt:  # Ctrl-C: the bag so far (closed below) and its summary
        if not keep_on_interrupt:
            raise
        summary.interrupted = True
    finally:
        writer.close()
        if bar is not None:
            bar.close()
    summary.wall_seconds = time.perf_counter() - wall0
    summary.frames = pipeline.frames
    summary.bag_seconds = (last_log - first_log) / 1e9 if first_log is not None else 0.0
    summary.alerts = pipeline.monitor.alerts
    summary.alert_frames = pipeline.monitor.alert_frames
    summary.degraded_frames = pipeline.degraded_frames
    summary.no_evidence_frames = pipeline.no_evidence_frames
    summary.written = writer.written
    summary.drops = pipeline.drops
    summary.stages = {s: _stats(v) for s, v in stage_times.items() if v}
    if pid_n:
        m = pid_sum / pid_n
        summary.mean_interactions = (float(m[0]), float(m[1]), float(m[2]), float(m[3]))
    summary.read = reader.report()
    summary.written_frames = len(stage_times['serialise'])  # one per frame whose outputs went out
    if rate is not None and summary.frames and summary.realtime_factor < 0.9 * rate:
        summary.problems.append(
            f'rate {rate:g}x requested, {summary.realtime_factor:.1f}x reached (the pipeline '
            f'is slower than that here)'
        )
    for _, topic in pipeline.silent_sensors():
        where = 'before the interrupt' if summary.interrupted else 'in the bag'
        text = f'topic {topic!r}: no message {where}'
        if reader.available:
            text += f' (its topics: {sorted(reader.available)})'
        summary.problems.append(text)
        summary.silent.append(topic)
    for topic, (want, chosen_by) in (subscribed or {}).items():
        got = reader.available.get(topic)
        if got is not None and got != want:
            summary.problems.append(
                f'topic {topic!r} carries {got} in the bag, but the node subscribes to it as '
                f'{want} ({chosen_by}) and would receive nothing'
            )
            summary.mismatched.append(topic)
    for role, topic, why in pipeline.unusable_sensors():
        n = pipeline.received[topic]
        summary.problems.append(
            f'{role} topic {topic!r}: none of its {n} messages usable, every frame ran without '
            f'it ({why})'
        )
        summary.unusable.append(topic)
    if pipeline.planar_lidar:
        summary.problems.append(pipeline.planar_lidar)
    return summary


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit='msg', desc='replay', dynamic_ncols=True, leave=True)


def _progress_text(pipeline: FusionPipeline, r: FrameResult, wall0: float) -> str:
    fps = pipeline.frames / max(time.perf_counter() - wall0, 1e-9)
    lat = np.asarray(pipeline.latency, np.float64)
    text = f'{fps:.0f} fps, latency p50 {np.median(lat) * 1e3:.2f} ms'
    pid = r.interactions
    if pid is not None:
        text += f', R {pid[0]:.2f} U_cam {pid[1]:.2f} U_lid {pid[2]:.2f} S {pid[3]:.2f}'
    if r.alert:
        text += ' SYNERGY ALERT'
    if r.degraded:
        text += f' DEGRADED ({r.degraded})'
    return text
