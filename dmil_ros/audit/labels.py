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

"""Labels and ground truth of audited frames: the recorded action, the simulator's truth.

Frames are joined to ``/sim/ground_truth`` on the camera header stamp, else to the
``/expert/action`` message nearest in log time (within :data:`LABEL_SLOP_NS`); the simulator's
``ground_truth.json`` sidecar lies next to the bag.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dmil_ros.scenes import ONE_SCENE, UNCONFIRMED, FrameLabels, SweepScenes

logger = logging.getLogger(__name__)

GROUND_TRUTH_TOPIC = '/sim/ground_truth'
LIDAR_TRUTH_TOPIC = '/sim/lidar_truth'
ACTION_TOPIC = '/expert/action'
SIDE_CAR = 'ground_truth.json'
LABEL_SLOP_NS = 25_000_000


def frame_labels(
    stamps: npt.NDArray[np.int64],
    truth: dict[int, FrameLabels],
    actions: dict[int, int],
    camera_log: dict[int, int],
    *,
    lidar_stamps: npt.NDArray[np.int64] | None = None,
    sweeps: SweepScenes | None = None,
) -> tuple[dict[str, npt.NDArray[np.int64]], int]:
    """Per frame: label, family, segment and latents; and how many frames' sweeps had no
    usable scene truth (family -1, :data:`dmil_ros.scenes.UNCONFIRMED`)."""
    n = len(stamps)
    out = {
        k: np.full(n, -1, np.int64)
        for k in ('label', 'family', 'segment', 'camera_latent', 'lidar_latent')
    }
    unconfirmed = 0
    log_times = np.array(sorted(actions), np.int64)
    for i, stamp in enumerate(stamps.tolist()):
        gt = truth.get(stamp)
        if gt is not None:
            out['label'][i] = gt.action
            out['family'][i] = gt.family
            out['segment'][i] = gt.segment
            out['camera_latent'][i] = gt.camera_latent
            out['lidar_latent'][i] = gt.lidar_latent
            if lidar_stamps is not None and sweeps is not None and lidar_stamps[i] >= 0:
                verdict = sweeps.verdict(gt.segment, int(lidar_stamps[i]))
                if verdict != ONE_SCENE:  # two scenes, or not known: no family
                    out['family'][i] = -1
                    unconfirmed += verdict == UNCONFIRMED
            continue
        if log_times.size:
            t = camera_log.get(stamp, stamp)
            j = int(np.searchsorted(log_times, t))
            near = [k for k in (j - 1, j) if 0 <= k < log_times.size]
            best = min(near, key=lambda k: abs(int(log_times[k]) - t))
            if abs(int(log_times[best]) - t) <= LABEL_SLOP_NS:
                out['label'][i] = actions[int(log_times[best])]
    return out, unconfirmed


def sidecar_path(bag: Path) -> Path:
    """Where the simulator's ``ground_truth.json`` of ``bag`` (a folder or one file) lies."""
    return (bag if bag.is_dir() else bag.parent) / SIDE_CAR


def read_sidecar(bag: Path) -> dict[str, Any] | None:
    """The simulator's ``ground_truth.json`` next to the bag, if any (not an error when absent)."""
    path = sidecar_path(bag)
    try:
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
        logger.warning('%s: unreadable ground truth sidecar (%s)', path, exc)
        return None
    return data if isinstance(data, dict) else None


__all__ = [
    'ACTION_TOPIC',
    'GROUND_TRUTH_TOPIC',
    'LABEL_SLOP_NS',
    'LIDAR_TRUTH_TOPIC',
    'SIDE_CAR',
    'frame_labels',
    'read_sidecar',
    'sidecar_path',
]
