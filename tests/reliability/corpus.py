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

"""A seeded generator of malformed sensor messages (the fuzz corpus of issue 9).

Every case starts from a *valid* message (built with the project typestore, so field types are
exactly what rosbags or rclpy would hand the decoders) and applies one mutation:

* message objects: dimensions off by one, wrong ``step`` / ``row_step`` / ``point_step``, huge
  dimensions with tiny data, NaN / Inf coordinates and angles, flipped endianness flag, unknown
  encodings and formats, truncated or extended data, broken ``PointField`` tables;
* CDR bytes: the valid message serialised, then truncated, bit-flipped, a length word
  overwritten with a huge value, the encapsulation header changed (big-endian / unknown), or
  junk appended. Those bytes go through ``deserialize_cdr`` first, as a bag or DDS would.

The generator is deterministic for a seed (``random.Random``), cheap (tens of microseconds per
case) and does not import the decoders: it only knows message layouts.
"""

from __future__ import annotations

import dataclasses
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from dmil_ros.bagio import typestore

STORE = typestore()
T = STORE.types
Image = T['sensor_msgs/msg/Image']
CompressedImage = T['sensor_msgs/msg/CompressedImage']
PointCloud2 = T['sensor_msgs/msg/PointCloud2']
PointField = T['sensor_msgs/msg/PointField']
LaserScan = T['sensor_msgs/msg/LaserScan']
Header = T['std_msgs/msg/Header']
Time = T['builtin_interfaces/msg/Time']

MSGTYPES = {
    'image': 'sensor_msgs/msg/Image',
    'compressed': 'sensor_msgs/msg/CompressedImage',
    'pointcloud2': 'sensor_msgs/msg/PointCloud2',
    'laserscan': 'sensor_msgs/msg/LaserScan',
}
U32_MAX = 2**32 - 1
HUGE_U32 = (U32_MAX, 2**31, 2**31 - 1, 2**24, 65536 * 65535, 1 << 30)
RAW_ENCODINGS = (
    'rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', '8UC1', '8UC3', '8UC4', 'rgb16', 'bgr16',
    'rgba16', 'bgra16', 'mono16', '16UC1', 'bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8',
    'bayer_grbg8', 'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv', 'nv12', 'nv21',
)  # fmt: skip
BYTES_PER_PIXEL = {
    **dict.fromkeys(('rgb8', 'bgr8', '8UC3'), 3),
    **dict.fromkeys(('rgba8', 'bgra8', '8UC4'), 4),
    **dict.fromkeys(('mono8', '8UC1', 'bayer_rggb8', 'bayer_bggr8'), 1),
    **dict.fromkeys(('bayer_gbrg8', 'bayer_grbg8'), 1),
    **dict.fromkeys(('rgb16', 'bgr16'), 6),
    **dict.fromkeys(('rgba16', 'bgra16'), 8),
    **dict.fromkeys(('mono16', '16UC1'), 2),
    **dict.fromkeys(('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'), 2),
}
UNKNOWN_ENCODINGS = (
    '', 'RGB8', 'rgb 8', '32FC1', '16SC3', '64FC4', 'jpeg', 'png', 'bayer_rggb16', 'yuv420',
    'i420', 'rgb8\x00', 'bgr8;', 'mono12', '\u00e9ncoding', 'x' * 300,
)  # fmt: skip
UNKNOWN_FORMATS = ('tiff', 'bmp', 'webp', 'compressedDepth png', 'rgb8; compressedDepth', 'jp2')


@dataclass(frozen=True)
class Case:
    """One fuzz input: a message object, or CDR bytes to deserialise first."""

    kind: str  # key of MSGTYPES
    mutation: str
    msg: Any = None
    cdr: bytes | None = None

    @property
    def msgtype(self) -> str:
        return MSGTYPES[self.kind]


def header(rng: random.Random) -> Any:
    return Header(
        stamp=Time(sec=rng.randrange(1 << 31), nanosec=rng.randrange(10**9)), frame_id='f'
    )


# -- valid messages -----------------------------------------------------------------------------


def valid_image(rng: random.Random) -> Any:
    encoding = rng.choice(RAW_ENCODINGS)
    width, height = rng.randrange(1, 9) * 2, rng.randrange(1, 7) * 2  # even: 4:2:0 / 4:2:2
    if encoding in ('nv12', 'nv21'):
        row, rows = width, height * 3 // 2
    else:
        row, rows = width * BYTES_PER_PIXEL[encoding], height
    step = row + rng.choice((0, 0, 1, 3, 8))
    data = np.frombuffer(rng.randbytes(step * rows), np.uint8)
    return Image(
        header=header(rng),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=rng.randrange(2),
        step=step,
        data=data,
    )


_COMPRESSED_CACHE: dict[tuple[str, int], bytes] = {}


def _encoded(kind: str, variant: int) -> bytes:
    key = (kind, variant)
    if key not in _COMPRESSED_CACHE:
        gen = np.random.default_rng(variant)
        image = gen.integers(0, 256, (6 + 2 * variant, 8 + variant, 3), dtype=np.uint8)
        ok, buf = cv2.imencode('.jpg' if kind == 'jpeg' else '.png', image)
        if not ok:  # pragma: no cover - OpenCV always encodes these
            raise RuntimeError(kind)
        _COMPRESSED_CACHE[key] = buf.tobytes()
    return _COMPRESSED_CACHE[key]


def valid_compressed(rng: random.Random) -> Any:
    kind = rng.choice(('jpeg', 'png'))
    fmt = rng.choice((kind, f'rgb8; {kind} compressed bgr8', f'bgr8; {kind} compressed rgb8'))
    if kind == 'jpeg' and rng.random() < 0.3:
        fmt = 'jpg'
    data = _encoded(kind, rng.randrange(4))
    return CompressedImage(
        header=header(rng), format=fmt, data=np.frombuffer(data, np.uint8).copy()
    )


# (name, datatype, size) of the simulator's VLP-16-like layout and a padded 'PCL' layout
_LAYOUTS = (
    (
        ('x', 7, 0),
        ('y', 7, 4),
        ('z', 7, 8),
        ('intensity', 7, 12),
        ('ring', 4, 16),
        ('time', 7, 18),
    ),
    (('x', 7, 0), ('y', 7, 4), ('z', 7, 8), ('_', 7, 12), ('intensity', 7, 16)),
    (('x', 8, 0), ('y', 8, 8), ('z', 8, 16), ('ring', 2, 24)),
    (('x', 3, 0), ('y', 3, 2), ('z', 3, 4)),
)
_STEPS = (22, 32, 25, 6)


def valid_cloud(rng: random.Random) -> Any:
    which = rng.randrange(len(_LAYOUTS))
    fields = [PointField(name=n, offset=o, datatype=d, count=1) for n, d, o in _LAYOUTS[which]]
    point_step = _STEPS[which]
    width, height = rng.randrange(0, 40), rng.choice((1, 1, 1, 2, 3))
    row_step = width * point_step + rng.choice((0, 0, 4))
    data = np.frombuffer(rng.randbytes(row_step * height), np.uint8)
    return PointCloud2(
        header=header(rng),
        height=height,
        width=width,
        fields=fields,
        is_bigendian=False,
        point_step=point_step,
        row_step=row_step,
        data=data,
        is_dense=False,
    )


def valid_scan(rng: random.Random) -> Any:
    n = rng.randrange(0, 200)
    ranges = np.asarray([rng.uniform(0.0, 30.0) for _ in range(n)], np.float32)
    intens = np.asarray([rng.uniform(0, 255) for _ in range(n)], np.float32)
    return LaserScan(
        header=header(rng),
        angle_min=-np.pi,
        angle_max=np.pi,
        angle_increment=2 * np.pi / max(n, 1),
        time_increment=0.0,
        scan_time=0.1,
        range_min=0.1,
        range_max=25.0,
        ranges=ranges,
        intensities=intens if rng.random() < 0.5 else np.zeros(0, np.float32),
    )


VALID: dict[str, Callable[[random.Random], Any]] = {
    'image': valid_image,
    'compressed': valid_compressed,
    'pointcloud2': valid_cloud,
    'laserscan': valid_scan,
}

# -- object mutations -------------------------------------------------------------------------


def _r(msg: Any, **changes: Any) -> Any:
    return dataclasses.replace(msg, **changes)


def _bytes(msg: Any) -> np.ndarray:
    return np.asarray(msg.data, np.uint8)


def _truncate(rng: random.Random, msg: Any) -> Any:
    data = _bytes(msg)
    return _r(msg, data=data[: rng.randrange(max(data.size, 1))].copy())


def _extend(rng: random.Random, msg: Any) -> Any:
    extra = np.frombuffer(rng.randbytes(rng.randrange(1, 64)), np.uint8)
    return _r(msg, data=np.concatenate([_bytes(msg), extra]))


def _flip_bytes(rng: random.Random, msg: Any) -> Any:
    data = _bytes(msg).copy()
    for _ in range(rng.randrange(1, 9)):
        if data.size:
            data[rng.randrange(data.size)] = rng.randrange(256)
    return _r(msg, data=data)


def _off_by_one(rng: random.Random, value: int) -> int:
    return max(0, min(U32_MAX, value + rng.choice((-1, 1))))


def _huge(rng: random.Random) -> int:
    return rng.choice(HUGE_U32)


def image_mutations() -> dict[str, Callable[[random.Random, Any], Any]]:
    return {
        'width_off_by_one': lambda g, m: _r(m, width=_off_by_one(g, m.width)),
        'height_off_by_one': lambda g, m: _r(m, height=_off_by_one(g, m.height)),
        'step_off_by_one': lambda g, m: _r(m, step=_off_by_one(g, m.step)),
        'step_zero': lambda g, m: _r(m, step=0),
        'step_huge': lambda g, m: _r(m, step=_huge(g)),
        'width_huge': lambda g, m: _r(m, width=_huge(g)),
        'height_huge': lambda g, m: _r(m, height=_huge(g)),
        'dims_huge_tiny_data': lambda g, m: _r(
            m, width=_huge(g), height=_huge(g), step=_huge(g), data=_bytes(m)[:16].copy()
        ),
        'dims_zero': lambda g, m: _r(m, **{g.choice(('width', 'height')): 0}),
        'unknown_encoding': lambda g, m: _r(m, encoding=g.choice(UNKNOWN_ENCODINGS)),
        'other_encoding': lambda g, m: _r(m, encoding=g.choice(RAW_ENCODINGS)),
        'endianness_flag': lambda g, m: _r(m, is_bigendian=g.choice((0, 1, 2, 255))),
        'truncated_data': _truncate,
        'extended_data': _extend,
        'empty_data': lambda g, m: _r(m, data=np.zeros(0, np.uint8)),
        'flipped_bytes': _flip_bytes,
    }


def _with_header_dims(data: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """The image with its PNG IHDR / JPEG SOF dimensions replaced (None if none is found)."""
    raw = bytearray(data.tobytes())
    if raw.startswith(b'\x89PNG'):
        raw[16:24] = struct.pack('>II', width, height)
        raw[29:33] = struct.pack('>I', zlib.crc32(bytes(raw[12:29])) & 0xFFFFFFFF)
    else:
        sof = raw.find(b'\xff\xc0')
        if sof < 0:
            return None
        raw[sof + 5 : sof + 9] = struct.pack('>HH', height & 0xFFFF, width & 0xFFFF)
    return np.frombuffer(bytes(raw), np.uint8)


def _header_dims(rng: random.Random, msg: Any) -> Any:
    # small claims only: OpenCV decodes a truncated JPEG to the size its header claims, so large
    # claims allocate far beyond the data (a known finding, tested on its own in
    # test_fuzz_decoders.py, kept out of the corpus so its allocation bound stays meaningful)
    width, height = rng.randrange(1, 400), rng.randrange(1, 400)
    data = _with_header_dims(_bytes(msg), width, height)
    return msg if data is None else _r(msg, data=data)


def compressed_mutations() -> dict[str, Callable[[random.Random, Any], Any]]:
    return {
        'truncated_data': _truncate,
        'extended_data': _extend,
        'flipped_bytes': _flip_bytes,
        'empty_data': lambda g, m: _r(m, data=np.zeros(0, np.uint8)),
        'unknown_format': lambda g, m: _r(m, format=g.choice(UNKNOWN_FORMATS)),
        'format_mismatch': lambda g, m: _r(m, format='png' if 'jp' in m.format else 'jpeg'),
        'not_an_image': lambda g, m: _r(m, data=np.frombuffer(g.randbytes(64), np.uint8)),
        'magic_only': lambda g, m: _r(m, data=_bytes(m)[: g.choice((2, 3, 8, 9, 20))].copy()),
        'header_dims': _header_dims,
    }


def _field(msg: Any, name: str) -> int | None:
    return next((i for i, f in enumerate(msg.fields) if f.name == name), None)


def _set_field(rng: random.Random, msg: Any, **changes: Any) -> Any:
    fields = list(msg.fields)
    i = rng.randrange(len(fields))
    fields[i] = dataclasses.replace(fields[i], **changes)
    return _r(msg, fields=fields)


def _drop_axis(rng: random.Random, msg: Any) -> Any:
    axis = rng.choice('xyz')
    return _r(msg, fields=[f for f in msg.fields if f.name != axis])


def _nonfinite(rng: random.Random, msg: Any) -> Any:
    """Write NaN / Inf / huge values into float coordinates (a valid but dirty cloud)."""
    data = _bytes(msg).copy()
    idx = _field(msg, 'x')
    if idx is None or msg.fields[idx].datatype != 7 or msg.width * msg.height == 0:
        return msg
    for _ in range(rng.randrange(1, 8)):
        point = rng.randrange(msg.width * msg.height)
        row, col = divmod(point, msg.width)
        at = row * msg.row_step + col * msg.point_step + rng.choice((0, 4, 8))
        value = rng.choice((np.nan, np.inf, -np.inf, 3.4e38, -3.4e38))
        data[at : at + 4] = np.frombuffer(np.float32(value).tobytes(), np.uint8)
    return _r(msg, data=data)


def cloud_mutations() -> dict[str, Callable[[random.Random, Any], Any]]:
    return {
        'width_off_by_one': lambda g, m: _r(m, width=_off_by_one(g, m.width)),
        'height_off_by_one': lambda g, m: _r(m, height=_off_by_one(g, m.height)),
        'point_step_off_by_one': lambda g, m: _r(m, point_step=_off_by_one(g, m.point_step)),
        'row_step_off_by_one': lambda g, m: _r(m, row_step=_off_by_one(g, m.row_step)),
        'point_step_zero': lambda g, m: _r(m, point_step=0),
        'row_step_zero': lambda g, m: _r(m, row_step=0),
        'point_step_huge': lambda g, m: _r(m, point_step=_huge(g)),
        'row_step_huge': lambda g, m: _r(m, row_step=_huge(g)),
        'dims_huge_tiny_data': lambda g, m: _r(
            m, width=_huge(g), height=_huge(g), row_step=_huge(g), data=_bytes(m)[:32].copy()
        ),
        'width_huge': lambda g, m: _r(m, width=_huge(g)),
        'missing_axis': _drop_axis,
        'no_fields': lambda g, m: _r(m, fields=[]),
        'field_offset_overrun': lambda g, m: _set_field(
            g, m, offset=g.choice((m.point_step, m.point_step - 1, U32_MAX, 2**31))
        ),
        'field_datatype_bad': lambda g, m: _set_field(g, m, datatype=g.choice((0, 9, 255))),
        'field_count_huge': lambda g, m: _set_field(g, m, count=g.choice((2, 1000, U32_MAX))),
        'duplicate_fields': lambda g, m: _r(m, fields=[*m.fields, *m.fields]),
        'endianness_flag': lambda g, m: _r(m, is_bigendian=not m.is_bigendian),
        'nonfinite_points': _nonfinite,
        'truncated_data': _truncate,
        'extended_data': _extend,
        'empty_data': lambda g, m: _r(m, data=np.zeros(0, np.uint8)),
    }


_BAD_FLOATS = (np.nan, np.inf, -np.inf, 0.0, -0.0, 3.4e38, -3.4e38, 1e-45)


def _scan_values(rng: random.Random, msg: Any) -> Any:
    ranges = np.asarray(msg.ranges, np.float32).copy()
    for _ in range(rng.randrange(1, 10)):
        if ranges.size:
            ranges[rng.randrange(ranges.size)] = rng.choice(_BAD_FLOATS)
    return _r(msg, ranges=ranges)


def scan_mutations() -> dict[str, Callable[[random.Random, Any], Any]]:
    def field(name: str) -> Callable[[random.Random, Any], Any]:
        return lambda g, m: _r(m, **{name: g.choice(_BAD_FLOATS)})

    return {
        'angle_increment_bad': field('angle_increment'),
        'angle_min_bad': field('angle_min'),
        'range_min_bad': field('range_min'),
        'range_max_bad': field('range_max'),
        'range_limits_swapped': lambda g, m: _r(m, range_min=m.range_max, range_max=m.range_min),
        'nonfinite_ranges': _scan_values,
        'intensities_mismatch': lambda g, m: _r(
            m, intensities=np.ones(max(len(m.ranges) + g.choice((-1, 1, 7)), 0), np.float32)
        ),
        'empty_ranges': lambda g, m: _r(m, ranges=np.zeros(0, np.float32)),
    }


MUTATIONS: dict[str, dict[str, Callable[[random.Random, Any], Any]]] = {
    'image': image_mutations(),
    'compressed': compressed_mutations(),
    'pointcloud2': cloud_mutations(),
    'laserscan': scan_mutations(),
}

# -- CDR mutations ------------------------------------------------------------------------------


def cdr_mutations() -> dict[str, Callable[[random.Random, bytes], bytes]]:
    def overwrite_length(g: random.Random, b: bytes) -> bytes:
        raw = bytearray(b)
        at = 4 + 4 * g.randrange(max((len(raw) - 8) // 4, 1))  # an aligned word after the header
        raw[at : at + 4] = struct.pack('<I', g.choice((*HUGE_U32, 0, 1, 255, 65535)))
        return bytes(raw)

    def flip(g: random.Random, b: bytes) -> bytes:
        raw = bytearray(b)
        for _ in range(g.randrange(1, 6)):
            raw[g.randrange(4, len(raw))] ^= 1 << g.randrange(8)
        return bytes(raw)

    return {
        'cdr_truncated': lambda g, b: b[: g.randrange(len(b))],
        'cdr_flipped_bits': flip,
        'cdr_length_overwritten': overwrite_length,
        'cdr_big_endian_flag': lambda g, b: b[:1] + b'\x00' + b[2:],
        'cdr_unknown_encapsulation': lambda g, b: (
            bytes([g.randrange(256), g.randrange(2, 256)]) + b[2:]
        ),
        'cdr_junk_appended': lambda g, b: b + g.randbytes(g.randrange(1, 64)),
        'cdr_empty': lambda g, b: b[: g.randrange(5)],
    }


CDR_MUTATIONS = cdr_mutations()


def generate(seed: int, n: int, cdr_fraction: float = 0.35) -> Iterator[Case]:
    """``n`` malformed cases, deterministic for ``seed``; kinds and mutations round-robin."""
    rng = random.Random(seed)
    kinds = list(MSGTYPES)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        base = VALID[kind](rng)
        if rng.random() < cdr_fraction:
            name, mutate_cdr = rng.choice(list(CDR_MUTATIONS.items()))
            raw = bytes(STORE.serialize_cdr(base, MSGTYPES[kind]))
            yield Case(kind, name, cdr=mutate_cdr(rng, raw))
        else:
            name, mutate = rng.choice(list(MUTATIONS[kind].items()))
            yield Case(kind, name, msg=mutate(rng, base))


def input_bytes(msg: Any) -> int:
    """How many payload bytes a message carries (the yardstick for allocation bounds)."""
    if hasattr(msg, 'ranges'):
        return 4 * (len(msg.ranges) + len(msg.intensities))
    return int(np.asarray(msg.data).nbytes)


def png_bomb(width: int, height: int) -> bytes:
    """A valid 8-bit grey PNG of zeros: tiny on the wire, ``width * height`` bytes decoded."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body) & 0xFFFFFFFF
        return struct.pack('>I', len(body)) + tag + body + struct.pack('>I', crc)

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b'\x00' * (width + 1)
    body = b''.join(comp.compress(row) for _ in range(height)) + comp.flush()
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', body) + chunk(b'IEND', b'')
