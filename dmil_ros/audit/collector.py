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

"""Per-frame arrays of a bag's audit: the pipeline's results plus every recorded model output.

A model without unimodal heads gets its unimodal predictions by calibrated masking
(:mod:`dmil_ros.audit.masking`), profiled on the bag's first ``profile_frames`` pairs: frames
inferred before the profile is complete are masked afterwards (back-filled).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dmil_ros.actions import ACTIONS
from dmil_ros.audit.masking import MaskStats, Profile, masked_inputs
from dmil_ros.runtime.records import FrameResult, Job

if TYPE_CHECKING:
    from dmil_ros.audit.bagaudit import BagOptions
    from dmil_ros.audit.model import RecordingModel
    from dmil_ros.runtime.pipeline import FusionPipeline

F32 = npt.NDArray[np.float32]


class Collector:
    """Accumulates per-frame arrays from pipeline results and the recorded model outputs."""

    def __init__(self, model: RecordingModel, options: BagOptions) -> None:
        self.model = model
        self.options = options
        self.heads = model.has('probs_camera') and model.has('probs_lidar')
        self.rows: dict[str, list[npt.NDArray[Any]]] = {
            k: []
            for k in (
                'stamp',
                'lidar_stamp',  # the paired sweep's (degraded frames are not audited)
                'probs',
                'gates',
                'p_camera',
                'p_lidar',
                'p_joint',
                'feat_camera',
                'feat_lidar',
                'self_lsmi',
                'self_broja',
                'alert',
            )
        }
        self.pending: list[Job] = []
        self.profile_jobs: list[Job] = []
        self.stats: MaskStats | None = None
        self.degraded = 0
        self.inference_s = 0.0
        self.pipeline: FusionPipeline | None = None
        self.alert_source: str | None = None  # the output the node's synergy monitor reads

    def add(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.degraded:
                self.degraded += 1
            self.pending.append(job)
        if len(self.pending) >= self.options.batch:
            self.flush()

    def flush(self, final: bool = False) -> None:
        if self.pending:
            if not self.heads and self.stats is None:
                self.profile_jobs.extend(j for j in self.pending if not j.degraded)
                if len(self.profile_jobs) < self.options.profile_frames and not final:
                    self._run(self.pending, masked=False)
                    return
                self._make_stats()
            self._run(self.pending, masked=not self.heads and self.stats is not None)
        elif final and not self.heads and self.stats is None:
            # a bag shorter than the profile whose last batch came out full: nothing is
            # pending, but every frame inferred so far still needs its masked predictions
            self._make_stats()

    @property
    def mask_missing(self) -> bool:
        """True when the model needs masking but its profile could not be built."""
        return not self.heads and self.stats is None

    def _make_stats(self) -> None:
        image, lidar = Profile(), Profile()
        jobs = self.profile_jobs[: self.options.profile_frames]
        if len(jobs) < 2:
            return
        image.add(np.stack([j.image for j in jobs]))
        lidar.add(np.stack([j.lidar for j in jobs]))
        self.stats = MaskStats.from_profiles(image, lidar)
        # frames inferred before the profile was complete get their masked predictions now
        self._mask_backfill()

    def _run(self, jobs: list[Job], masked: bool) -> None:
        # at most ``batch`` frames per model call, as in the replay: one message, or the end
        # of the bag, can complete several frames at once (the audit's session is a CPU one,
        # so this bounds the call's memory; no padded GPU shape is involved)
        self.pending = []
        for start in range(0, len(jobs), self.options.batch):
            self._run_batch(jobs[start : start + self.options.batch], masked)

    def _run_batch(self, jobs: list[Job], masked: bool) -> None:
        assert self.pipeline is not None
        t0 = time.perf_counter()
        results = self.pipeline.infer(jobs)
        out = self.model.last
        self.inference_s += time.perf_counter() - t0
        keep = [k for k, j in enumerate(jobs) if not j.degraded]
        if not keep:
            return
        self._append([results[k] for k in keep], {n: v[keep] for n, v in out.items()})
        if masked:
            self._append_masked([jobs[k] for k in keep])

    def _append(self, results: list[FrameResult], out: dict[str, F32]) -> None:
        n = len(results)
        nan4 = np.full((n, 4), np.nan, np.float32)
        probs = np.asarray(out['probs'], np.float32)
        self.rows['stamp'].append(np.array([r.header.ns for r in results], np.int64))
        self.rows['lidar_stamp'].append(
            np.array([-1 if r.lidar_stamp_ns is None else r.lidar_stamp_ns for r in results])
        )
        self.rows['probs'].append(probs)
        self.rows['gates'].append(out.get('gates', nan4))
        self.rows['p_joint'].append(out.get('probs_joint', probs))
        self.rows['self_lsmi'].append(out.get('pid_lsmi', nan4))
        self.rows['self_broja'].append(out.get('pid_broja', nan4))
        if self.alert_source is None:
            self.alert_source = next((r.pid_source for r in results if r.pid_source), None)
        self.rows['alert'].append(np.array([r.alert for r in results], bool))
        if self.heads:
            self.rows['p_camera'].append(out['probs_camera'])
            self.rows['p_lidar'].append(out['probs_lidar'])
        self._features(out)

    def _features(self, out: dict[str, F32]) -> None:
        if 'feat_camera' in out and 'feat_lidar' in out:
            self.rows['feat_camera'].append(np.asarray(out['feat_camera'], np.float32))
            self.rows['feat_lidar'].append(np.asarray(out['feat_lidar'], np.float32))
        elif self.heads:
            self.rows['feat_camera'].append(np.log(np.clip(out['probs_camera'], 1e-6, 1.0)))
            self.rows['feat_lidar'].append(np.log(np.clip(out['probs_lidar'], 1e-6, 1.0)))
        # masked models: features are appended with the masked predictions

    def _masked_probs(self, jobs: list[Job]) -> tuple[F32, F32]:
        assert self.stats is not None
        image = np.stack([j.image for j in jobs])
        lidar = np.stack([j.lidar for j in jobs])
        stamps = np.array([j.header.ns for j in jobs], np.int64)
        p_cam = np.zeros((len(jobs), len(ACTIONS)), np.float64)
        p_lid = np.zeros_like(p_cam)
        t0 = time.perf_counter()
        for draw in range(self.options.mask_samples):
            cam_only, lid_only = masked_inputs(
                self.stats, image, lidar, stamps, seed=self.options.seed, draw=draw
            )
            # the plain run: the recorded outputs stay the pipeline's batch
            p_cam += self.model.unrecorded_probs(*cam_only)
            p_lid += self.model.unrecorded_probs(*lid_only)
        self.inference_s += time.perf_counter() - t0
        k = float(self.options.mask_samples)
        return (p_cam / k).astype(np.float32), (p_lid / k).astype(np.float32)

    def _append_masked(self, jobs: list[Job]) -> None:
        p_cam, p_lid = self._masked_probs(jobs)
        self.rows['p_camera'].append(p_cam)
        self.rows['p_lidar'].append(p_lid)
        if 'feat_camera' not in self.model.outputs:
            self.rows['feat_camera'].append(np.log(np.clip(p_cam, 1e-6, 1.0)))
            self.rows['feat_lidar'].append(np.log(np.clip(p_lid, 1e-6, 1.0)))

    def _mask_backfill(self) -> None:
        done = sum(len(a) for a in self.rows['stamp'])
        if done == 0:
            return
        jobs = [j for j in self.profile_jobs if not j.degraded][:done]
        for start in range(0, len(jobs), self.options.batch):
            self._append_masked(jobs[start : start + self.options.batch])
        self.profile_jobs = []

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        out: dict[str, npt.NDArray[Any]] = {}
        for key, parts in self.rows.items():
            if parts:
                out[key] = np.concatenate(parts)
        if 'stamp' not in out:
            return {}
        n = len(out['stamp'])
        for key in ('p_camera', 'p_lidar', 'feat_camera', 'feat_lidar'):
            if len(out.get(key, ())) != n:  # too few frames to profile a mask
                out[key] = np.full((n, len(ACTIONS)), np.nan, np.float32)
        return out


__all__ = ['Collector']
