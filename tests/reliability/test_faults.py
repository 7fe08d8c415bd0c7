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

"""Injected sensor faults through the fusion pipeline: outputs, drops and diagnostics.

The base stream is 10 s of the simulator (20 Hz camera, 10 Hz VLP-16-like LiDAR, jittered
stamps) and the model a tiny contract model; both are independent of the code under test. The
driver mirrors ``replay``: arrival order, ``FusionPipeline.push_*``, a diagnostics report per
second of arrival time.

Invariant checked under every fault ("lose nothing"): each camera message that reached the
pipeline is in exactly one place: an output frame, a counted drop/decode error, or the pairing
queue at the end. Behaviour per fault is documented in docs/reliability.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from dmil_ros.runtime import faults as fl
from dmil_ros.runtime.diagnostics import ERROR, OK, WARN, DiagnosticsTracker, Status
from dmil_ros.runtime.errors import RuntimeConfigError
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.pipeline import CAMERA_SILENT, LIDAR_SILENT, FusionPipeline, PipelineConfig
from dmil_ros.runtime.records import FrameResult
from dmil_ros.sim import CameraFrame, SimConfig, Simulator, messages
from tests.runtime.contract_models import build_model

CAM, LID = '/camera/image_raw', '/lidar/points'
NS = 1_000_000_000
TIMEOUT = PipelineConfig().silence_timeout


@pytest.fixture(scope='module')
def events() -> list[fl.Event]:
    sim = Simulator(SimConfig(frames=200, seed=3))  # 10 s
    out = []
    for e in sim.events():
        if isinstance(e, CameraFrame):
            out.append(fl.Event(CAM, e.stamp_ns, messages.image_msg(e)))
        else:
            out.append(fl.Event(LID, e.stamp_ns, messages.pointcloud_msg(e)))
    return out


@pytest.fixture(scope='module')
def model(tmp_path_factory: pytest.TempPathFactory) -> FusionModel:
    return FusionModel(build_model(tmp_path_factory.mktemp('m') / 'm.onnx'), provider='cpu')


@dataclass
class Run:
    stream: list[fl.Event]
    pipeline: FusionPipeline
    results: list[FrameResult]
    reports: list[tuple[float, Status]]  # (arrival time s since start, status)
    t0: int

    def reports_between(self, a: float, b: float) -> list[Status]:
        return [s for t, s in self.reports if a <= t < b]

    def frames_between(self, a: float, b: float) -> list[FrameResult]:
        """Output frames whose header stamp lies in [a, b) seconds after the first stamp."""
        return [r for r in self.results if a <= (r.header.ns - self.t0) / NS < b]


def drive(
    model: FusionModel, stream: Sequence[fl.Event], config: PipelineConfig | None = None
) -> Run:
    pipeline = FusionPipeline(model, config or PipelineConfig())
    tracker = DiagnosticsTracker(pipeline)
    results: list[FrameResult] = []
    reports: list[tuple[float, Status]] = []
    t0 = stream[0].log_ns
    next_report = t0 + NS
    for ev in stream:
        tracker.arrived(ev.topic, ev.log_ns / 1e9)
        push = pipeline.push_camera if ev.topic == CAM else pipeline.push_lidar
        results.extend(push(ev.msg))
        while ev.log_ns >= next_report:
            reports.append(((ev.log_ns - t0) / NS, tracker.report(ev.log_ns / 1e9)[0]))
            next_report += NS
    end = stream[-1].log_ns
    reports.append(((end - t0) / NS, tracker.report(end / 1e9)[0]))  # the replay's final report
    return Run(list(stream), pipeline, results, reports, t0)


def run_plan(model: FusionModel, events: list[fl.Event], plan: list[Any], seed: int = 1) -> Run:
    return drive(model, fl.inject(events, plan, seed=seed))


def camera_accounting(run: Run) -> tuple[int, int]:
    """(camera messages in, camera messages accounted for)."""
    p = run.pipeline
    with_camera = sum(1 for r in run.results if r.degraded != CAMERA_SILENT)
    drops = sum(n for k, n in p.pairer.drops.items() if k.startswith('camera_'))
    errors = sum(n for (topic, _), n in p.errors.items() if topic == CAM)
    return p.received[CAM], with_camera + drops + errors + p.pairer.pending_camera


def check_invariants(run: Run) -> None:
    received, accounted = camera_accounting(run)
    assert received == accounted
    assert received == sum(1 for e in run.stream if e.topic == CAM)
    stamps = {e.stamp_ns for e in run.stream}
    for r in run.results:
        assert r.header.ns in stamps  # every output carries a real input stamp
        assert np.isfinite(r.probs).all()
        assert abs(float(r.probs.sum()) - 1.0) < 1e-4
        if r.degraded:
            assert r.monitor is None  # degraded frames stay out of the synergy baseline
    # the diagnostics' drop figures are the pipeline's
    final = dict(run.reports[-1][1].values)
    assert int(final['drops total']) == sum(run.pipeline.drops.values())
    assert int(final['frames']) == len(run.results)


def message(status: Status) -> str:
    return status.message


# -- the fault module itself ---------------------------------------------------------------------


def test_inject_is_deterministic_and_leaves_the_input_alone(events: list[fl.Event]) -> None:
    before = [(e.topic, e.log_ns, e.stamp_ns) for e in events]
    plan = [fl.Duplicate(CAM, 0.3), fl.Reorder(LID, 0.3), fl.ClockJump(4.0, -2.0)]

    def key(stream: list[fl.Event]) -> list[tuple[str, int, int]]:
        return [(e.topic, e.log_ns, e.stamp_ns) for e in stream]

    assert key(fl.inject(events, plan, seed=5)) == key(fl.inject(events, plan, seed=5))
    assert key(fl.inject(events, plan, seed=5)) != key(fl.inject(events, plan, seed=6))
    assert key(events) == before


def test_fault_definitions(events: list[fl.Event]) -> None:
    t0 = events[0].log_ns
    n_cam = sum(e.topic == CAM for e in events)

    def secs(e: fl.Event) -> float:
        return (e.log_ns - t0) / NS

    out = fl.inject(events, [fl.DropOut((CAM,), 2.0, 1.0)])
    assert not [e for e in out if e.topic == CAM and 2.0 <= secs(e) < 3.0]
    assert len(out) == len(events) - sum(e.topic == CAM and 2.0 <= secs(e) < 3.0 for e in events)

    out = fl.inject(events, [fl.Burst(LID, 2.0, 1.0)])
    held = [e for e in out if e.topic == LID and e.log_ns == t0 + 3 * NS]
    assert len(held) == sum(e.topic == LID and 2.0 <= secs(e) < 3.0 for e in events)
    assert [e.log_ns for e in out] == sorted(e.log_ns for e in out)
    assert sorted(e.stamp_ns for e in out) == sorted(e.stamp_ns for e in events)

    assert sum(e.topic == CAM for e in fl.inject(events, [fl.Duplicate(CAM, 1.0)])) == 2 * n_cam

    out = fl.inject(events, [fl.Reorder(CAM, 1.0)])
    cams = [e.stamp_ns for e in out if e.topic == CAM]
    assert sum(b < a for a, b in itertools.pairwise(cams)) == n_cam // 2
    assert [e.log_ns for e in out] == [e.log_ns for e in events]  # arrival clock unchanged

    out = fl.inject(events, [fl.ClockJump(5.0, -3.0)])
    for a, b in zip(events, out, strict=True):
        assert b.stamp_ns - a.stamp_ns == (-3 * NS if secs(a) >= 5.0 else 0)

    out = fl.inject(events, [fl.Loop(3)])
    assert len(out) == 3 * len(events)
    assert [e.stamp_ns for e in out[len(events) : 2 * len(events)]] == [e.stamp_ns for e in events]
    assert [e.log_ns for e in out] == sorted(e.log_ns for e in out)

    out = fl.inject(events, [fl.RateChange(CAM, 0.0, 100.0, 2)])
    assert sum(e.topic == CAM for e in out) == (n_cam + 1) // 2

    out = fl.inject(events, [fl.Delay(CAM, 0.08)])
    assert all(
        b.log_ns - a.log_ns == 80_000_000
        for a, b in zip(
            [e for e in events if e.topic == CAM], [e for e in out if e.topic == CAM], strict=True
        )
    )


@pytest.mark.parametrize(
    'make',
    [
        lambda: fl.DropOut((CAM,), -1.0, 1.0),
        lambda: fl.DropOut((CAM,), 0.0, 0.0),
        lambda: fl.Burst(CAM, 0.0, -1.0),
        lambda: fl.Duplicate(CAM, 1.5),
        lambda: fl.Reorder(CAM, -0.1),
        lambda: fl.ClockJump(1.0, 0.0),
        lambda: fl.Loop(0),
        lambda: fl.RateChange(CAM, 0.0, 1.0, 0),
        lambda: fl.Delay(CAM, 0.0),
    ],
)
def test_fault_parameters_validated(make: Any) -> None:
    with pytest.raises(RuntimeConfigError):
        make()


def test_restamp_copies() -> None:
    msg = messages.header(1_500_000_000, 'f')
    holder = dataclasses.make_dataclass('M', [('header', object)])(msg)
    new = fl.restamp(holder, 2_250_000_000)
    assert fl.stamp_ns(new) == 2_250_000_000
    assert fl.stamp_ns(holder) == 1_500_000_000
    assert fl.stamp_ns(fl.restamp(holder, -5)) == 0


def test_restamp_copies_rclpy_style_messages() -> None:
    """rclpy messages are ``__slots__`` classes, not dataclasses."""

    class Slotted:
        __slots__ = ('nanosec', 'sec')

        def __init__(self, sec: int, nanosec: int) -> None:
            self.sec, self.nanosec = sec, nanosec

    class Msg:
        __slots__ = ('header',)

        def __init__(self) -> None:
            self.header = type('H', (), {})()
            self.header.stamp = Slotted(1, 500_000_000)

    msg = Msg()
    new = fl.restamp(msg, 2_250_000_000)
    assert fl.stamp_ns(new) == 2_250_000_000
    assert fl.stamp_ns(msg) == 1_500_000_000


# -- through the pipeline ------------------------------------------------------------------------

PLANS: dict[str, list[Any]] = {
    'clean': [],
    'camera_dropout': [fl.DropOut((CAM,), 3.0, 2.0)],
    'lidar_dropout': [fl.DropOut((LID,), 3.0, 2.0)],
    'both_dropout': [fl.DropOut((CAM, LID), 3.0, 2.0)],
    'camera_burst': [fl.Burst(CAM, 3.0, 1.0)],
    'lidar_burst': [fl.Burst(LID, 3.0, 1.0)],
    'camera_duplicates': [fl.Duplicate(CAM, 0.2)],
    'lidar_duplicates': [fl.Duplicate(LID, 0.2)],
    'camera_reordered': [fl.Reorder(CAM, 0.1)],
    'lidar_reordered': [fl.Reorder(LID, 0.1)],
    'clock_jump_back': [fl.ClockJump(5.0, -3.0)],
    'clock_jump_forward': [fl.ClockJump(5.0, 3.0)],
    'loop': [fl.Loop(2)],
    'lidar_rate_quarter': [fl.RateChange(LID, 3.0, 4.0, 4)],
    'camera_rate_half': [fl.RateChange(CAM, 3.0, 4.0, 2)],
    'camera_late_duplicates': [fl.Delay(CAM, 0.08), fl.Duplicate(CAM, 0.2)],
    'all_at_once': [
        fl.Duplicate(LID, 0.1),
        fl.Reorder(CAM, 0.05),
        fl.DropOut((LID,), 2.0, 1.0),
        fl.Burst(CAM, 6.0, 0.4),
        fl.ClockJump(8.0, 1.0),
    ],
}


@pytest.fixture(scope='module')
def runs(model: FusionModel, events: list[fl.Event]) -> dict[str, Run]:
    return {name: run_plan(model, events, plan) for name, plan in PLANS.items()}


@pytest.mark.parametrize('name', list(PLANS))
def test_nothing_lost_under_fault(runs: dict[str, Run], name: str) -> None:
    check_invariants(runs[name])


def test_clean_stream(runs: dict[str, Run]) -> None:
    run = runs['clean']
    assert len(run.results) == 199  # one camera frame waits for a LiDAR sweep after the end
    assert not any(r.degraded for r in run.results)
    assert sum(run.pipeline.drops.values()) == 0
    assert all(s.level in (OK, WARN) for _, s in run.reports)
    assert all('dropped' not in s.message for _, s in run.reports)


def test_camera_dropout_runs_lidar_only_and_says_so(runs: dict[str, Run]) -> None:
    run = runs['camera_dropout']
    gap = run.frames_between(3.0, 5.0)
    # after silence_timeout without a camera, LiDAR-only frames (zero image), stamped by LiDAR
    degraded = [r for r in gap if r.degraded == CAMERA_SILENT]
    assert len(degraded) >= 10  # ~ (2 s - 0.5 s) x 10 Hz
    assert all((r.header.ns - run.t0) / NS >= 3.0 + TIMEOUT - 0.06 for r in degraded)
    assert all(r.lidar_stamp_ns == r.header.ns for r in degraded)
    errors = [s for s in run.reports_between(3.6, 5.0) if s.level == ERROR]
    assert errors
    assert all('camera' in s.message for s in errors)
    # recovery: paired frames again, degraded mode over
    after = run.frames_between(5.2, 10.0)
    assert len(after) >= 80
    assert not any(r.degraded for r in after)
    assert run.pipeline.degraded == ''


def test_lidar_dropout_runs_camera_only_and_says_so(runs: dict[str, Run]) -> None:
    run = runs['lidar_dropout']
    degraded = [r for r in run.results if r.degraded == LIDAR_SILENT]
    assert len(degraded) >= 30  # every camera frame of the gap is still answered
    assert all(r.lidar_stamp_ns is None for r in degraded)
    # frames from ~2.9 s on waited for a sweep at/after them that never came
    assert all(2.8 <= (r.header.ns - run.t0) / NS < 5.1 for r in degraded)
    statuses = run.reports_between(3.6, 5.0)
    assert any(s.level == ERROR and 'LiDAR' in s.message for s in statuses)
    assert len(run.results) == len(runs['clean'].results)  # no camera frame lost
    assert not any(r.degraded for r in run.frames_between(5.2, 10.0))


def test_both_dropout_outputs_nothing_then_recovers(runs: dict[str, Run]) -> None:
    run = runs['both_dropout']
    assert run.frames_between(3.05, 4.95) == []
    after = run.frames_between(5.2, 10.0)
    assert len(after) >= 80
    assert not any(r.degraded for r in after)


def test_bursts_are_counted(
    runs: dict[str, Run], model: FusionModel, events: list[fl.Event]
) -> None:
    cam = runs['camera_burst']
    # a camera held 1 s: LiDAR-only frames after the timeout, then the released frames
    # overflow the camera queue or find no LiDAR partner; every one is counted
    assert any(r.degraded == CAMERA_SILENT for r in cam.results)
    drops = cam.pipeline.drops
    assert drops['camera_queue_full'] + drops['camera_no_match'] > 0
    lid = runs['lidar_burst']
    assert any(r.degraded == LIDAR_SILENT for r in lid.results)
    assert len(lid.results) == len(runs['clean'].results)  # every camera frame answered
    # the released sweeps fit the default 30-deep queue; a 10-deep one overflows, counted
    assert lid.pipeline.drops['lidar_queue_full'] == 0
    small = drive(
        model, fl.inject(events, PLANS['lidar_burst'], seed=1), PipelineConfig(queue_size=10)
    )
    assert small.pipeline.drops['lidar_queue_full'] > 0


def test_duplicates_are_dropped_when_queued(runs: dict[str, Run]) -> None:
    clean = [r.header.ns for r in runs['clean'].results]
    cam = runs['camera_duplicates']
    n_dup = len(cam.stream) - len(runs['clean'].stream)
    assert cam.pipeline.drops['camera_out_of_order'] == n_dup
    assert [r.header.ns for r in cam.results] == clean
    lid = runs['lidar_duplicates']
    assert lid.pipeline.drops['lidar_out_of_order'] == len(lid.stream) - len(runs['clean'].stream)
    assert [r.header.ns for r in lid.results] == clean
    np.testing.assert_allclose(
        [r.probs for r in lid.results], [r.probs for r in runs['clean'].results]
    )
    assert any('dropped' in s.message for _, s in cam.reports)


def test_late_camera_duplicates_not_published_twice(runs: dict[str, Run]) -> None:
    stamps = [r.header.ns for r in runs['camera_late_duplicates'].results]
    assert len(stamps) == len(set(stamps))


def test_reordered_stamps_dropped_and_counted(runs: dict[str, Run]) -> None:
    cam = runs['camera_reordered']
    stamps = [r.header.ns for r in cam.results]
    assert stamps == sorted(set(stamps))  # outputs stay in stamp order
    assert cam.pipeline.drops['camera_out_of_order'] > 0
    lid = runs['lidar_reordered']
    assert lid.pipeline.drops['lidar_out_of_order'] > 0
    # a camera frame whose nearest sweep was the dropped one may find none within the slop
    assert lid.pipeline.drops['camera_no_match'] >= 0
    assert [r.header.ns for r in lid.results] == sorted(r.header.ns for r in lid.results)


def test_clock_jump_back_resets_pairing(runs: dict[str, Run]) -> None:
    run = runs['clock_jump_back']
    clean = runs['clean']
    # a 3 s step back (> silence_timeout) is a clock jump: pairing is reset and output goes on
    # on the new timeline instead of stalling for 3 s
    assert run.pipeline.clock_jumps_back == 1
    assert run.pipeline.drops['camera_out_of_order'] <= 2
    assert len(run.results) >= len(clean.results) - 5
    assert any('clock' in s.message for s in run.reports_between(5.0, 7.0))
    # stamps are in order on each side of the jump
    stamps = [r.header.ns for r in run.results]
    back = [i for i in range(1, len(stamps)) if stamps[i] < stamps[i - 1]]
    assert len(back) == 1


def test_loop_second_pass_produces_frames(runs: dict[str, Run]) -> None:
    run = runs['loop']
    n = len(runs['clean'].results)
    assert len(run.results) >= 2 * n - 5
    assert any('jump' in s.message or 'clock' in s.message for _, s in run.reports)


def test_loop_second_pass_is_counted_and_reported(runs: dict[str, Run]) -> None:
    run = runs['loop']
    assert run.pipeline.clock_jumps_back == 1
    # the first report after the jump says so (WARN); the second pass then runs normally
    jumped = [i for i, (_, s) in enumerate(run.reports) if 'clock' in s.message]
    assert len(jumped) == 1
    assert run.reports[jumped[0]][1].level >= WARN
    second = [s for _, s in run.reports[jumped[0] + 1 :]]
    assert second
    assert any(s.level == OK for s in second)
    assert dict(second[-1].values)['clock jumps back'] == '1'


def test_clock_jump_forward_keeps_pairing(runs: dict[str, Run]) -> None:
    run = runs['clock_jump_forward']
    assert len(run.results) >= len(runs['clean'].results) - 5
    assert len(run.frames_between(8.0, 13.0)) >= 90  # the shifted second half


def test_rate_changes(runs: dict[str, Run]) -> None:
    slow_lidar = runs['lidar_rate_quarter']
    # a 2.5 Hz LiDAR: camera frames further than the 50 ms slop from any sweep are dropped
    # (counted camera_no_match); no degraded mode, since 0.4 s < silence_timeout
    window = slow_lidar.frames_between(3.0, 7.0)
    assert 15 <= len(window) <= 45
    assert slow_lidar.pipeline.drops['camera_no_match'] >= 30
    assert not any(r.degraded for r in slow_lidar.results)
    assert any('dropped' in s.message for s in slow_lidar.reports_between(3.5, 7.5))
    slow_cam = runs['camera_rate_half']
    # a 10 Hz camera: every frame that arrives is still paired
    assert sum(slow_cam.pipeline.drops.values()) == 0
    assert len(slow_cam.results) == sum(e.topic == CAM for e in slow_cam.stream) - 1


def test_malformed_messages_in_the_stream_are_counted(
    model: FusionModel, events: list[fl.Event]
) -> None:
    rng = random.Random(0)
    stream = []
    broken = {CAM: 0, LID: 0}
    for e in events:
        if rng.random() < 0.1:
            bad = dataclasses.replace(e.msg, data=np.asarray(e.msg.data)[:10].copy())
            stream.append(dataclasses.replace(e, msg=bad))
            broken[e.topic] += 1
        else:
            stream.append(e)
    run = drive(model, stream)
    check_invariants(run)
    assert run.pipeline.errors[(CAM, 'size')] == broken[CAM]
    assert run.pipeline.errors[(LID, 'size')] == broken[LID]
    final = dict(run.reports[-1][1].values)
    assert int(final[f'drop: {CAM}: size']) == broken[CAM]
    assert CAM in final['last error'] or LID in final['last error']
