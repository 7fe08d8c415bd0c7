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

"""The shared pipeline: pairing, stamps, inference, malformed input, degraded mode, alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dmil_ros.runtime.decode import decode_image, decode_pointcloud2
from dmil_ros.runtime.errors import RuntimeConfigError
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.pipeline import CAMERA_SILENT, LIDAR_SILENT, FusionPipeline, PipelineConfig
from dmil_ros.runtime.preprocess import prepare_image, prepare_points
from dmil_ros.runtime.records import FrameResult
from tests.runtime.contract_models import build_model, reference
from tests.runtime.messages import flat_image, vlp16

MS = 1_000_000


@pytest.fixture(scope='module')
def model(tmp_path_factory: pytest.TempPathFactory) -> FusionModel:
    return FusionModel(build_model(tmp_path_factory.mktemp('m') / 'm.onnx'), provider='cpu')


@pytest.fixture(scope='module')
def clouds() -> list[Any]:
    return [vlp16(0, seed=k) for k in range(3)]


def cloud_at(clouds: list[Any], stamp_ns: int, k: int) -> Any:
    msg = clouds[k % len(clouds)]
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return msg


def run_stream(
    pipe: FusionPipeline,
    clouds: list[Any],
    seconds: float,
    reds: Any = lambda k: 100,
    lidar_until: float = 1e9,
    camera_until: float = 1e9,
    start: float = 0.0,
    one_by_one: bool = False,
) -> list[FrameResult]:
    """Camera at 20 Hz, LiDAR at 10 Hz (+7 ms), delivered in stamp order; ``one_by_one`` runs
    the model on each frame pair alone (the node's batch of 1; a sweep can complete two)."""
    events: list[tuple[int, str, int]] = []
    for k in range(int(seconds * 20)):
        t = int((start + k * 0.05) * 1e9)
        if t < camera_until * 1e9:
            events.append((t, 'c', k))
    for k in range(int(seconds * 10)):
        t = int((start + k * 0.1 + 0.007) * 1e9)
        if t < lidar_until * 1e9:
            events.append((t, 'l', k))
    out = []
    for t, kind, k in sorted(events):
        if kind == 'c':
            jobs = pipe.feed_camera(flat_image(t, int(reds(k))))
        else:
            jobs = pipe.feed_lidar(cloud_at(clouds, t, k))
        out += [r for j in jobs for r in pipe.infer([j])] if one_by_one else pipe.infer(jobs)
    return out


def test_pairs_stamps_and_values(model: FusionModel, clouds: list[Any]) -> None:
    pipe = FusionPipeline(model, PipelineConfig(slop=0.06))
    start = 1.0  # a stamp of 0 is refused (unstamped)
    results = run_stream(pipe, clouds, 2.0, reds=lambda k: 6 * k, start=start)
    assert len(results) == 39  # 40 frames; the last waits for a LiDAR that never comes
    for r in results:
        assert r.header.frame_id == 'camera_optical_frame'
        k = round((r.header.ns - start * 1e9) / (50 * MS))
        assert r.header.ns == int((start + k * 0.05) * 1e9)  # the output stamp: the camera's
        assert r.lidar_stamp_ns is not None
        assert abs(r.lidar_stamp_ns - r.header.ns) <= 60 * MS
        assert not r.degraded
        # independent recomputation: decode + preprocess + numpy reference of the model
        image = prepare_image(decode_image(flat_image(r.header.ns, 6 * k)), model.spec)
        j = round((r.lidar_stamp_ns - 7 * MS - start * 1e9) / (100 * MS))
        lidar = prepare_points(
            decode_pointcloud2(cloud_at(clouds, r.lidar_stamp_ns, j)), model.spec
        )
        ref = reference(image[None], lidar[None])
        np.testing.assert_allclose(r.probs, ref['probs'][0], rtol=1e-4, atol=1e-6)
        assert r.gates is not None
        np.testing.assert_allclose(r.gates, ref['gates'][0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(r.pid['pid_broja'], ref['pid_broja'][0], rtol=1e-4, atol=1e-5)
        assert r.pid_source == 'pid_broja'
        assert r.action == int(np.argmax(ref['probs'][0]))
        assert set(r.timings) == {'decode', 'preprocess', 'inference', 'monitor', 'total'}
        assert r.timings['total'] == pytest.approx(
            sum(v for k_, v in r.timings.items() if k_ != 'total')
        )
    assert pipe.frames == 39
    assert sum(pipe.drops.values()) == 0


def test_batched_inference_equals_single(model: FusionModel, clouds: list[Any]) -> None:
    single = FusionPipeline(model)
    batched = FusionPipeline(model)
    a = run_stream(single, clouds, 1.0, reds=lambda k: 7 * k)
    jobs = []
    for k in range(20):
        t = int(k * 0.05 * 1e9)
        jobs += batched.feed_camera(flat_image(t, 7 * k))
        if k % 2 == 0:
            jobs += batched.feed_lidar(cloud_at(clouds, t + 7 * MS, k // 2))
    b = batched.infer(jobs)
    assert [r.header for r in a] == [r.header for r in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.probs, y.probs, rtol=1e-5, atol=1e-6)


def test_malformed_messages_counted_and_skipped(model: FusionModel, clouds: list[Any]) -> None:
    pipe = FusionPipeline(model)
    bad_image = flat_image(MS, 100)
    bad_image.encoding = '32FC1'
    assert pipe.push_camera(bad_image) == []
    bad_cloud = cloud_at(clouds, 7 * MS, 0)
    short = bad_cloud.data
    bad_cloud.data = short[:100]
    assert pipe.push_lidar(bad_cloud) == []
    bad_cloud.data = short
    assert pipe.push_camera(object()) == []
    assert pipe.drops == {
        '/camera/image_raw: encoding': 1,
        '/lidar/points: size': 1,
        '/camera/image_raw: header': 1,
    }
    assert 'encoding' in pipe.last_error or 'header' in pipe.last_error
    # the stream goes on
    assert len(run_stream(pipe, clouds, 1.0, start=1.0)) == 19


@pytest.mark.parametrize(
    ('sec', 'frame_id', 'named'),
    [
        (10**400, 'cam', 'out of the int32 range'),  # overflowed the clock check next frame
        (2**40, 'cam', 'out of the int32 range'),  # failed later, serialising the outputs
        (-(2**31) - 1, 'cam', 'out of the int32 range'),
        (1, 'cam\udcff', 'not valid UTF-8'),  # a lone surrogate: failed serialising too
    ],
    ids=['sec-10e400', 'sec-2e40', 'sec-below-int32', 'frame-id-surrogate'],
)
def test_a_header_no_output_could_carry_is_counted_and_skipped(
    model: FusionModel, clouds: list[Any], sec: int, frame_id: str, named: str
) -> None:
    """Message objects built in code (rosbags' CDR reader cannot produce these): refused as
    the header they are, before they reach the pairer, the clock checks or the outputs."""
    pipe = FusionPipeline(model)
    bad = flat_image(0, 100)
    bad.header.stamp.sec, bad.header.frame_id = sec, frame_id
    assert pipe.push_camera(bad) == []
    assert pipe.drops == {'/camera/image_raw: header': 1}
    assert named in pipe.last_error
    assert len(run_stream(pipe, clouds, 1.0, start=1.0)) == 19


def test_an_unexpected_error_costs_one_message_not_the_stream(
    model: FusionModel, clouds: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a decoder raises for one message (here a ValueError), it is counted under the
    topic with its text, and the next message runs."""
    import dmil_ros.runtime.pipeline as pipeline_module

    real = pipeline_module.decode_pointcloud2
    calls = 0

    def flaky(msg: Any, topic: str = '') -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ValueError('ndarray is not contiguous')
        return real(msg, topic)

    monkeypatch.setattr(pipeline_module, 'decode_pointcloud2', flaky)
    pipe = FusionPipeline(model)
    out = run_stream(pipe, clouds, 1.0, start=1.0)
    assert pipe.errors == {('/lidar/points', 'unexpected'): 1}
    assert (
        pipe.last_error
        == "topic '/lidar/points': message skipped (ValueError: ndarray is not contiguous)"
    )
    assert len(out) == 19 - 2  # the two frames nearest the lost sweep find no other within slop


def test_lidar_silent_degraded_mode(model: FusionModel, clouds: list[Any]) -> None:
    pipe = FusionPipeline(model, PipelineConfig(silence_timeout=0.5))
    results = run_stream(pipe, clouds, 3.0, lidar_until=1.0)
    normal = [r for r in results if not r.degraded]
    degraded = [r for r in results if r.degraded]
    assert all(r.degraded == LIDAR_SILENT for r in degraded)
    # last LiDAR at 0.907 s: frames up to ~0.9 s pair, frames after 1.407 s are degraded
    assert max(r.header.ns for r in normal) <= 950 * MS
    assert min(r.header.ns for r in degraded) <= 1450 * MS
    assert max(r.header.ns for r in degraded) == int(2.95 * 1e9)
    assert all(r.monitor is None and r.lidar_stamp_ns is None for r in degraded)
    assert pipe.degraded == LIDAR_SILENT
    # degraded frames see the 'no returns' range image
    image = prepare_image(decode_image(flat_image(0, 100)), model.spec)
    ref = reference(image[None], np.zeros((1, *model.spec.lidar_shape), np.float32))
    np.testing.assert_allclose(degraded[0].probs, ref['probs'][0], rtol=1e-4)
    # the LiDAR comes back: pairing resumes
    pipe.push_lidar(cloud_at(clouds, int(3.007 * 1e9), 0))
    assert pipe.degraded == ''
    more = pipe.push_camera(flat_image(int(3.05 * 1e9), 100))
    more += pipe.push_lidar(cloud_at(clouds, int(3.107 * 1e9), 1))
    assert more
    assert not any(r.degraded for r in more)


def test_degraded_mode_drops_repeated_and_earlier_stamps(
    model: FusionModel, clouds: list[Any]
) -> None:
    """Without the pairer (one sensor silent), a repeated or earlier stamp is dropped and
    counted as out of order, as in paired mode."""
    pipe = FusionPipeline(model, PipelineConfig(silence_timeout=0.5))
    run_stream(pipe, clouds, 2.0, lidar_until=0.5)  # degraded from ~1 s on
    assert pipe.degraded == LIDAR_SILENT
    before = pipe.pairer.drops['camera_out_of_order']
    stamps = [2_000, 2_050, 2_050, 2_150, 2_100, 2_200]  # ms: a repeat, then a step back
    out = []
    for t in stamps:
        out += pipe.push_camera(flat_image(t * MS, 100))
    assert [r.header.ns // MS for r in out] == [2_000, 2_050, 2_150, 2_200]
    assert pipe.pairer.drops['camera_out_of_order'] - before == 2
    assert pipe.drops['camera_out_of_order'] >= 2


@pytest.mark.parametrize('late_ms', [2_500, 2_450])
def test_a_frame_run_alone_is_not_published_again_once_the_lidar_is_back(
    model: FusionModel, clouds: list[Any], late_ms: int
) -> None:
    """Frames run alone never reach the pairer: once the LiDAR is back, a repeat of the last
    degraded frame (or an earlier one) is still dropped and counted as out of order, not paired
    and published a second time."""
    pipe = FusionPipeline(model, PipelineConfig(silence_timeout=0.5))
    out = run_stream(pipe, clouds, 2.55, lidar_until=0.95)  # camera to 2.50 s, LiDAR to 0.907
    assert [r.header.ns // MS for r in out if r.degraded][-1] == 2_500  # the premise
    out += pipe.push_lidar(cloud_at(clouds, 2_507 * MS, 25))  # the LiDAR is back
    assert pipe.degraded == ''
    before = pipe.drops['camera_out_of_order']
    out += pipe.push_camera(flat_image(late_ms * MS, 100))  # already published alone
    out += pipe.push_camera(flat_image(2_550 * MS, 100))
    out += pipe.push_lidar(cloud_at(clouds, 2_607 * MS, 26))
    assert pipe.drops['camera_out_of_order'] - before == 1
    stamps = [r.header.ns for r in out]
    assert stamps == sorted(set(stamps))  # each frame once, in stamp order
    assert stamps[-1] == 2_550 * MS


def test_non_finite_model_output_is_counted_and_not_published(
    tmp_path: Path, clouds: list[Any]
) -> None:
    """NaN probabilities (argmax would say 'forward') are counted; only a zero Twist goes out."""
    from dmil_ros.runtime.outputs import OutputBuilder, Twists

    model = FusionModel(build_model(tmp_path / 'nan.onnx'), provider='cpu')
    pipe = FusionPipeline(model)
    real = model.run

    def poisoned(image: Any, lidar: Any) -> dict[str, Any]:
        out = real(image, lidar)
        out['probs'] = np.full_like(out['probs'], np.nan)
        return out

    model.run = poisoned  # type: ignore[method-assign]
    pipe.push_camera(flat_image(MS, 100))
    (result,) = pipe.push_lidar(cloud_at(clouds, 7 * MS, 0))
    assert not result.valid
    assert pipe.errors[('model', 'non_finite_output')] == 1
    assert 'non-finite' in pipe.last_error
    assert pipe.monitor.frames == 0  # no estimate entered the baseline
    assert OutputBuilder().frame(result) == []
    ((topic, twist),) = OutputBuilder(Twists()).frame(result)
    assert topic == '~/cmd_vel'
    assert (twist.linear.x, twist.angular.z) == (0.0, 0.0)
    assert OutputBuilder(Twists()).frame_cdr(result)[0][0] == '~/cmd_vel'


def feed(pipe: FusionPipeline, clouds: list[Any], events: list[tuple[int, str, int]]) -> Any:
    """Push ``(stamp ns, 'c' | 'l', index)`` events in stamp order; the frame results."""
    out = []
    for t, kind, k in sorted(events):
        if kind == 'c':
            out += pipe.push_camera(flat_image(t, 100))
        else:
            out += pipe.push_lidar(cloud_at(clouds, t, k))
    return out


def test_a_60_hz_camera_loses_no_frame_when_the_lidar_falls_silent(
    model: FusionModel, clouds: list[Any]
) -> None:
    """The frames queued while the LiDAR's silence is not yet certain (silence_timeout) run
    degraded; with a 10-frame queue a 60 Hz camera lost 20 of them as camera_queue_full."""
    pipe = FusionPipeline(model)  # the default config
    events = [(int(k / 60 * 1e9), 'c', k) for k in range(120)]
    events += [(int((k * 0.1 + 0.007) * 1e9), 'l', k) for k in range(5)]  # silent after 0.4 s
    out = feed(pipe, clouds, events)
    assert pipe.drops['camera_queue_full'] == 0
    # every frame up to the last one that can be decided is published, paired or degraded
    assert len(out) >= 118
    assert any(r.degraded == LIDAR_SILENT for r in out)


def test_first_frame_after_a_camera_outage_pairs_with_the_sweep_before_it(
    model: FusionModel, clouds: list[Any]
) -> None:
    """The sweep just before the camera's return ran alone (camera silent); the returning frame
    13 ms after it used to find no LiDAR within slop and was dropped (camera_no_match)."""
    pipe = FusionPipeline(model)
    cams = [k * 0.05 for k in range(20)] + [2.02 + k * 0.05 for k in range(10)]
    events = [(int(t * 1e9), 'c', k) for k, t in enumerate(cams)]
    events += [(int((k * 0.1 + 0.007) * 1e9), 'l', k) for k in range(30)]
    out = feed(pipe, clouds, events)
    assert any(r.degraded == CAMERA_SILENT for r in out)
    assert pipe.drops['camera_no_match'] == 0
    back = next(r for r in out if r.header.ns == int(2.02 * 1e9))
    assert not back.degraded
    assert back.lidar_stamp_ns == int(2.007 * 1e9)


def test_a_late_message_does_not_rewind_the_sensor_clock(
    model: FusionModel, clouds: list[Any]
) -> None:
    """A sweep (or frame) 0.48 s late, under silence_timeout, is dropped as out of order; it
    used to set the sensor's newest stamp back, so the next frames ran degraded (review 10, 3)."""
    t0 = 1_000 * MS  # a stamp of 0 is refused (unstamped)
    for late in ('l', 'c'):
        pipe = FusionPipeline(model, PipelineConfig(silence_timeout=0.5))
        events = [(t0 + k * 50 * MS, 'c', k) for k in range(40)]
        events += [(t0 + k * 100 * MS + 7 * MS, 'l', k) for k in range(20)]
        out = feed(pipe, clouds, [e for e in events if e[0] < t0 + 1_320 * MS])
        stamp = t0 + (827 * MS if late == 'l' else 850 * MS)  # one already seen
        out += (
            pipe.push_lidar(cloud_at(clouds, stamp, 0))
            if late == 'l'
            else pipe.push_camera(flat_image(stamp, 100))
        )
        out += feed(pipe, clouds, [e for e in events if e[0] >= t0 + 1_320 * MS])
        assert not any(r.degraded for r in out)
        assert pipe.drops[f'{"lidar" if late == "l" else "camera"}_out_of_order'] == 1
        assert len(out) + 1 == 40  # every frame but the last (it waits for a later sweep)


def test_one_sensor_clock_stepping_ahead_is_named_not_called_silence(
    model: FusionModel, clouds: list[Any]
) -> None:
    """The camera's stamps jump 3 s ahead (a time sync step on one sensor) while both keep
    publishing: the frames run camera-only, the degraded state holds steady instead of
    flipping at every sweep, and diagnostics name the stamp offset, not a silent LiDAR."""
    from dmil_ros.runtime.diagnostics import ERROR, DiagnosticsTracker

    pipe = FusionPipeline(model, PipelineConfig(silence_timeout=0.5))
    tracker = DiagnosticsTracker(pipe)
    events = [(k * 50 * MS, 'c', k) for k in range(80)]
    events += [(k * 100 * MS + 7 * MS, 'l', k) for k in range(40)]
    states = []
    for t, kind, k in sorted(events):
        now = t / 1e9  # receive time: both sensors arrive on time
        if kind == 'c':
            tracker.arrived(pipe.config.camera_topic, now)
            step = 3_000 * MS if t >= 2_000 * MS else 0
            pipe.push_camera(flat_image(t + step, 100))
        else:
            tracker.arrived(pipe.config.lidar_topic, now)
            pipe.push_lidar(cloud_at(clouds, t, k))
        if t >= 2_600 * MS:
            states.append(pipe.degraded)
    assert set(states) == {LIDAR_SILENT}
    (status,) = tracker.report(3.95)
    assert status.level == ERROR
    assert "LiDAR '/lidar/points' publishing, but its stamps trail the camera by 3.0" in (
        status.message
    )
    assert 'silent' not in status.message


def test_a_topic_that_never_delivers_is_an_error_after_the_timeout(model: FusionModel) -> None:
    """A mistyped topic or namespace: nothing ever arrives. Diagnostics say so once
    ``silence_timeout`` has passed since start-up, naming the topic; before, they read OK
    ('waiting for input') forever."""
    from dmil_ros.runtime.diagnostics import ERROR, OK, DiagnosticsTracker

    pipe = FusionPipeline(model, PipelineConfig(silence_timeout=0.5))
    cam, lid = pipe.config.camera_topic, pipe.config.lidar_topic
    tracker = DiagnosticsTracker(pipe, start=100.0)
    (status,) = tracker.report(100.3)
    assert (status.level, status.message) == (OK, 'waiting for input')
    for now in (101.0, 3700.0):
        (status,) = tracker.report(now)
        assert status.level == ERROR
        assert status.message.startswith('no input: nothing received on')
        assert repr(cam) in status.message
        assert repr(lid) in status.message
    # the camera arrives, the LiDAR never does: only the LiDAR is named
    tracker.arrived(cam, 3700.1)
    (status,) = tracker.report(3700.2)
    assert status.level == ERROR
    assert status.message.startswith(f'degraded: nothing received on {lid!r}')
    assert repr(cam) not in status.message
    # a replay's tracker starts at the first arrival: the bag's first message
    replayed = DiagnosticsTracker(pipe)
    replayed.arrived(cam, 5.0)
    assert replayed.report(5.2)[0].level == OK
    replayed.arrived(cam, 5.5)
    assert replayed.report(5.6)[0].message.startswith(f'degraded: nothing received on {lid!r}')


def test_camera_silent_degraded_mode(model: FusionModel, clouds: list[Any]) -> None:
    pipe = FusionPipeline(model)
    results = run_stream(pipe, clouds, 3.0, camera_until=1.0)
    degraded = [r for r in results if r.degraded]
    assert degraded
    assert all(r.degraded == CAMERA_SILENT for r in degraded)
    assert all(r.header.frame_id == 'lidar_link' for r in degraded)  # stamped by the LiDAR
    assert all(r.lidar_stamp_ns == r.header.ns for r in degraded)


def test_foreign_model_publishes_probs_only(tmp_path: Path, clouds: list[Any]) -> None:
    model = FusionModel(build_model(tmp_path / 'f.onnx', outputs=('probs',)), provider='cpu')
    pipe = FusionPipeline(model)
    results = run_stream(pipe, clouds, 1.0)
    assert results
    assert all(r.gates is None and r.pid == {} and r.monitor is None for r in results)
    assert pipe.pid_source is None


def test_synergy_segment_raises_alert(model: FusionModel, clouds: list[Any]) -> None:
    """Model's S = mean standardised red: a red segment is a synergy spike."""
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 20, 400)

    def red(k: int) -> int:
        return 250 if 200 <= k < 240 else 60 + int(noise[k])

    pipe = FusionPipeline(model)
    results = run_stream(pipe, clouds, 20.0, reds=red)
    k = np.array([round(r.header.ns / (50 * MS)) for r in results])
    alert = np.array([r.alert for r in results])
    inside = (k >= 200) & (k < 240)
    assert alert[inside].mean() > 0.9
    assert alert[~inside].mean() < 0.05
    assert pipe.monitor.alerts == 1


@pytest.mark.parametrize('one_by_one', [False, True])
def test_pid_broja_rows_at_the_table_floor_are_nan_and_skip_the_monitor(
    tmp_path: Path, clouds: list[Any], one_by_one: bool
) -> None:
    """A pid_broja row with a term of 30 bits or more (the exported table's floor, no evidence)
    is published as NaN, counted, and kept out of the monitor's baseline; the frame's action
    still goes out. Here S = 20 x the standardised red mean: red 250 gives 38 bits, the other
    frames -21 to -12."""
    from dmil_ros.runtime.contract import NO_EVIDENCE_BITS
    from dmil_ros.runtime.diagnostics import DiagnosticsTracker
    from dmil_ros.runtime.outputs import OutputBuilder

    model = FusionModel(build_model(tmp_path / 's.onnx', pid_scale=20.0), provider='cpu')
    pipe = FusionPipeline(model)
    bright = {7, 8, 15}

    def red(k: int) -> int:
        return 250 if k in bright else 60 + k

    results = run_stream(pipe, clouds, 1.5, reds=red, one_by_one=one_by_one)
    expected_floored = 0
    finite_s: list[float] = []
    for r in results:
        k = round(r.header.ns / (50 * MS))
        assert r.monitor is not None
        # the model's own row, recomputed independently of the pipeline
        image = prepare_image(decode_image(flat_image(r.header.ns, red(k))), model.spec)
        assert r.lidar_stamp_ns is not None
        j = round((r.lidar_stamp_ns - 7 * MS) / (100 * MS))
        lidar = prepare_points(
            decode_pointcloud2(cloud_at(clouds, r.lidar_stamp_ns, j)), model.spec
        )
        row = reference(image[None], lidar[None], pid_scale=20.0)['pid_broja'][0]
        floored = bool(np.abs(row).max() >= NO_EVIDENCE_BITS)
        assert floored == (k in bright)  # the test's premise
        expected_floored += floored
        assert r.interactions is not None
        msg = dict(OutputBuilder().frame(r))['~/interactions']
        if floored:
            assert np.isnan(r.interactions).all()
            assert np.isnan(msg.position).all()
            assert np.isnan(r.monitor.synergy)
            assert r.action == int(np.argmax(reference(image[None], lidar[None])['probs'][0]))
        else:
            np.testing.assert_allclose(r.interactions, row, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(msg.position, row, rtol=1e-4, atol=1e-4)
            if finite_s:  # the baseline is the median of the finite values before this frame
                assert r.monitor.baseline == pytest.approx(float(np.median(finite_s)))
            finite_s.append(float(r.interactions[3]))
    assert pipe.no_evidence_frames == expected_floored == len(bright)
    values = dict(DiagnosticsTracker(pipe).report(1.0)[0].values)
    assert values['pid_broja frames without evidence'] == str(len(bright))


def test_a_frame_with_non_finite_probabilities_is_not_counted_without_evidence(
    tmp_path: Path, clouds: list[Any]
) -> None:
    """A floored pid_broja row on a frame whose probabilities are NaN counts once, as the
    non-finite output it is: that frame is not published, so it is no frame without evidence."""
    model = FusionModel(build_model(tmp_path / 's.onnx', pid_scale=20.0), provider='cpu')
    pipe = FusionPipeline(model)
    real = model.run
    poison = {'on': True}

    def poisoned(image: Any, lidar: Any) -> dict[str, Any]:
        out = real(image, lidar)
        if poison['on']:
            out['probs'] = np.full_like(out['probs'], np.nan)
        return out

    model.run = poisoned  # type: ignore[method-assign]
    pipe.push_camera(flat_image(MS, 250))  # red 250: S of 38 bits, the table's floor
    (bad,) = pipe.push_lidar(cloud_at(clouds, 7 * MS, 0))
    assert not bad.valid
    assert bad.interactions is not None
    assert np.isnan(bad.interactions).all()  # the premise: its row was floored
    assert pipe.errors[('model', 'non_finite_output')] == 1
    assert pipe.no_evidence_frames == 0
    poison['on'] = False  # the same frame again, with finite probabilities: counted
    pipe.push_camera(flat_image(100 * MS, 250))
    (good,) = pipe.push_lidar(cloud_at(clouds, 107 * MS, 1))
    assert good.valid
    assert pipe.no_evidence_frames == 1


def test_bad_config() -> None:
    with pytest.raises(RuntimeConfigError, match='silence_timeout'):
        PipelineConfig(slop=0.5, silence_timeout=0.2)
