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

"""Synergy spikes: contiguous stretches of frames whose per-frame synergy stays high.

Offline, so the smoothing may look ahead (the node's causal monitor cannot):

1. smooth the synergy series ``s_t`` (bits) with a centred running median of ``window`` frames
   (a median keeps the edges of a segment sharp and ignores single-frame outliers);
2. hysteresis thresholding (Canny 1986): a spike starts where the smoothed value reaches
   ``high`` and extends both ways while it stays at or above ``low``;
3. spikes separated by at most ``max_gap`` frames are merged; spikes shorter than ``min_frames``
   are dropped.

Thresholds are absolute, in bits, because pointwise synergy has an absolute meaning (1 bit: one
binary decision that neither sensor settles alone).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dmil_ros.audit.errors import AuditInputError


@dataclass(frozen=True)
class SpikeConfig:
    """Segmentation parameters (validated)."""

    window: int = 5
    high: float = 0.3
    low: float = 0.15
    min_frames: int = 3
    max_gap: int = 2

    def __post_init__(self) -> None:
        if self.window < 1 or self.window % 2 == 0:
            msg = f'spikes: window={self.window!r} must be a positive odd frame count'
            raise AuditInputError(msg)
        if not self.high > 0:
            # at 0 bits every frame would start a spike, those without finite terms too
            msg = f'spikes: high={self.high!r} must be above 0 bits'
            raise AuditInputError(msg)
        if not self.low <= self.high:
            msg = f'spikes: low={self.low!r} must not exceed high={self.high!r}'
            raise AuditInputError(msg)
        if self.min_frames < 1 or self.max_gap < 0:
            msg = f'spikes: min_frames={self.min_frames!r} / max_gap={self.max_gap!r} invalid'
            raise AuditInputError(msg)


@dataclass(frozen=True)
class Spike:
    """One spike: frames ``first..last`` (inclusive indices into the series)."""

    first: int
    last: int
    start: int  # stamp of the first frame, ns
    end: int  # stamp of the last frame, ns
    peak: float  # the largest raw synergy inside, bits
    peak_index: int
    peak_stamp: int
    mean: float

    @property
    def frames(self) -> int:
        return self.last - self.first + 1

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out['frames'] = self.frames
        return out


def running_median(values: npt.NDArray[np.float64], window: int) -> npt.NDArray[np.float64]:
    """Centred running median; the ends use the frames that exist (shrinking window)."""
    n = values.size
    if n == 0 or window == 1:
        return values.astype(np.float64, copy=True)
    half = window // 2
    padded = np.pad(values.astype(np.float64), half, mode='constant', constant_values=np.nan)
    view = np.lib.stride_tricks.sliding_window_view(padded, window)  # (n, window)
    return np.asarray(np.nanmedian(view, axis=1), np.float64)


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` index pairs of the True runs of ``mask``."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def find_spikes(
    synergy: npt.ArrayLike, stamps: npt.ArrayLike, config: SpikeConfig | None = None
) -> list[Spike]:
    """Spikes of a time-ordered per-frame synergy series (NaN frames count as not high)."""
    cfg = config or SpikeConfig()
    s = np.asarray(synergy, np.float64)
    t = np.asarray(stamps, np.int64)
    if s.ndim != 1 or s.shape != t.shape:
        msg = f'spikes: synergy {s.shape} and stamps {t.shape} must be equal 1-D arrays'
        raise AuditInputError(msg)
    if s.size == 0:
        return []
    # 1. smoothing
    smooth = running_median(np.where(np.isfinite(s), s, 0.0), cfg.window)
    # 2. hysteresis: keep the low-threshold runs that contain a high-threshold frame
    high = smooth >= cfg.high
    runs = [(a, b) for a, b in _runs(smooth >= cfg.low) if high[a : b + 1].any()]
    # 3. merge across short gaps, drop short spikes
    merged: list[tuple[int, int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] - 1 <= cfg.max_gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    spikes = []
    raw = np.where(np.isfinite(s), s, -np.inf)
    for a, b in merged:
        if b - a + 1 < cfg.min_frames:
            continue
        k = a + int(np.argmax(raw[a : b + 1]))
        inside = s[a : b + 1]
        spikes.append(
            Spike(
                first=a,
                last=b,
                start=int(t[a]),
                end=int(t[b]),
                peak=float(s[k]),
                peak_index=k,
                peak_stamp=int(t[k]),
                mean=float(np.nanmean(inside)) if np.isfinite(inside).any() else float('nan'),
            )
        )
    return spikes


def spike_mask(n: int, spikes: list[Spike]) -> npt.NDArray[np.bool_]:
    """Per-frame flag: True inside any spike."""
    mask = np.zeros(n, bool)
    for sp in spikes:
        mask[sp.first : sp.last + 1] = True
    return mask


def segment_coverage(
    mask: npt.NDArray[np.bool_], segments: npt.ArrayLike, min_overlap: float = 0.5
) -> tuple[int, int]:
    """``(covered, total)`` segments: a segment is covered when ``min_overlap`` of its frames are
    flagged. ``segments`` holds a segment id per frame (-1: not in a segment of interest)."""
    ids = np.asarray(segments)
    covered = total = 0
    for seg in np.unique(ids[ids >= 0]):
        inside = ids == seg
        total += 1
        covered += int(mask[inside].mean() >= min_overlap)
    return covered, total


__all__ = [
    'Spike',
    'SpikeConfig',
    'find_spikes',
    'running_median',
    'segment_coverage',
    'spike_mask',
]
