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

"""Sensor preprocessing shared by the trainer and the runtime: one code path for both.

The model sees

* ``image``: ``(3, H, W)`` float32, RGB resized with ``cv2.INTER_AREA`` to the spec's size, scaled
  to [0, 1] then standardised per channel;
* ``lidar``: ``(2, beams, azimuth_bins)`` float32 range image (spherical projection, the usual
  input of range-image LiDAR networks such as RangeNet++ / SqueezeSeg): channel 0 is
  ``range / max_range`` of the nearest return in the cell (0 where none), channel 1 the intensity
  of that return scaled by ``intensity_scale`` and saturated to [0, 1]. The row is the ``ring``
  field when the sensor's beams are the model's rows (no more rings than rows, ring 0 the lowest
  beam as Velodyne drivers number them, the rings as far apart as the rows, every sampled
  return at its ring's elevation: :func:`_ring_mismatch`), otherwise the elevation angle binned
  over the spec's vertical field of view: a sensor with more rings than the model has rows (an
  OS1-64 for a 16-row model), fewer rings over the same field (an 8-beam sensor), one numbering
  from the top beam down (Ouster), one ring value for every return, or a ring that is no
  elevation row at all (the ``line`` of a Livox rosette scan) gets the rows its elevations
  give, with one warning, instead of dropped, upside-down, squashed or scrambled rows.

The spec travels inside every exported ONNX model (``metadata_props['preprocess']``) so the node
preprocesses exactly as the model was trained.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from dmil_ros.errors import ConfigError

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

MAX_IMAGE_SIDE = 4096
"""Largest model image side accepted: a spec read from a model file sizes per-frame buffers."""
MAX_BEAMS = 512
MAX_AZIMUTH_BINS = 8192


@dataclass(frozen=True)
class Points:
    """A decoded point cloud: finite points only, in the sensor frame."""

    xyz: F32  # (N, 3)
    intensity: F32 | None = None  # (N,)
    ring: npt.NDArray[np.int32] | None = None  # (N,)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


@dataclass(frozen=True)
class PreprocessSpec:
    """How raw sensor data becomes model input (validated on construction)."""

    image_width: int = 64
    image_height: int = 48
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    beams: int = 16
    azimuth_bins: int = 180
    max_range: float = 20.0
    vertical_fov_deg: tuple[float, float] = (-15.0, 15.0)
    intensity_scale: float = 1.0 / 255.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # 1. sequences (lists from YAML/JSON, arrays) become tuples of floats: hashable, frozen
        for name in ('image_mean', 'image_std', 'vertical_fov_deg'):
            try:
                value = tuple(float(v) for v in getattr(self, name))
            except (TypeError, ValueError) as exc:
                msg = f'preprocess spec: {name}={getattr(self, name)!r} is not a list of numbers'
                raise ConfigError(msg) from exc
            object.__setattr__(self, name, value)
        # 2. sizes are integers (an integral float from a YAML / JSON writer is taken), the
        #    scalars real numbers: a string or a bool is refused here, not deep in numpy later
        for name in ('image_width', 'image_height', 'beams', 'azimuth_bins'):
            object.__setattr__(self, name, _integer(name, getattr(self, name)))
        for name in ('max_range', 'intensity_scale'):
            object.__setattr__(self, name, _real(name, getattr(self, name)))
        extra: object = self.extra  # from JSON: any value
        if not isinstance(extra, dict):
            msg = f'preprocess spec: extra={extra!r} is not an object'
            raise ConfigError(msg)
        # 3. ranges
        checks = {
            'image_width': 0 < self.image_width <= MAX_IMAGE_SIDE,
            'image_height': 0 < self.image_height <= MAX_IMAGE_SIDE,
            'beams': 0 < self.beams <= MAX_BEAMS,
            'azimuth_bins': 0 < self.azimuth_bins <= MAX_AZIMUTH_BINS,
            'max_range': math.isfinite(self.max_range) and self.max_range > 0,
            'intensity_scale': math.isfinite(self.intensity_scale) and self.intensity_scale >= 0,
            'vertical_fov_deg': len(self.vertical_fov_deg) == 2
            and all(map(math.isfinite, self.vertical_fov_deg))
            and self.vertical_fov_deg[0] < self.vertical_fov_deg[1],
            'image_std': len(self.image_std) == 3
            and all(math.isfinite(s) and s > 0 for s in self.image_std),
            'image_mean': len(self.image_mean) == 3 and all(map(math.isfinite, self.image_mean)),
        }
        for name, ok in checks.items():
            if not ok:
                msg = f'preprocess spec: {name}={getattr(self, name)!r} is not valid'
                raise ConfigError(msg)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.image_height, self.image_width)

    @property
    def lidar_shape(self) -> tuple[int, int, int]:
        return (2, self.beams, self.azimuth_bins)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PreprocessSpec:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f'preprocess spec: not JSON ({exc})'
            raise ConfigError(msg) from exc
        if not isinstance(raw, dict):
            msg = f'preprocess spec: expected an object, got {type(raw).__name__}'
            raise ConfigError(msg)
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            msg = f'preprocess spec: unknown keys {sorted(unknown)}'
            raise ConfigError(msg)
        return cls(**raw)  # lists become tuples in __post_init__


def _integer(name: str, value: object) -> int:
    """``value`` as an int; an integral float (64.0) is taken, anything else refused."""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        number = float(value)
        if number.is_integer():
            return int(number)
    msg = f'preprocess spec: {name}={value!r} is not an integer'
    raise ConfigError(msg)


def _real(name: str, value: object) -> float:
    """``value`` as a float; strings and bools are refused."""
    if not isinstance(value, int | float | np.integer | np.floating) or isinstance(value, bool):
        msg = f'preprocess spec: {name}={value!r} is not a number'
        raise ConfigError(msg)
    return float(value)


def prepare_image(rgb: npt.NDArray[np.uint8], spec: PreprocessSpec) -> F32:
    """``(H, W, 3)`` uint8 RGB -> ``(3, h, w)`` float32 standardised model input."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        msg = f'prepare_image: expected an (H, W, 3) RGB image, got shape {rgb.shape}'
        raise ValueError(msg)
    rgb = resize_image(rgb, spec)  # 1. to the model's size
    # 2. channels first, scaled to [0, 1] and standardised per channel:
    #    (x / 255 - mean) / std = (x - 255 mean) * (1 / (255 std)), in one OpenCV call (the
    #    whole of prepare_image 1.2x faster than with numpy's per-plane x * a + b, on the caches
    #    a model call leaves; benchmarks/bench_runtime.py)
    params = _blob_params(spec.image_mean, spec.image_std, spec.image_width, spec.image_height)
    if params is None:  # OpenCV < 4.8 (Debian's python3-opencv on Humble and Jazzy)
        return affine_image(rgb, spec)
    blob = cv2.dnn.blobFromImageWithParams(np.ascontiguousarray(rgb), params)  # (1, 3, h, w)
    return np.asarray(blob, np.float32).reshape(spec.image_shape)


def resize_image(rgb: npt.NDArray[np.uint8], spec: PreprocessSpec) -> npt.NDArray[np.uint8]:
    """``rgb`` at the model's size, by area averaging (the right filter for downscaling)."""
    if rgb.shape[:2] == (spec.image_height, spec.image_width):
        return rgb
    size = (spec.image_width, spec.image_height)
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)


def affine_image(rgb: npt.NDArray[np.uint8], spec: PreprocessSpec) -> F32:
    """Step 2 of :func:`prepare_image` in numpy: ``(h, w, 3)`` uint8 -> ``(3, h, w)`` float32.

    One pass over each channel plane, ``x * a + b`` (3x faster than broadcasting over the
    interleaved ``(h, w, 3)`` layout). Equal to the OpenCV path to float32 rounding (1e-6).
    """
    a, b = _image_affine(spec.image_mean, spec.image_std)  # (3, 1, 1) each
    out = np.empty(spec.image_shape, np.float32)  # (3, h, w)
    np.multiply(rgb.transpose(2, 0, 1), a, out=out)
    out += b
    return out


@functools.lru_cache(maxsize=8)
def _blob_params(
    image_mean: tuple[float, float, float],
    image_std: tuple[float, float, float],
    width: int,
    height: int,
) -> Any:
    """``cv2.dnn.Image2BlobParams`` for the standardisation, or None without it (< 4.8).

    One object, shared by every thread: OpenCV copies it into each call, and nothing here
    changes it after it is built.
    """
    dnn = getattr(cv2, 'dnn', None)
    if dnn is None or not hasattr(dnn, 'blobFromImageWithParams'):
        return None
    params = dnn.Image2BlobParams()
    params.scalefactor = (*(1.0 / (255.0 * s) for s in image_std), 0.0)
    params.mean = (*(255.0 * m for m in image_mean), 0.0)
    params.size = (width, height)
    params.ddepth = cv2.CV_32F
    params.swapRB = False
    return params


@functools.lru_cache(maxsize=8)
def _image_affine(
    image_mean: tuple[float, float, float], image_std: tuple[float, float, float]
) -> tuple[F32, F32]:
    mean = np.asarray(image_mean, np.float32)
    inv_std = np.float32(1.0) / np.asarray(image_std, np.float32)
    a = (inv_std / np.float32(255.0)).reshape(3, 1, 1)
    b = (-mean * inv_std).reshape(3, 1, 1)
    a.flags.writeable = b.flags.writeable = False
    return a, b


def prepare_points(points: Points, spec: PreprocessSpec) -> F32:
    """A point cloud -> ``(2, beams, azimuth_bins)`` float32 range image (nearest return)."""
    out = np.zeros(spec.lidar_shape, np.float32)  # (2, beams, bins)
    n = len(points)
    if n == 0:
        return out
    beams, bins = spec.beams, spec.azimuth_bins
    cells = beams * bins
    # the range bits below assume float32; decoders hand over a (3, N) buffer seen as (N, 3),
    # so this transpose is free for them (a copy for C-ordered clouds from other code)
    xt = np.ascontiguousarray(np.asarray(points.xyz, np.float32).T)  # (3, N)
    x, y, z = xt
    # 1. spherical coordinates, float32 and in place (a coordinate beyond 1.8e19 m, corrupt
    #    data, squares to inf: its range is then outside the image, quietly)
    with np.errstate(over='ignore'):
        squares = np.square(xt)  # (3, N)
        rng = squares[0]  # (N,) x^2 + y^2 + z^2, summed in that order
        rng += squares[1]
        rng += squares[2]
    np.sqrt(rng, out=rng)
    col_f = np.arctan2(y, x)  # (N,) in [-pi, pi], 0 = straight ahead
    col_f += np.float32(np.pi)
    col_f *= np.float32(bins / (2 * np.pi))
    col = col_f.astype(np.int32)
    np.minimum(col, bins - 1, out=col)  # azimuth = +pi lands one past the end
    # 2. rows: the ring when the driver gives one numbered as the rows are, else the binned
    #    elevation (int32 either way)
    row = None if points.ring is None else _ring_rows(points.ring, beams)
    if row is not None and (why := _ring_mismatch(row, xt, rng, spec)):
        _warn_once(f'LiDAR range image rows from the elevation, not the ring field: {why}')
        row = None
    if row is None:
        lo, hi = np.deg2rad(spec.vertical_fov_deg)
        elevation = np.arcsin(np.clip(z / np.maximum(rng, 1e-9), -1.0, 1.0))
        row = np.rint((elevation - lo) / (hi - lo) * (beams - 1)).astype(np.int32)
    flat = row * np.int32(bins)  # (N,) cell of each return
    flat += col
    # 3. returns outside the image go to one spare cell: a row outside [0, beams) and a range
    #    outside (0, max_range] (positive float32 ranges order like their bit patterns; zero,
    #    -0, NaN and inf all fail the unsigned test) each in one comparison
    bits = rng.view(np.int32)  # (N,)
    outside = row.view(np.uint32) >= np.uint32(beams)
    outside |= (bits - np.int32(1)).view(np.uint32) >= _range_bits(spec.max_range)
    flat[outside] = cells
    # 4. nearest return per cell in one unbuffered minimum: key = (range bits << 32) | point
    #    index sorts by range, then by index, and the cell's minimum key names its winner (2x
    #    faster than a per-cell float minimum plus a unique() for the intensity;
    #    benchmarks/bench_runtime.py)
    key = bits.astype(np.int64)  # (N,)
    key <<= 32
    key |= _point_index(n)
    best = np.full(cells + 1, _NO_RETURN, np.int64)  # (cells + 1,)
    np.minimum.at(best, flat, key)
    best = best[:cells]
    hit = best != _NO_RETURN  # (cells,)
    nearest = (best >> 32).astype(np.int32).view(np.float32)  # (cells,) NaN where no return
    np.divide(nearest, np.float32(spec.max_range), out=out[0].reshape(-1), where=hit)
    # 5. intensity of that nearest return (the first point on exact ties); a cell without a
    #    return indexes past the end, clipped and then masked out
    if points.intensity is not None:
        winner = points.intensity.take(best & 0xFFFFFFFF, mode='clip')  # (cells,)
        scale = np.float32(spec.intensity_scale)
        channel = out[1]  # (beams, bins)
        np.multiply(winner, scale, out=channel.reshape(-1), where=hit)
        # 6. saturated to [0, 1], the range trained on (0..1 / intensity_scale): a sensor
        #    reporting more (16-bit reflectivity) or one corrupt return (1e5) would otherwise
        #    outweigh the whole image and decide the action
        top, bottom = float(channel.max()), float(channel.min())
        if top > 1.0 or bottom < 0.0:
            _warn_once(
                f'LiDAR intensities from {bottom / scale:g} to {top / scale:g} exceed the '
                f"model's range 0..{1 / scale:g} (1 / intensity_scale): saturated"
            )
            np.clip(channel, 0.0, 1.0, out=channel)
    return out


def _ring_rows(ring: npt.NDArray[np.generic], beams: int) -> npt.NDArray[np.int32]:
    """The ring field as int32 rows; values far outside ``[0, beams)`` stay outside."""
    if ring.dtype == np.int32:
        return ring.astype(np.int32, copy=False)  # no copy
    if not np.issubdtype(ring.dtype, np.integer):  # floats truncate like a C cast
        ring = np.nan_to_num(ring, nan=-1.0)  # NaN rows end up outside the image
    clipped: npt.NDArray[np.generic] = np.clip(ring, -1, beams)  # huge values stay outside
    return clipped.astype(np.int32)


def _ring_mismatch(
    row: npt.NDArray[np.int32], xt: F32, rng: F32, spec: PreprocessSpec
) -> str | None:
    """Why the ring cannot be the row (None: it can).

    The ring is the row when the sensor's beams are the model's rows (step = the spec's
    vertical field over ``beams - 1`` rows), checked on two returns, the first of the lowest
    and of the highest ring among the points with a range (a beam into the sky often has none):

    1. fewer rings than rows (``ring < beams``);
    2. the lowest ring below the highest (Ouster drivers number from the top beam);
    3. their elevations apart by the rows between them, within one row (an 8-beam sensor over
       the same field would fill the bottom half, its top beam read as -1 degree);
    4. a sensor that fills only some rows also at those rows' elevations, within one row (a
       4-layer scanner around 0 degrees would be read as looking 10 degrees down);
    5. the ring ordering a fixed sample of the returns by elevation, up to a tilt
       (:func:`_ring_scatter`): two returns of a ring that is no elevation row (a Livox
       rosette's ``line``, 6 lines over 77 degrees) passed 1-4 in 1 sweep of 250, and the rows
       flipped between ring and elevation from sweep to sweep.

    A mounting tilt moves both returns alike (they share their azimuth), so it passes 2 and 3
    and a full set of rings keeps the rows of a tilted VLP-16; elevation binning would smear
    its beams. Checks 1-4 cost 11 us on the sample bag's 5.7k-point sweeps when the first point
    of both rings has a return (the usual case, and then the same two returns), 32 us when one
    has none and the returns are searched; check 5 13-19 us more, 60-80 us when its fast path
    fails (a tilted sensor, uneven rings: the fit).
    """
    if row.max() >= spec.beams:  # clipped by _ring_rows: at least this many rings
        return f'ring values reach {spec.beams} or more, the model has {spec.beams} rows'
    # 1. the first point of the lowest and of the highest ring, when both have a range
    i_lo, i_hi = int(row.argmin()), int(row.argmax())
    if not (rng[i_lo] > 0 and rng[i_hi] > 0):  # NaN and 0 fail
        # 2. else the same among the returns only
        returns = np.flatnonzero(rng > 0)  # (M,)
        if returns.size == 0:
            return None
        rows = row[returns]  # (M,)
        i_lo, i_hi = int(returns[rows.argmin()]), int(returns[rows.argmax()])
    if row[i_lo] >= row[i_hi]:  # no rows in it: a planar sensor's, or a driver's unset field
        return f'every return has ring {int(row[i_lo])}'
    lo, hi = spec.vertical_fov_deg
    step = math.radians(hi - lo) / max(spec.beams - 1, 1)  # one row
    low = math.asin(min(1.0, max(-1.0, float(xt[2, i_lo] / rng[i_lo]))))
    high = math.asin(min(1.0, max(-1.0, float(xt[2, i_hi] / rng[i_hi]))))
    r_lo, r_hi = int(row[i_lo]), int(row[i_hi])
    if low - high > step:  # 2.
        return f'ring {r_lo} is above ring {r_hi} (numbered from the top)'
    if abs((high - low) / step - (r_hi - r_lo)) > 1.0:  # 3.
        return (
            f'rings {r_lo} and {r_hi} lie {math.degrees(high - low):.1f} degrees apart, '
            f"the model's rows {r_lo} and {r_hi} {math.degrees(step) * (r_hi - r_lo):.1f}"
        )
    if r_lo > 0 or r_hi < spec.beams - 1:  # 4. some rows only
        at = (low - math.radians(lo)) / step  # ring r_lo's row by its elevation
        if abs(at - r_lo) > 1.0:
            return (
                f'ring {r_lo} lies at {math.degrees(low):.1f} degrees, row {r_lo} of the '
                f'model at {lo + math.degrees(step) * r_lo:.1f}'
            )
    return _ring_scatter(row, xt, rng, spec.beams, step)  # 5.


_RING_SAMPLES = 32  # returns checked by _ring_scatter
# Knuth's multiplicative hash: k * 2654435761 mod n spreads the samples over a cloud of any
# size without aliasing the scan pattern (odd, so consecutive samples take consecutive rings of
# an azimuth-major Velodyne cloud; a plain stride could take one ring only)
_RING_HASH: Final = np.arange(_RING_SAMPLES, dtype=np.uint64) * np.uint64(2654435761)


@functools.lru_cache(maxsize=16)
def _ring_sample(n: int) -> npt.NDArray[np.intp]:
    """The :func:`_ring_scatter` sample of a cloud of ``n`` returns (cached: clouds of one
    sensor keep their size, or nearly)."""
    return (_RING_HASH % np.uint64(n)).astype(np.intp)


_RING_ORDER_R2 = 0.8  # the share of their elevation spread the ring (and a tilt) must explain


def _ring_scatter(
    row: npt.NDArray[np.int32], xt: F32, rng: F32, beams: int, step: float
) -> str | None:
    """Why the ring does not order the returns by elevation on a fixed sample (None: it does).

    1. :data:`_RING_SAMPLES` returns spread over the cloud (:data:`_RING_HASH`), those with a
       range and a ring inside the image; fewer than 8, or fewer than 3 rings, decide nothing;
    2. fast path: their elevations less their rings' rows (``ring * step``) within one row of a
       common value, as for an untilted sensor whose rings are the rows;
    3. else, a least-squares fit of the elevation to a cubic in the ring (any monotone spacing)
       plus ``a cos(azimuth) + b sin(azimuth)`` (a mounting pitch and roll): a ring is an
       elevation row when the fitted elevation rises from the lowest sampled ring to the highest
       and the fit explains at least :data:`_RING_ORDER_R2` of the elevations' variance.

    A real ring passes 3 whatever its spacing (a VLP-16 pitched 30 degrees, a VLP-32C or a
    Pandar40P, dense around the horizon), so the same layout gets the same decision sweep after
    sweep; that the spacing matches the model's rows is checks 1-4's business. A ring that is
    no elevation row (a Livox rosette's ``line``: the laser index, each line over the whole
    field) explains little beyond chance: R^2 then follows about a Beta(2.5, 13) distribution
    for 32 returns, above 0.8 about once in 40 million sweeps.
    """
    sample = _ring_sample(len(row))  # (32,) 1.
    rows, ranges, z = row[sample], rng[sample], xt[2, sample]
    with np.errstate(invalid='ignore', divide='ignore'):  # NaN: no range, or z / range a
        elevation = np.arcsin(z / ranges, dtype=np.float64)  # (32,) rounding beyond +-1
    offsets = elevation - rows * step  # (32,) 2.
    keep = (rows.view(np.uint32) < beams) & (ranges < np.inf) & ~np.isnan(offsets)
    offsets = offsets[keep]  # (M,)
    if len(offsets) < 8 or np.ptp(offsets) <= 2 * step:
        return None
    sample, elevation = sample[keep], elevation[keep]
    ring = rows[keep].astype(np.float64)  # (M,)
    if len(np.unique(ring)) < 3:
        return None
    # 3. a small ridge keeps the normal equations solvable when the sample holds few azimuths
    azimuth = np.arctan2(xt[1, sample], xt[0, sample]).astype(np.float64)
    r = ring / beams  # (M,) in [0, 1): a well-conditioned cubic
    basis = np.stack([np.ones_like(r), r, r**2, r**3, np.cos(azimuth), np.sin(azimuth)])
    fit = np.linalg.solve(basis @ basis.T + 1e-9 * np.eye(6), basis @ elevation)  # (6,)
    residual = float(np.square(fit @ basis - elevation).sum())
    spread = float(np.square(elevation - elevation.mean()).sum())
    explained = 1.0 - residual / spread if spread > 0.0 else 1.0
    ends = np.array([r.min(), r.max()])  # (2,)
    rise = np.diff(fit[0] + fit[1] * ends + fit[2] * ends**2 + fit[3] * ends**3)[0]
    if rise > 0.0 and explained >= _RING_ORDER_R2:
        return None
    return (
        f"the ring explains {100 * max(explained, 0.0):.0f}% of the sampled returns' "
        "elevations (the ring is no elevation row: a rosette scanner's line index?)"
    )


_WARNED: set[str] = set()


def _warn_once(text: str) -> None:
    """Log ``text`` once per process and kind (the text without its numbers: the rings or
    intensities named vary from sweep to sweep)."""
    kind = re.sub(r'-?\d+(\.\d+)?(e[+-]?\d+)?', 'N', text)
    if kind not in _WARNED:
        _WARNED.add(kind)
        logger.warning('%s', text)


@functools.lru_cache(maxsize=8)
def _range_bits(max_range: float) -> np.uint32:
    """The float32 bit pattern of ``max_range`` as uint32."""
    return np.uint32(np.float32(max_range).view(np.int32))


_NO_RETURN = np.iinfo(np.int64).max
_INDEX_CACHE_MAX = 1 << 21  # points (16 MB of int64); a 128-beam sweep is ~260k
_INDEX = np.arange(1 << 16, dtype=np.int64)
_INDEX.flags.writeable = False


def _point_index(n: int) -> npt.NDArray[np.int64]:
    """``arange(n)`` as int64, from a grown-once read-only cache (a sweep is ~30k points)."""
    global _INDEX  # noqa: PLW0603
    index = _INDEX  # one read: another thread may swap the global meanwhile
    if index.size < n:
        if n > _INDEX_CACHE_MAX:  # a huge cloud: its own arange, not kept for the process
            return np.arange(n, dtype=np.int64)
        index = np.arange(max(n, 2 * index.size), dtype=np.int64)
        index.flags.writeable = False
        _INDEX = index
    return index[:n]
