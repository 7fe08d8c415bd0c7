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

"""The in-memory simulator: a drive plan, and camera frames / LiDAR sweeps rendered on demand.

A drive is a sequence of scene segments (tens of camera frames each, family drawn by the mix
weights, latents drawn from the family's design). In each segment the robot creeps towards the
decision point (x from -approach to 0 in the scene frame) with a small lateral and heading
sway; the expert's action for the segment is the family rule of its latents, published as the
discrete label and as a ``/cmd_vel`` command. Camera frames come at ``camera_rate_hz`` and LiDAR
sweeps at ``lidar_rate_hz`` (offset, so the two never line up), both with clipped Gaussian
stamp jitter. Every random draw comes from a stream keyed by (seed, purpose, index), so the
data do not depend on which API is iterated or how far.

* :meth:`Simulator.events` - camera frames and LiDAR sweeps interleaved in stamp order, at the
  real rates (what the bag writer records);
* :meth:`Simulator.frames` - one :class:`Frame` per camera frame with a LiDAR sweep rendered at
  the same instant and pose (for tests, benchmarks and training without pairing);
* :meth:`Simulator.truths` - the per-frame ground truth without rendering anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dmil_ros.actions import FAMILIES
from dmil_ros.runtime.preprocess import Points
from dmil_ros.sim.config import SimConfig
from dmil_ros.sim.expert import expert_command
from dmil_ros.sim.families import DESIGNS
from dmil_ros.sim.geometry import APPROACH_M, SWAY_Y_M, SWAY_YAW_DEG
from dmil_ros.sim.render import (
    CameraModel,
    LidarModel,
    LidarScanData,
    NoisePool,
    render_camera,
    render_lidar,
)
from dmil_ros.sim.scene import Scene, build_scene

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

LIDAR_OFFSET_S = 0.013  # first sweep starts this long after the first camera frame
_PLAN, _SEGMENT, _CAM_JITTER, _LIDAR_JITTER, _CAM, _LIDAR, _SYNC, _CMD, _NOISE = range(9)


def _rng(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


@dataclass(frozen=True)
class Segment:
    """A contiguous run of camera frames ``[first, stop)`` in one scene."""

    index: int
    family: str
    camera_latent: int
    lidar_latent: int
    action: int
    first: int
    stop: int
    t0: float  # nominal start (s from the drive start)
    t1: float  # nominal end
    approach: float  # m travelled towards the decision point
    sway: tuple[float, float, float, float, float, float]  # a_y, f_y, ph_y, a_yaw, f_yaw, ph_yaw


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one camera frame (the fields of ``dmil_ros/msg/GroundTruth``)."""

    frame: int
    stamp_ns: int
    segment: int
    family: str
    action: int
    camera_latent: int
    lidar_latent: int
    camera_cue: str
    lidar_cue: str
    corridor_half_width: float
    decision_distance: float
    light_level: float
    pose: tuple[float, float, float]  # x, y, yaw in the scene frame
    cmd: tuple[float, float]  # linear x (m/s), angular z (rad/s)


@dataclass(frozen=True)
class CameraFrame:
    """One camera image ``(H, W, 3)`` uint8 RGB and its ground truth."""

    index: int
    stamp_ns: int
    rgb: U8
    truth: FrameTruth


@dataclass(frozen=True)
class LidarSweep:
    """One LiDAR sweep (sensor frame ``lidar_link``), points ordered azimuth-major."""

    index: int
    stamp_ns: int
    segment: int
    family: str
    data: LidarScanData

    @property
    def xyz(self) -> F32:
        return self.data.xyz

    @property
    def intensity(self) -> F32:
        return self.data.intensity

    @property
    def ring(self) -> npt.NDArray[np.uint16]:
        return self.data.ring

    def points(self) -> Points:
        """As the runtime's :class:`~dmil_ros.runtime.preprocess.Points` (model input path)."""
        return Points(self.data.xyz, self.data.intensity, self.data.ring.astype(np.int32))


@dataclass(frozen=True)
class Frame:
    """A camera frame and a LiDAR sweep taken at the same instant and pose."""

    camera: CameraFrame
    lidar: LidarSweep

    @property
    def rgb(self) -> U8:
        return self.camera.rgb

    @property
    def action(self) -> int:
        return self.camera.truth.action

    @property
    def family(self) -> str:
        return self.camera.truth.family

    @property
    def stamp_ns(self) -> int:
        return self.camera.stamp_ns


def _jitter(key: int, seed: int, n: int, sigma: float) -> npt.NDArray[np.float64]:
    if sigma <= 0 or n == 0:
        return np.zeros(n)
    return np.clip(_rng(seed, key).normal(0.0, sigma, n), -3 * sigma, 3 * sigma)


class Simulator:
    """Deterministic simulated drive for ``config`` (see the module docstring)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.camera = CameraModel.from_config(config)
        self.lidar = LidarModel.from_config(config)
        cfg = config
        dt = 1.0 / cfg.camera_rate_hz
        # 1. segments
        plan = _rng(cfg.seed, _PLAN)
        weights = np.array([cfg.mix[f] for f in FAMILIES])
        segments: list[Segment] = []
        first = 0
        while first < cfg.frames:
            lo, hi = cfg.segment_frames
            n = min(int(plan.integers(lo, hi + 1)), cfg.frames - first)
            family = FAMILIES[int(plan.choice(len(FAMILIES), p=weights))]
            c, l, action = DESIGNS[family].sample(plan)  # noqa: E741
            seg_rng = _rng(cfg.seed, _SEGMENT, len(segments))
            sway = (
                float(seg_rng.uniform(0.0, SWAY_Y_M)),
                float(seg_rng.uniform(0.2, 0.6)),
                float(seg_rng.uniform(0, 2 * np.pi)),
                float(np.deg2rad(seg_rng.uniform(0.0, SWAY_YAW_DEG))),
                float(seg_rng.uniform(0.2, 0.6)),
                float(seg_rng.uniform(0, 2 * np.pi)),
            )
            segments.append(
                Segment(
                    index=len(segments),
                    family=family,
                    camera_latent=c,
                    lidar_latent=l,
                    action=action,
                    first=first,
                    stop=first + n,
                    t0=(first - 0.5) * dt,
                    t1=(first + n - 0.5) * dt,
                    approach=float(seg_rng.uniform(*APPROACH_M)),
                    sway=sway,
                )
            )
            first += n
        self.segments: tuple[Segment, ...] = tuple(segments)
        self._frame_segment = np.repeat(
            np.arange(len(segments)), [s.stop - s.first for s in segments]
        )
        # 2. stamps: nominal times plus clipped jitter; sweeps offset from the camera
        cam_t = np.arange(cfg.frames) * dt
        self.camera_times = cam_t + _jitter(_CAM_JITTER, cfg.seed, cfg.frames, cfg.jitter_s)
        end = (cfg.frames - 0.5) * dt
        n_sweeps = max(0, math.ceil((end - LIDAR_OFFSET_S) * cfg.lidar_rate_hz))
        self.lidar_nominal = LIDAR_OFFSET_S + np.arange(n_sweeps) / cfg.lidar_rate_hz
        self.lidar_times = self.lidar_nominal + _jitter(
            _LIDAR_JITTER, cfg.seed, n_sweeps, cfg.jitter_s
        )
        self._scenes: dict[int, Scene] = {}
        self._noise = NoisePool.create(_rng(cfg.seed, _NOISE))

    # -- plan queries -------------------------------------------------------------------------
    def stamp_ns(self, t: float) -> int:
        """Absolute stamp (ns) of drive time ``t`` (s)."""
        return self.config.start_time_ns + round(t * 1e9)

    def segment_of_frame(self, k: int) -> Segment:
        return self.segments[int(self._frame_segment[k])]

    def segment_at(self, t: float) -> Segment:
        """The segment whose nominal time span contains ``t`` (clamped to the drive)."""
        k = min(max(round(t * self.config.camera_rate_hz), 0), self.config.frames - 1)
        return self.segment_of_frame(k)

    def scene(self, seg: Segment) -> Scene:
        """The (cached) scene of a segment."""
        scene = self._scenes.get(seg.index)
        if scene is None:
            rng = _rng(self.config.seed, _SEGMENT, seg.index, 1)
            scene = build_scene(seg.family, seg.camera_latent, seg.lidar_latent, rng)
            if len(self._scenes) >= 8:
                self._scenes.pop(next(iter(self._scenes)))
            self._scenes[seg.index] = scene
        return scene

    @staticmethod
    def pose(seg: Segment, t: float) -> tuple[float, float, float]:
        """Robot pose (x, y, yaw) in the segment's scene frame at drive time ``t``."""
        p = min(max((t - seg.t0) / (seg.t1 - seg.t0), 0.0), 1.0)
        a_y, f_y, ph_y, a_w, f_w, ph_w = seg.sway
        x = -seg.approach * (1.0 - p)
        y = a_y * math.sin(2 * math.pi * f_y * t + ph_y)
        yaw = a_w * math.sin(2 * math.pi * f_w * t + ph_w)
        return x, y, yaw

    def truth(self, k: int) -> FrameTruth:
        """Ground truth of camera frame ``k`` (no rendering)."""
        seg = self.segment_of_frame(k)
        scene = self.scene(seg)
        t_nom = k / self.config.camera_rate_hz
        pose = self.pose(seg, t_nom)
        cmd = expert_command(seg.action, _rng(self.config.seed, _CMD, k))
        return FrameTruth(
            frame=k,
            stamp_ns=self.stamp_ns(float(self.camera_times[k])),
            segment=seg.index,
            family=seg.family,
            action=seg.action,
            camera_latent=seg.camera_latent,
            lidar_latent=seg.lidar_latent,
            camera_cue=scene.camera_cue,
            lidar_cue=scene.lidar_cue,
            corridor_half_width=scene.half_width,
            decision_distance=scene.decision_x - pose[0],
            light_level=scene.light,
            pose=pose,
            cmd=cmd,
        )

    def truths(self) -> list[FrameTruth]:
        return [self.truth(k) for k in range(self.config.frames)]

    # -- rendering ----------------------------------------------------------------------------
    def camera_frame(self, k: int) -> CameraFrame:
        truth = self.truth(k)
        scene = self.scene(self.segment_of_frame(k))
        rng = _rng(self.config.seed, _CAM, k)
        rgb = render_camera(scene, truth.pose, self.camera, rng, self._noise)
        return CameraFrame(k, truth.stamp_ns, rgb, truth)

    def lidar_sweep(self, j: int) -> LidarSweep:
        t = float(self.lidar_nominal[j])
        seg = self.segment_at(t)
        rng = _rng(self.config.seed, _LIDAR, j)
        data = render_lidar(self.scene(seg), self.pose(seg, t), self.lidar, rng, self._noise)
        return LidarSweep(
            j, self.stamp_ns(float(self.lidar_times[j])), seg.index, seg.family, data
        )

    def events(self) -> Iterator[CameraFrame | LidarSweep]:
        """Camera frames and LiDAR sweeps at their real rates, in stamp order."""
        k = j = 0
        n_cam, n_lidar = self.config.frames, len(self.lidar_times)
        while k < n_cam or j < n_lidar:
            if j >= n_lidar or (k < n_cam and self.camera_times[k] <= self.lidar_times[j]):
                yield self.camera_frame(k)
                k += 1
            else:
                yield self.lidar_sweep(j)
                j += 1

    def frames(self) -> Iterator[Frame]:
        """One camera frame plus a LiDAR sweep at the same instant and pose, per frame."""
        for k in range(self.config.frames):
            cam = self.camera_frame(k)
            seg = self.segment_of_frame(k)
            rng = _rng(self.config.seed, _SYNC, k)
            data = render_lidar(self.scene(seg), cam.truth.pose, self.lidar, rng, self._noise)
            yield Frame(cam, LidarSweep(k, cam.stamp_ns, seg.index, seg.family, data))
