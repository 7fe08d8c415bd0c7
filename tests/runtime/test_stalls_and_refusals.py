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

"""Frames queued across a stall of both sensors, sensors publishing only unusable messages, and
unstamped (0 s 0 ns) headers: what the pipeline publishes and what the diagnostics say."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from dmil_ros.runtime.diagnostics import ERROR, WARN, DiagnosticsTracker
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.pipeline import CAMERA_SILENT, FusionPipeline, PipelineConfig
from dmil_ros.runtime.records import FrameResult
from tests.runtime.contract_models import build_model
from tests.runtime.messages import flat_image, header, vlp16

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000  # a wall-clock epoch, as drivers stamp
CAM, LID = '/camera/image_raw', '/lidar/points'


@pytest.fixture(scope='module')
def model(tmp_path_factory: pytest.TempPathFactory) -> FusionModel:
    return FusionModel(build_model(tmp_path_factory.mktemp('m') / 'm.onnx'), provider='cpu')


@pytest.fixture(scope='module')
def cloud() -> Any:
    return vlp16(0)


def cloud_at(cloud: Any, stamp_ns: int) -> Any:
    return dataclasses.replace(cloud, header=header(stamp_ns, 'lidar_link'))


def truncated(cloud: Any, stamp_ns: int) -> Any:
    """A cloud whose data holds half its points (a driver restarted with another layout)."""
    msg = cloud_at(cloud, stamp_ns)
    return dataclasses.replace(msg, data=msg.data[: msg.data.size // 2])


def stalled_stream(lidar_first: bool) -> list[tuple[int, str]]:
    """20 Hz camera and 10 Hz LiDAR (+7 ms) from T0 to T0 + 1 s, both silent for 2 s, then
    back; ``(stamp, 'c' | 'l')`` in arrival order. Camera frames 0.95 s and 1.00 s wait in the
    pairer at the stall: no sweep at or after them came before it."""
    events = sorted(
        [(T0 + k * 50 * MS, 'c') for k in range(21)]
        + [(T0 + k * 100 * MS + 7 * MS, 'l') for k in range(10)]
    )
    back = [(3_020, 'c'), (3_070, 'c'), (3_107, 'l'), (3_120, 'c'), (3_170, 'c'), (3_207, 'l')]
    if lidar_first:
        back.insert(0, (3_007, 'l'))
    return events + [(T0 + ms * MS, kind) for ms, kind in back]


@pytest.mark.parametrize('lidar_first', [True, False], ids=['lidar-first', 'camera-first'])
def test_a_frame_queued_across_a_stall_of_both_sensors_is_never_published(
    model: FusionModel, cloud: Any, lidar_first: bool
) -> None:
    """Both sensors stop for 2 s. The frames waiting in the pairer at the stall were published
    2 s late when the sensors came back: as a live, non-degraded pair with the sweep before the
    stall (it drove cmd_vel) when the LiDAR came back first, as degraded frames otherwise, and
    the output stamps went back (3.007 s, then 0.950 s). Now they are counted as outdated."""
    pipe = FusionPipeline(model, PipelineConfig(slop=0.05, silence_timeout=0.5))
    timeout_ns = 500 * MS
    newest = None
    published: list[tuple[int, FrameResult]] = []  # (newest input stamp at publication, frame)
    for stamp, kind in stalled_stream(lidar_first):
        newest = stamp if newest is None else max(newest, stamp)
        if kind == 'c':
            out = pipe.push_camera(flat_image(stamp, 100))
        else:
            out = pipe.push_lidar(cloud_at(cloud, stamp))
        published += [(newest, r) for r in out]
    stamps = [r.header.ns for _, r in published]
    assert stamps == sorted(set(stamps))  # never back, never twice
    for seen, r in published:
        assert seen - r.header.ns <= timeout_ns, (r.header.ns - T0) / 1e9
    # the two frames that waited across the stall: counted with the pairing drops
    assert pipe.drops['camera_outdated'] == 2
    assert pipe.pairer.drops['camera_outdated'] == 2
    assert T0 + 950 * MS not in stamps
    assert T0 + 1_000 * MS not in stamps
    # before the stall every other frame was paired and published; after it, every frame
    before = [r for r in published if r[1].header.ns < T0 + 2_000 * MS]
    assert len(before) == 19
    after = {r.header.ns - T0: r for _, r in published if r.header.ns > T0 + 2_000 * MS}
    if lidar_first:  # the returning camera pairs with the sweep run alone, not degraded
        assert after[3_007 * MS].degraded == CAMERA_SILENT
        assert not after[3_020 * MS].degraded
        assert after[3_020 * MS].lidar_stamp_ns == T0 + 3_007 * MS
    assert not after[3_120 * MS].degraded
    assert after[3_120 * MS].lidar_stamp_ns == T0 + 3_107 * MS
    # diagnostics show the drop
    (status,) = DiagnosticsTracker(pipe).report(3.3)
    assert dict(status.values)['drop: camera_outdated'] == '2'


def test_a_pair_decided_long_after_its_frame_is_not_published(
    model: FusionModel, cloud: Any
) -> None:
    """The LiDAR stalls 0.6 s, the camera stops 0.1 s short of the silence timeout: the sweep
    that ends the stall decides the frames waiting since, and the oldest of them (0.45 s) found
    the sweep before the stall within the slop; it was published 0.56 s behind the newest
    stamp, with no degraded mode to mark it. Now it is counted as outdated."""
    pipe = FusionPipeline(model, PipelineConfig(slop=0.05, silence_timeout=0.5))
    events = [(T0 + k * 50 * MS, 'c') for k in range(19)]  # camera to 0.90 s
    events += [(T0 + k * 100 * MS + 7 * MS, 'l') for k in range(5)]  # LiDAR to 0.407 s
    events.append((T0 + 1_007 * MS, 'l'))
    out = []
    for stamp, kind in sorted(events):
        if kind == 'c':
            out += pipe.push_camera(flat_image(stamp, 100))
        else:
            out += pipe.push_lidar(cloud_at(cloud, stamp))
    assert [r.header.ns - T0 for r in out] == [k * 50 * MS for k in range(9)]
    assert not any(r.degraded for r in out)
    # 0.45 s: 43 ms from the 0.407 s sweep, 557 ms behind the 1.007 s one that decided it;
    # 0.50-0.90 s: no sweep within the slop
    assert pipe.drops['camera_outdated'] == 1
    assert pipe.drops['camera_no_match'] == 9


def feed_with_diagnostics(
    pipe: FusionPipeline, tracker: DiagnosticsTracker, events: list[tuple[int, str, Any]]
) -> list[FrameResult]:
    """``(receive ns, 'c' | 'l', message)`` in order, each arrival recorded first."""
    out = []
    for now, kind, msg in events:
        if kind == 'c':
            tracker.arrived(CAM, now / 1e9)
            out += pipe.push_camera(msg)
        else:
            tracker.arrived(LID, now / 1e9)
            out += pipe.push_lidar(msg)
    return out


@pytest.mark.parametrize('valid_until_ms', [1_000, 0], ids=['valid-then-malformed', 'never'])
def test_a_lidar_publishing_only_malformed_clouds_is_named_not_called_silent(
    model: FusionModel, cloud: Any, valid_until_ms: int
) -> None:
    """The LiDAR publishes at 10 Hz, but from 1 s on (or from the start) every cloud is
    truncated. The diagnostics blamed the clocks ('its stamps trail the camera') or silence;
    they now say it publishes unusable messages, with the reason. A single bad cloud before
    (once the sensors have run a while) stays a WARN about dropped messages."""
    pipe = FusionPipeline(model, PipelineConfig(silence_timeout=0.5))
    tracker = DiagnosticsTracker(pipe)
    events = [(t, 'c', flat_image(T0 + t, 100)) for t in range(0, 3_000 * MS, 50 * MS)]
    for t in range(7 * MS, 3_000 * MS, 100 * MS):
        msg = cloud_at(cloud, T0 + t) if t < valid_until_ms * MS else truncated(cloud, T0 + t)
        events.append((t, 'l', msg))
    events.sort(key=lambda e: e[0])
    bad = sum(1 for t, kind, _ in events if kind == 'l' and t >= valid_until_ms * MS)
    if valid_until_ms:  # one bad cloud at 0.507 s, between good ones
        (i,) = [i for i, e in enumerate(events) if e[0] == 507 * MS]
        events[i] = (507 * MS, 'l', truncated(cloud, T0 + 507 * MS))
        bad += 1
        feed_with_diagnostics(pipe, tracker, events[: i + 4])  # to 0.65 s
        (status,) = tracker.report(0.66)
        assert status.level == WARN  # the cloud, and the frames beside it without a sweep
        assert status.message.endswith('messages dropped or malformed')
        feed_with_diagnostics(pipe, tracker, events[i + 4 :])
    else:
        feed_with_diagnostics(pipe, tracker, events)
    assert pipe.errors == {(LID, 'size'): bad}  # the premise: refused, each one
    (status,) = tracker.report(2.96)
    assert status.level == ERROR
    run = bad - (1 if valid_until_ms else 0)  # since the last usable cloud
    assert status.message.startswith(
        f"degraded: LiDAR '/lidar/points' publishing, but its messages are unusable (size x{run}:"
    )
    assert 'points need' in status.message  # the decoder's own words
    assert status.message.endswith('; camera only')
    assert 'trail' not in status.message
    assert 'silent' not in status.message


def test_an_unstamped_message_is_refused_not_taken_for_a_clock_jump(
    model: FusionModel, cloud: Any
) -> None:
    """One camera frame stamped 0 s 0 ns in a stream stamped near 1.7e9 s was a 1.7e9 s clock
    jump back: both pairing queues flushed, a spurious degraded frame, a WARN. It is now one
    refused message (reason header, named); a true step back still resets the pairing."""
    pipe = FusionPipeline(model, PipelineConfig(silence_timeout=0.5))
    events = [(k * 50 * MS, 'c', flat_image(T0 + k * 50 * MS, 100)) for k in range(40)]
    events[20] = (20 * 50 * MS, 'c', flat_image(0, 100))
    events += [
        (k * 100 * MS + 7 * MS, 'l', cloud_at(cloud, T0 + k * 100 * MS + 7 * MS))
        for k in range(20)
    ]
    events.sort(key=lambda e: e[0])
    out = feed_with_diagnostics(pipe, DiagnosticsTracker(pipe), events)
    assert pipe.clock_jumps_back == 0
    assert not any(r.degraded for r in out)
    assert len(out) == 40 - 2  # all but the unstamped one and the last (waits for a sweep)
    assert sum(pipe.pairer.drops.values()) == 0
    assert pipe.errors == {(CAM, 'header'): 1}
    assert 'header.stamp is 0 s 0 ns' in pipe.topic_errors[CAM]
    # a real step back, of 2.95 s here (a looped bag), is still a clock jump
    pipe.push_camera(flat_image(T0 - 1_000 * MS, 100))
    assert pipe.clock_jumps_back == 1


def test_sensors_that_never_stamp_are_an_error_naming_the_stamp(
    model: FusionModel, cloud: Any
) -> None:
    """Both drivers leave the header stamp at 0 (or use_sim_time without /clock): one frame
    came out, then every message was dropped as out of order under a WARN. Now nothing is
    published and the diagnostics say why, for each topic."""
    pipe = FusionPipeline(model, PipelineConfig(silence_timeout=0.5))
    tracker = DiagnosticsTracker(pipe)
    events = [(t, 'c', flat_image(0, 100)) for t in range(0, 2_000 * MS, 50 * MS)]
    events += [(t, 'l', cloud_at(cloud, 0)) for t in range(7 * MS, 2_000 * MS, 100 * MS)]
    events.sort(key=lambda e: e[0])
    assert feed_with_diagnostics(pipe, tracker, events) == []
    assert pipe.errors == {(CAM, 'header'): 40, (LID, 'header'): 20}
    assert [s[:2] for s in pipe.unusable_sensors()] == [('camera', CAM), ('LiDAR', LID)]
    (status,) = tracker.report(1.96)
    assert status.level == ERROR
    assert status.message.startswith('no input: ')
    for role, topic, n in (('camera', CAM, 40), ('LiDAR', LID, 20)):
        assert (
            f'{role} {topic!r} publishing, but its messages are unusable (header x{n}: '
            'header.stamp is 0 s 0 ns' in status.message
        )
