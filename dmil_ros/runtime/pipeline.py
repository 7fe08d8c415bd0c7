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

"""The fusion pipeline: raw sensor messages in, one output record per camera/LiDAR pair out.

Shared by the rclpy node and the ROS-less replay; ROS-free. Stages, each timed per frame pair:

1. ``decode`` + ``preprocess`` as each message arrives (so a malformed message never enters
   pairing: it is counted under ``(topic, reason)`` and skipped);
2. approximate-time pairing (:mod:`dmil_ros.runtime.pairing`);
3. ``inference``: one ONNX Runtime call per batch of pairs (batch 1 in the node, larger in the
   replay; results are the same);
4. ``monitor``: the synergy spike monitor on the chosen per-frame S estimate.

No evidence. A ``pid_broja`` row that looked up a floored entry of the model's table (a term of
at least :data:`~dmil_ros.runtime.contract.NO_EVIDENCE_BITS`: the fitting frames never showed the
predicted action with the frame's clusters) is replaced by NaN and counted
(``no_evidence_frames``, published frames only): its ±60 bits are the table's floor, not an
estimate. The frame's action and gates are published as usual; the monitor skips its NaN synergy
(the alert keeps its state).

Degraded mode. When one sensor's stamps fall ``silence_timeout`` seconds behind the other's, the
pipeline keeps going on the live sensor alone and feeds the model the silent modality's *absent*
input: an all-zero range image ("no returns") for a silent LiDAR, an all-zero standardised
image (the training mean) for a silent camera. Those records carry ``degraded = 'lidar_silent'``
or ``'camera_silent'``, are stamped with the live sensor's header, do not enter the synergy
baseline (their S estimate is not meaningful) and make the diagnostics report ERROR. The first
message of the silent sensor ends the degraded mode (a returning camera frame may pair with the
last sweep run alone).

Outdated frames. A camera frame is not answered when its stamp lies more than
``silence_timeout`` behind the newest stamp of either sensor: the frames waiting in the pairer
(for a sweep at or after them) when both sensors stall, dropped by the first message after the
stall (its own sensor silent for ``silence_timeout`` before it, it starts a degraded mode), and
any pair decided that late: frames released in a burst after being held, frames from before a
clock step forward, and a camera whose clock trails the LiDAR's. All are counted with the
pairing drops as ``camera_outdated``. Seconds-old frames are not answered as live (nor drive
``cmd_vel``), and the output stamps do not go back across a stall. The frames that only waited
for a LiDAR silence to be certain still run alone, at most ``silence_timeout`` and a frame
period late.

Clock jumps. A message stamped more than ``silence_timeout`` before the previous stamp of the
same sensor means the clock went back (a looped bag, an NTP/PTP step, a robot restart): the
pairer, the last stamps and the degraded state are reset, the jump is counted
(``clock_jumps_back``; the diagnostics report it) and the message is processed on the new
timeline. A smaller step back is ordinary reordering (dropped as out of order by the pairer).
A stamp of exactly 0 s 0 ns is no time at all (a driver that does not stamp, a node on
``use_sim_time`` without ``/clock``): the message is refused as malformed (reason ``header``),
not taken as a jump back.

Unusable sensors. The refusals of each topic since its last usable message are kept
(:meth:`FusionPipeline.refused_run`, updated on refusals only): the diagnostics tell a sensor
that publishes only unusable messages from a silent one or a clock out of step.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from dmil_ros.runtime.contract import NO_EVIDENCE_BITS, no_evidence
from dmil_ros.runtime.decode import decode_image, decode_laserscan, decode_pointcloud2
from dmil_ros.runtime.errors import DecodeError, RuntimeConfigError
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.monitor import MonitorConfig, SynergyMonitor
from dmil_ros.runtime.pairing import ApproxTimePairer, Pair
from dmil_ros.runtime.preprocess import prepare_image, prepare_points
from dmil_ros.runtime.records import (
    FrameResult,
    Job,
    Prepared,
    RefusalRun,
    header_of,
    planar_warning,
)

F32 = npt.NDArray[np.float32]
STAGES: Final = ('decode', 'preprocess', 'inference', 'monitor')
LIDAR_SILENT: Final = 'lidar_silent'
PID_OUTPUTS: Final[tuple[str, ...]] = ('pid_lsmi', 'pid_broja')
CAMERA_SILENT: Final = 'camera_silent'
OUTDATED: Final = 'camera_outdated'  # pairing drop: a frame silence_timeout behind the newest


@dataclass(frozen=True)
class PipelineConfig:
    """Pipeline parameters (validated on construction)."""

    camera_topic: str = '/camera/image_raw'
    lidar_topic: str = '/lidar/points'
    slop: float = 0.05  # s: max |t_camera - t_lidar| of a pair
    # per sensor, before pairing: holds silence_timeout of a 60 Hz camera, so the frames
    # waiting when the LiDAR falls silent run degraded instead of being dropped
    queue_size: int = 30
    silence_timeout: float = 0.5  # s of stamp time before degraded mode
    pid_source: str = 'auto'  # 'auto' (pid_broja, else pid_lsmi), 'pid_broja', 'pid_lsmi'
    monitor: MonitorConfig = field(default_factory=MonitorConfig)

    def __post_init__(self) -> None:
        for name in ('slop', 'silence_timeout'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                msg = f'{name} {value!r} must be a positive, finite number of seconds'
                raise RuntimeConfigError(msg)
        if not self.silence_timeout > self.slop:
            msg = f'silence_timeout {self.silence_timeout!r} must exceed slop {self.slop!r}'
            raise RuntimeConfigError(msg)


def _maybe_floored(pid_broja: F32) -> bool:
    """False when no term of the ``(B, 4)`` rows reaches ``NO_EVIDENCE_BITS`` (the common case).

    The node's single frame is checked on plain floats (2 us; numpy's calls on four values cost
    4-6 us after a model call), a batch with one numpy pass. NaN counts as maybe (no_evidence
    then decides).
    """
    if len(pid_broja) == 1:
        return not all(-NO_EVIDENCE_BITS < v < NO_EVIDENCE_BITS for v in pid_broja[0].tolist())
    return not bool((np.abs(pid_broja) < NO_EVIDENCE_BITS).all())


class FusionPipeline:
    """Feed raw messages with :meth:`push_camera` / :meth:`push_lidar`; get frame results.

    For throughput, :meth:`feed_camera` / :meth:`feed_lidar` return the ready jobs without
    running the model, and :meth:`infer` runs any number of them as one batch.
    """

    def __init__(self, model: FusionModel, config: PipelineConfig | None = None) -> None:
        self.model = model
        self.config = config or PipelineConfig()
        self.spec = model.spec
        self.pid_source = model.pid_source(self.config.pid_source)
        self.pairer: ApproxTimePairer[Prepared, Prepared] = ApproxTimePairer(
            self.config.slop, self.config.queue_size
        )
        self.monitor = SynergyMonitor(self.config.monitor)
        self._empty_image = np.zeros(self.spec.image_shape, np.float32)
        self._empty_lidar = np.zeros(self.spec.lidar_shape, np.float32)
        self.received: Counter[str] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()
        self.topic_errors: dict[str, str] = {}  # topic -> its latest message error
        self._refusals: dict[str, RefusalRun] = {}  # topic -> its refusals since a usable one
        self.last_error = ''
        self.frames = 0
        self.degraded_frames = 0
        self.no_evidence_frames = 0  # pid_broja rows at the table's floor, set to NaN
        self.degraded = ''
        self.last_camera_ns: int | None = None
        self.last_lidar_ns: int | None = None
        self._first_ns: int | None = None
        self._charged_lidar: int | None = None
        self._last_alone_lidar: tuple[int, Prepared] | None = None  # camera-silent mode
        self.clock_jumps_back = 0
        self.last_jump = ''
        self.latency: deque[float] = deque(maxlen=500)  # end-to-end seconds, recent frames
        self.planar_lidar = ''  # planar_warning, once a LaserScan fed a 3-D model

    # ---- stage 1: decode + preprocess -------------------------------------------------------

    def _prepare(self, msg: Any, camera: bool) -> Prepared | None:
        topic = self.config.camera_topic if camera else self.config.lidar_topic
        self.received[topic] += 1
        try:
            header = header_of(msg, topic)
            t0 = time.perf_counter()
            if camera:
                rgb = decode_image(msg, topic)
                t1 = time.perf_counter()
                tensor = prepare_image(rgb, self.spec)
            else:
                if hasattr(msg, 'ranges'):
                    points = decode_laserscan(msg, topic)
                    if not self.planar_lidar:
                        self.planar_lidar = planar_warning(topic, self.spec.beams)
                else:
                    points = decode_pointcloud2(msg, topic)
                t1 = time.perf_counter()
                tensor = prepare_points(points, self.spec)
            t2 = time.perf_counter()
        except DecodeError as exc:
            self._refuse(topic, exc.reason, str(exc))
            return None
        except (AttributeError, TypeError) as exc:  # not the message type the topic should carry
            text = f'topic {topic!r}: {type(msg).__name__} is not usable ({exc})'
            self._refuse(topic, 'type', text)
            return None
        except Exception as exc:  # anything else one message triggers costs that message only
            text = f'topic {topic!r}: message skipped ({type(exc).__name__}: {exc})'
            self._refuse(topic, 'unexpected', text)
            return None
        return Prepared(header, tensor, t1 - t0, t2 - t1)

    def _refuse(self, topic: str, reason: str, text: str) -> None:
        """Count a message ``_prepare`` could not use, under its topic and reason, and in the
        topic's run of refusals (a new run when a usable message came since the last one: every
        message received is either used or refused, so the ``received`` counts tell; the usable
        path stays untouched)."""
        self.errors[(topic, reason)] += 1
        self.last_error = self.topic_errors[topic] = text
        n = self.received[topic]
        run = self._refusals.get(topic)
        if run is None or run.at != n - 1:
            run = self._refusals[topic] = RefusalRun()
        run.count += 1
        run.at = n
        run.reasons[reason] += 1
        run.last = text.removeprefix(f'topic {topic!r}: ')

    def feed_camera(self, msg: Any) -> list[Job]:
        """Decode a camera message; return the jobs it makes ready (pairs or degraded frames)."""
        prep = self._prepare(msg, camera=True)
        if prep is None:
            return []
        t = prep.header.ns
        self._clock_check(t, self.last_camera_ns, self.config.camera_topic)
        self._first_ns = t if self._first_ns is None else self._first_ns
        ref = self.last_lidar_ns if self.last_lidar_ns is not None else self._first_ns
        alone = t - ref > self.config.silence_timeout * 1e9
        if self._out_of_order(t, self.last_camera_ns, 'camera'):
            return []
        previous, self.last_camera_ns = self.last_camera_ns, t  # an earlier t was dropped above
        restored: list[Job] = []
        if self.degraded == CAMERA_SILENT and not self._behind(t, self.last_lidar_ns):
            self.degraded = ''
            # the camera is back: the last sweep run alone may still pair with its first frame
            # (and decides the frames queued before the silence, like any sweep)
            if self._last_alone_lidar is not None:
                restored = self._pair_jobs(self.pairer.push_lidar(*self._last_alone_lidar))
                self._last_alone_lidar = None
        if alone:
            self.degraded = LIDAR_SILENT
            # the frames that waited for a sweep at or after them run alone, this one last:
            # they waited for the silence to be certain (at most silence_timeout and a frame
            # period), unless the camera too was silent for silence_timeout before this frame:
            # then they waited across a stall of both sensors (each at or before the previous
            # frame) and are outdated
            waiting = [item for _, item in self.pairer.take_cameras()]
            if waiting and previous is not None and self._behind(previous, t):
                self.pairer.drops[OUTDATED] += len(waiting)
                waiting = []
            return restored + [self._alone(p, camera=True) for p in [*waiting, prep]]
        return restored + self._pair_jobs(self.pairer.push_camera(t, prep))

    def feed_lidar(self, msg: Any) -> list[Job]:
        """Decode a LiDAR message (PointCloud2 or LaserScan); return the jobs it makes ready."""
        prep = self._prepare(msg, camera=False)
        if prep is None:
            return []
        t = prep.header.ns
        self._clock_check(t, self.last_lidar_ns, self.config.lidar_topic)
        self._first_ns = t if self._first_ns is None else self._first_ns
        ref = self.last_camera_ns if self.last_camera_ns is not None else self._first_ns
        alone = t - ref > self.config.silence_timeout * 1e9
        if self._out_of_order(t, self.last_lidar_ns, 'lidar'):
            return []
        self.last_lidar_ns = t  # the newest: an earlier stamp was dropped just above
        if self.degraded == LIDAR_SILENT and not self._behind(t, self.last_camera_ns):
            self.degraded = ''
        if alone:
            self.degraded = CAMERA_SILENT
            self._last_alone_lidar = (t, prep)
            self._charged_lidar = t  # its decode + preprocess count for the degraded frame
            # the frames waiting for a sweep at or after them (each at or before the camera's
            # newest stamp) lie more than silence_timeout behind this one: they waited across a
            # stall of both sensors, and would be paired with the sweeps from before it
            waiting = self.pairer.take_cameras()
            if waiting:
                self.pairer.drops[OUTDATED] += len(waiting)
            return [self._alone(prep, camera=False)]
        return self._pair_jobs(self.pairer.push_lidar(t, prep))

    def finish(self) -> list[Job]:
        """End of a recording: the camera frames still waiting for a later sweep, paired with
        the newest one (:meth:`ApproxTimePairer.finish`); the replay and the audit call it."""
        return self._pair_jobs(self.pairer.finish())

    def _behind(self, t: int, other: int | None) -> bool:
        """True when stamp ``t`` lies more than ``silence_timeout`` before ``other`` (False for
        None): before the other sensor's newest, the sensor is publishing but its clock is out
        of step (degraded mode stays); a frame before the newest stamp is outdated, and a
        sensor's previous stamp before its newest one means it was silent in between."""
        return other is not None and other - t > self.config.silence_timeout * 1e9

    def _out_of_order(self, t: int, latest: int | None, sensor: str) -> bool:
        """Drop and count a repeated or earlier stamp as the pairer would
        (``<sensor>_out_of_order``), against the newest stamp of any frame the sensor sent:
        frames run alone in degraded mode never reach the pairer, so its own last stamp may
        predate them."""
        if latest is None or t > latest:
            return False
        self.pairer.drops[f'{sensor}_out_of_order'] += 1
        return True

    def _clock_check(self, t: int, latest: int | None, topic: str) -> None:
        """Reset the timeline when ``t`` lies far behind the sensor's previous stamp.

        Per sensor: a sensor's messages held back and released late (a burst) keep their own
        order and are not a jump, however far behind the other sensor they are.
        """
        if latest is None or latest - t <= self.config.silence_timeout * 1e9:
            return
        self.clock_jumps_back += 1
        self.last_jump = (
            f'topic {topic!r}: stamp {t / 1e9:.3f} s is {(latest - t) / 1e9:.3f} s behind the '
            f'previous ({latest / 1e9:.3f} s): clock jumped back, pairing reset'
        )
        self.pairer.reset()
        self.last_camera_ns = self.last_lidar_ns = self._first_ns = None
        self._charged_lidar = None
        self._last_alone_lidar = None
        self.degraded = ''

    def _pair_jobs(self, pairs: list[Pair[Prepared, Prepared]]) -> list[Job]:
        """The jobs of the pairs the pairer decided, less those whose camera frame lies more
        than ``silence_timeout`` behind the newest stamp of either sensor (counted as
        ``camera_outdated``): a frame that waited across a stall, a burst or a clock step
        forward is not answered as live."""
        if not pairs:
            return []
        cam, lid = self.last_camera_ns, self.last_lidar_ns
        newest = cam if lid is None else lid if cam is None else max(cam, lid)
        jobs = []
        for p in pairs:
            if self._behind(p.camera_stamp, newest):
                self.pairer.drops[OUTDATED] += 1
            else:
                jobs.append(self._pair_job(p.camera, p.lidar))
        return jobs

    def _pair_job(self, cam: Prepared, lid: Prepared) -> Job:
        # a sweep shared by several frames is decoded once: its time counts for the first pair
        first_use = lid.header.ns != self._charged_lidar
        self._charged_lidar = lid.header.ns
        return Job(
            header=cam.header,
            image=cam.tensor,
            lidar=lid.tensor,
            lidar_stamp_ns=lid.header.ns,
            camera_stamp_ns=cam.header.ns,
            decode=cam.decode + (lid.decode if first_use else 0.0),
            preprocess=cam.preprocess + (lid.preprocess if first_use else 0.0),
        )

    def _alone(self, prep: Prepared, camera: bool) -> Job:
        return Job(
            header=prep.header,
            image=prep.tensor if camera else self._empty_image,
            lidar=self._empty_lidar if camera else prep.tensor,
            lidar_stamp_ns=None if camera else prep.header.ns,
            camera_stamp_ns=prep.header.ns if camera else None,
            decode=prep.decode,
            preprocess=prep.preprocess,
            degraded=LIDAR_SILENT if camera else CAMERA_SILENT,
        )

    # ---- stages 3-4: inference + monitor ----------------------------------------------------

    def infer(self, jobs: list[Job]) -> list[FrameResult]:
        """Run the model once over ``jobs`` (one batch), then the monitor frame by frame."""
        if not jobs:
            return []
        t0 = time.perf_counter()
        if len(jobs) == 1:  # the node's case: views, no copy
            image, lidar = jobs[0].image[None], jobs[0].lidar[None]
        else:
            image = np.stack([j.image for j in jobs])  # (B, 3, H, W)
            lidar = np.stack([j.lidar for j in jobs])  # (B, 2, beams, bins)
        out = self.model.run(image, lidar)
        t1 = time.perf_counter()
        inference = (t1 - t0) / len(jobs)
        # per-frame work on plain floats read once per batch: numpy calls on four values cost
        # more than the values (per-call overhead, with caches cold after the model's run);
        # this batch-level part counts, shared out, in each frame's monitor stage
        batch_probs = np.asarray(out['probs'], np.float32)  # (B, 4)
        rows = batch_probs.tolist()
        pids = {n: out[n] for n in PID_OUTPUTS if n in out}  # name -> (B, 4)
        broja = pids.get('pid_broja')
        if broja is not None and _maybe_floored(broja):
            floored = no_evidence(broja)  # (B,)
            if floored.any():
                pids['pid_broja'] = np.where(floored[:, None], np.float32(np.nan), broja)
                # a frame with non-finite probabilities is counted as that, and not published
                finite = np.isfinite(batch_probs).all(axis=1)  # (B,)
                self.no_evidence_frames += int((floored & finite).sum())
        synergy = pids[self.pid_source][:, 3].tolist() if self.pid_source is not None else None
        shared = (time.perf_counter() - t1) / len(jobs)
        results = []
        for k, job in enumerate(jobs):
            t1 = time.perf_counter()
            probs = batch_probs[k]  # (4,)
            row = rows[k]
            valid = all(map(math.isfinite, row))
            if valid:
                action = max(range(len(row)), key=row.__getitem__)  # the first maximum
            else:  # argmax of NaNs is 0 ('forward'): counted, never published
                action = int(np.argmax(probs))
                self.errors[('model', 'non_finite_output')] += 1
                self.last_error = (
                    f'model {self.model.path!r}: non-finite action probabilities {probs} for the '
                    f'frame at {job.header.ns / 1e9:.3f} s; nothing published for it'
                )
            pid: dict[str, F32] = {n: v[k] for n, v in pids.items()}
            state = None
            if synergy is not None and not job.degraded and valid:
                state = self.monitor.update(synergy[k])
            t2 = time.perf_counter()
            timings = {
                'decode': job.decode,
                'preprocess': job.preprocess,
                'inference': inference,
                'monitor': t2 - t1 + shared,
            }
            timings['total'] = sum(timings.values())
            self.latency.append(timings['total'])
            self.frames += 1
            self.degraded_frames += bool(job.degraded)
            results.append(
                FrameResult(
                    header=job.header,
                    lidar_stamp_ns=job.lidar_stamp_ns,
                    probs=probs,
                    action=action,
                    gates=np.asarray(out['gates'][k], np.float32) if 'gates' in out else None,
                    pid=pid,
                    pid_source=self.pid_source,
                    monitor=state,
                    alert=self.monitor.alert,
                    degraded=job.degraded,
                    timings=timings,
                    valid=valid,
                )
            )
        return results

    def push_camera(self, msg: Any) -> list[FrameResult]:
        return self.infer(self.feed_camera(msg))

    def push_lidar(self, msg: Any) -> list[FrameResult]:
        return self.infer(self.feed_lidar(msg))

    # ---- counters ---------------------------------------------------------------------------

    def count_error(self, stage: str, exc: Exception) -> str:
        """Count an error that cost one frame outside the pipeline's own checks (the node's
        ``model`` / ``publish`` stages) under ``(stage, error type)``; returns its text."""
        self.errors[(stage, type(exc).__name__)] += 1
        self.last_error = f'{stage}: {type(exc).__name__}: {exc}'
        return self.last_error

    @property
    def drops(self) -> Counter[str]:
        """Pairing drops by reason plus decode errors as ``'<topic>: <reason>'``."""
        out: Counter[str] = Counter(self.pairer.drops)
        for (topic, reason), n in self.errors.items():
            out[f'{topic}: {reason}'] += n
        return out

    def _sensors(self) -> tuple[tuple[str, str], ...]:
        return (('camera', self.config.camera_topic), ('LiDAR', self.config.lidar_topic))

    def silent_sensors(self) -> list[tuple[str, str]]:
        """``(role, topic)`` of each sensor ('camera', 'LiDAR') that sent no message yet."""
        return [(role, topic) for role, topic in self._sensors() if not self.received[topic]]

    def unusable_sensors(self) -> list[tuple[str, str, str]]:
        """``(role, topic, why)`` of each sensor that sent messages, none of them usable (a
        topic of another type, an encoding not supported, no stamps): every frame then runs
        degraded. Each message received is either used or counted in :attr:`errors` under its
        topic, so the run of refusals then spans them all."""
        return [
            (role, topic, self.topic_errors.get(topic, ''))
            for role, topic in self._sensors()
            if (run := self.refused_run(topic)) is not None and run.count == self.received[topic]
        ]

    def refused_run(self, topic: str) -> RefusalRun | None:
        """The refusals of ``topic`` since its last usable message (or its first message), when
        its newest message was refused: the sensor publishes, but nothing usable since; None
        when its newest message was usable, or none came."""
        run = self._refusals.get(topic)
        return run if run is not None and run.at == self.received[topic] else None

    @property
    def alert(self) -> bool:
        return self.monitor.alert
