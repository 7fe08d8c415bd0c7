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

"""Simulator settings: one frozen, validated dataclass plus the ``--mix`` parser."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dmil_ros.actions import FAMILIES
from dmil_ros.sim.design_limits import check_design
from dmil_ros.sim.errors import SimConfigError

DEFAULT_MIX: dict[str, float] = dict.fromkeys(FAMILIES, 0.25)
MAX_SEGMENT_FRAMES = 2**31 - 1
"""Longest scene segment (camera frames) a config may ask for (the plan draws it as int64)."""
STAMP_LIMIT_NS = 2**31 * 1_000_000_000
"""First stamp (ns) whose seconds no longer fit ``builtin_interfaces/Time.sec`` (int32)."""
STAMP_SLACK_NS = 1_000
"""Rounding room for the float drive times at the end of a long recording."""


def parse_mix(text: str) -> dict[str, float]:
    """``'R=1,U_camera=1,U_lidar=1,S=1'`` -> normalised weights for every family.

    Families left out get weight 0; weights are normalised to sum to 1.
    """
    raw: dict[str, float] = {}
    for raw_item in text.split(','):
        item = raw_item.strip()
        if not item:
            continue
        name, sep, value = item.partition('=')
        name = name.strip()
        if not sep:
            msg = f'--mix: item {item!r} is not NAME=WEIGHT'
            raise SimConfigError(msg)
        if name not in FAMILIES:
            msg = f'--mix: unknown family {name!r} (expected one of {", ".join(FAMILIES)})'
            raise SimConfigError(msg)
        if name in raw:
            msg = f'--mix: family {name!r} given twice'
            raise SimConfigError(msg)
        try:
            raw[name] = float(value)
        except ValueError:
            msg = f'--mix: weight {value.strip()!r} of family {name!r} is not a number'
            raise SimConfigError(msg) from None
    return normalise_mix(raw)


def normalise_mix(weights: Mapping[str, float]) -> dict[str, float]:
    """Validate family weights and scale them to sum to 1 (missing families get 0)."""
    for name, weight in weights.items():
        if name not in FAMILIES:
            msg = f'mix: unknown family {name!r} (expected one of {", ".join(FAMILIES)})'
            raise SimConfigError(msg)
        if not math.isfinite(weight) or weight < 0:
            msg = f'mix: weight {weight!r} of family {name!r} must be finite and >= 0'
            raise SimConfigError(msg)
    total = sum(weights.values())
    if total <= 0:
        msg = f'mix: weights {dict(weights)!r} sum to 0; give at least one family a weight'
        raise SimConfigError(msg)
    if not math.isfinite(total):  # finite weights near the float maximum overflow their sum
        top = max(weights.values())
        scaled = {name: float(weights.get(name, 0.0)) / top for name in FAMILIES}
        total = sum(scaled.values())  # <= the number of families
        return {name: w / total for name, w in scaled.items()}
    return {name: float(weights.get(name, 0.0)) / total for name in FAMILIES}


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines one simulated drive; same config + seed -> same data.

    Sizes follow the bag contract: camera ``width x height`` rgb8 at ``camera_rate_hz``; a
    VLP-16-like LiDAR with ``beams`` rings spread over ``vertical_fov_deg`` and
    ``azimuth_steps`` columns per sweep at ``lidar_rate_hz``. Sensor settings under which a
    family's design, and so the ground truth recorded for it, would not hold are refused
    (:mod:`dmil_ros.sim.design_limits`).
    """

    frames: int = 600
    seed: int = 0
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    # camera
    width: int = 128
    height: int = 96
    hfov_deg: float = 70.0
    horizon_row_frac: float = 0.4  # principal point row / height (< 0.5: sensor shifted down)
    camera_height_m: float = 0.5
    camera_rate_hz: float = 20.0
    image_noise: float = 3.0  # std of the additive pixel noise (grey levels)
    # lidar
    beams: int = 16
    azimuth_steps: int = 360
    vertical_fov_deg: tuple[float, float] = (-15.0, 15.0)
    lidar_height_m: float = 0.4
    lidar_rate_hz: float = 10.0
    range_noise_m: float = 0.01
    lidar_resolution_m: float = 0.002  # coordinates quantised like a VLP-16's 2 mm distance unit
    dropout: float = 0.01
    max_range_m: float = 30.0
    # timing
    jitter_s: float = 0.002  # std of the stamp jitter on both sensors (clipped at 3 std)
    start_time_ns: int = 1_700_000_000_000_000_000
    # scenes
    segment_frames: tuple[int, int] = (20, 60)  # min, max camera frames per scene segment

    def __post_init__(self) -> None:
        object.__setattr__(self, 'mix', normalise_mix(dict(self.mix)))
        object.__setattr__(self, 'vertical_fov_deg', tuple(self.vertical_fov_deg))
        object.__setattr__(self, 'segment_frames', tuple(self.segment_frames))
        ranges: tuple[tuple[str, bool, str], ...] = (
            ('frames', self.frames > 0, '> 0'),
            ('seed', 0 <= self.seed < 2**63, '0 <= seed < 2**63'),
            ('width', 8 <= self.width <= 4096, '8 <= width <= 4096'),
            ('height', 8 <= self.height <= 4096, '8 <= height <= 4096'),
            ('hfov_deg', 10.0 <= self.hfov_deg <= 150.0, '10 <= hfov_deg <= 150'),
            (
                'horizon_row_frac',
                0.05 <= self.horizon_row_frac <= 0.95,
                '0.05 <= horizon_row_frac <= 0.95',
            ),
            ('camera_height_m', 0.05 <= self.camera_height_m <= 2.0, '0.05 <= m <= 2'),
            ('camera_rate_hz', 0.1 <= self.camera_rate_hz <= 1000.0, '0.1 <= Hz <= 1000'),
            ('image_noise', 0.0 <= self.image_noise <= 64.0, '0 <= image_noise <= 64'),
            ('beams', 1 <= self.beams <= 256, '1 <= beams <= 256'),
            ('azimuth_steps', 8 <= self.azimuth_steps <= 8192, '8 <= azimuth_steps <= 8192'),
            (
                'vertical_fov_deg',
                len(self.vertical_fov_deg) == 2
                and -89.0 < self.vertical_fov_deg[0] <= self.vertical_fov_deg[1] < 89.0,
                '(LOW, HIGH) degrees with -89 < LOW <= HIGH < 89',
            ),
            ('lidar_height_m', 0.05 <= self.lidar_height_m <= 2.0, '0.05 <= m <= 2'),
            ('lidar_rate_hz', 0.1 <= self.lidar_rate_hz <= 1000.0, '0.1 <= Hz <= 1000'),
            ('range_noise_m', 0.0 <= self.range_noise_m <= 1.0, '0 <= m <= 1'),
            ('lidar_resolution_m', 0.0 <= self.lidar_resolution_m <= 0.1, '0 <= m <= 0.1'),
            ('dropout', 0.0 <= self.dropout < 1.0, '0 <= dropout < 1'),
            ('max_range_m', 1.0 <= self.max_range_m <= 1000.0, '1 <= m <= 1000'),
            (
                'segment_frames',
                len(self.segment_frames) == 2
                and 1 <= self.segment_frames[0] <= self.segment_frames[1] <= MAX_SEGMENT_FRAMES,
                f'(MIN, MAX) with 1 <= MIN <= MAX <= {MAX_SEGMENT_FRAMES}',
            ),
        )
        for name, ok, allowed in ranges:
            if not ok:
                msg = (
                    f'simulator config: {name}={getattr(self, name)!r} is out of range ({allowed})'
                )
                raise SimConfigError(msg)
        self._check_timing()
        check_design(self)

    def _check_timing(self) -> None:
        """Stamp jitter and start time: each sensor's stamps increase, and every stamp is a
        positive ``builtin_interfaces/Time`` (int32 seconds)."""
        # clipped at 3 std: two neighbouring stamps of a sensor move by at most 6 std, and
        # 6 * 0.1 = 0.6 of the shorter period keeps them in order (and apart) for both
        period = 1.0 / max(self.camera_rate_hz, self.lidar_rate_hz)
        if not 0.0 <= self.jitter_s <= 0.1 * period:
            msg = (
                f'simulator config: jitter_s={self.jitter_s!r} is out of range (0 <= jitter_s '
                f'<= {0.1 * period:g} s, a tenth of the shorter sensor period {period:g} s: '
                'beyond it consecutive stamps of a sensor could come out of order)'
            )
            raise SimConfigError(msg)
        # the first stamps lie up to 3 jitter std before the start (the simulator computes
        # round(-3 std * 1e9) from the same float), the last up to that after the drive's end
        early_ns = math.ceil(3 * self.jitter_s * 1e9)
        span_ns = math.ceil(((self.frames - 0.5) / self.camera_rate_hz + 3 * self.jitter_s) * 1e9)
        low = early_ns + 1  # a stamp of 0 s 0 ns reads as "no stamp"
        high = STAMP_LIMIT_NS - 1 - span_ns - STAMP_SLACK_NS
        if high < low:
            msg = (
                f'simulator config: frames={self.frames!r} at camera_rate_hz='
                f'{self.camera_rate_hz!r} is a {span_ns / 1e9:.0f} s drive, longer than '
                'builtin_interfaces/Time (int32 seconds) can stamp'
            )
            raise SimConfigError(msg)
        if not low <= self.start_time_ns <= high:
            msg = (
                f'simulator config: start_time_ns={self.start_time_ns!r} is out of range '
                f'({low} <= start_time_ns <= {high}: the first stamps can come '
                f'{early_ns} ns before the start, the last {span_ns} ns after it, and every '
                "stamp must be > 0 and fit builtin_interfaces/Time's int32 seconds)"
            )
            raise SimConfigError(msg)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (written into the bag's sidecar)."""
        out = asdict(self)
        out['mix'] = dict(self.mix)
        out['vertical_fov_deg'] = list(self.vertical_fov_deg)
        out['segment_frames'] = list(self.segment_frames)
        return out
