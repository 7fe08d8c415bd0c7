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

"""Sensor message decoders: ROS messages -> numpy arrays, with every size checked first.

The decoders accept any object with the ROS message's attribute names, so the same function
serves ``rosbags`` messages (replay, training, audits) and ``rclpy`` messages (the node):

* :func:`decode_image`: ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` ->
  ``(H, W, 3)`` uint8 RGB (OpenCV does colour conversion, demosaicing and JPEG/PNG decoding);
* :func:`decode_pointcloud2`: ``sensor_msgs/PointCloud2`` with any field layout (offsets,
  padding, endianness, organised or not) -> :class:`~dmil_ros.runtime.preprocess.Points` with
  the non-finite points removed;
* :func:`decode_laserscan`: ``sensor_msgs/LaserScan`` -> ``Points`` in the scan plane (z = 0).

Malformed input raises :class:`~dmil_ros.runtime.errors.DecodeError` naming the topic and field;
nothing is allocated from a size before that size has been checked against the data.
"""

from __future__ import annotations

import math
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from dmil_ros.runtime.errors import DecodeError
from dmil_ros.runtime.preprocess import Points

U8 = npt.NDArray[np.uint8]

MAX_PIXELS: Final = 64 * 1024 * 1024
"""Images above this many pixels are refused (a corrupt header, not a camera)."""
MAX_POINTS: Final = 16 * 1024 * 1024
"""Clouds above this many points are refused."""
MAX_POINT_STEP: Final = 65535
"""Larger ``point_step`` values are refused (no driver writes a 64 kB point)."""

# encoding -> (channels, bytes per channel, OpenCV conversion to RGB or None)
_RAW: Final[dict[str, tuple[int, int, int | None]]] = {
    'rgb8': (3, 1, None),
    'bgr8': (3, 1, cv2.COLOR_BGR2RGB),
    'rgba8': (4, 1, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, 1, cv2.COLOR_BGRA2RGB),
    'mono8': (1, 1, cv2.COLOR_GRAY2RGB),
    '8UC1': (1, 1, cv2.COLOR_GRAY2RGB),
    '8UC3': (3, 1, cv2.COLOR_BGR2RGB),  # OpenCV's channel order, as cv_bridge assumes
    '8UC4': (4, 1, cv2.COLOR_BGRA2RGB),
    'rgb16': (3, 2, None),
    'bgr16': (3, 2, cv2.COLOR_BGR2RGB),
    'rgba16': (4, 2, cv2.COLOR_RGBA2RGB),
    'bgra16': (4, 2, cv2.COLOR_BGRA2RGB),
    'mono16': (1, 2, cv2.COLOR_GRAY2RGB),
    '16UC1': (1, 2, cv2.COLOR_GRAY2RGB),
    # Bayer mosaics: OpenCV names the pattern from the second row, so ROS rggb = OpenCV BG
    'bayer_rggb8': (1, 1, cv2.COLOR_BayerBG2RGB),
    'bayer_bggr8': (1, 1, cv2.COLOR_BayerRG2RGB),
    'bayer_gbrg8': (1, 1, cv2.COLOR_BayerGR2RGB),
    'bayer_grbg8': (1, 1, cv2.COLOR_BayerGB2RGB),
    # packed 4:2:2 (two bytes per pixel): ROS 'yuv422' is UYVY, 'yuv422_yuy2' is YUYV
    'yuv422': (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    'uyvy': (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422_yuy2': (2, 1, cv2.COLOR_YUV2RGB_YUYV),
    'yuyv': (2, 1, cv2.COLOR_YUV2RGB_YUYV),
}
# packed 4:2:2 shares one U and one V between two horizontal pixels: the width must be even
_PACKED_422: Final = frozenset({'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'})
# semi-planar 4:2:0: a full-resolution Y plane followed by a half-height interleaved UV plane
_YUV420: Final[dict[str, int]] = {
    'nv12': cv2.COLOR_YUV2RGB_NV12,
    'nv21': cv2.COLOR_YUV2RGB_NV21,
}
SUPPORTED_IMAGE_ENCODINGS: Final[tuple[str, ...]] = (*_RAW, *_YUV420)

_JPEG_MAGIC: Final = b'\xff\xd8'
_PNG_MAGIC: Final = b'\x89PNG\r\n\x1a\n'

# sensor_msgs/PointField datatype -> numpy base type
_POINT_TYPES: Final[dict[int, str]] = {
    1: 'i1',  # INT8
    2: 'u1',  # UINT8
    3: 'i2',  # INT16
    4: 'u2',  # UINT16
    5: 'i4',  # INT32
    6: 'u4',  # UINT32
    7: 'f4',  # FLOAT32
    8: 'f8',  # FLOAT64
}
_INTENSITY_NAMES: Final = ('intensity', 'i', 'reflectivity')
_RING_NAMES: Final = ('ring', 'line', 'channel')


def as_bytes(data: Any, *, topic: str = '', field: str = 'data') -> U8:
    """A message's byte sequence (numpy array, ``array.array``, bytes or list) as contiguous
    1-D uint8 (the decoders view it with strides of their own).

    Zero-copy for anything exporting the buffer protocol; a strided uint8 array is copied.
    """
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            msg = f'{field}: expected uint8 bytes, got dtype {data.dtype}'
            raise DecodeError(msg, topic=topic, field=field, reason='data')
        return np.ascontiguousarray(data.reshape(-1))  # no copy when already contiguous
    try:
        return np.frombuffer(memoryview(data).cast('B'), np.uint8)
    except TypeError:
        pass
    try:
        return np.asarray(data, np.uint8).reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:
        msg = f'{field}: not a byte sequence ({exc})'
        raise DecodeError(msg, topic=topic, field=field, reason='data') from exc


def _dims(msg: Any, topic: str) -> tuple[int, int, int]:
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        msg_ = f'image size {width}x{height} is empty'
        raise DecodeError(msg_, topic=topic, field='height/width', reason='size')
    if height * width > MAX_PIXELS:
        msg_ = f'image size {width}x{height} exceeds {MAX_PIXELS} pixels'
        raise DecodeError(msg_, topic=topic, field='height/width', reason='size')
    return height, width, step


def _decode_raw(msg: Any, topic: str) -> U8:
    encoding = str(msg.encoding)
    height, width, step = _dims(msg, topic)
    data = as_bytes(msg.data, topic=topic)
    if encoding in _YUV420:
        if height % 2 or width % 2:
            msg_ = f'encoding {encoding!r} needs even width and height, got {width}x{height}'
            raise DecodeError(msg_, topic=topic, field='height/width', reason='size')
        rows, row_bytes, code = height * 3 // 2, width, _YUV420[encoding]
        dtype: type[np.generic] = np.uint8
        channels = 1
    elif encoding in _RAW:
        if encoding in _PACKED_422 and width % 2:
            msg_ = f'encoding {encoding!r} needs an even width, got {width}x{height}'
            raise DecodeError(msg_, topic=topic, field='height/width', reason='size')
        channels, depth, code_or_none = _RAW[encoding]
        rows, row_bytes = height, width * channels * depth
        dtype = np.uint16 if depth == 2 else np.uint8
        code = -1 if code_or_none is None else code_or_none
    else:
        msg_ = (
            f'encoding {encoding!r} not supported '
            f'(supported: {", ".join(SUPPORTED_IMAGE_ENCODINGS)})'
        )
        raise DecodeError(msg_, topic=topic, field='encoding', reason='encoding')
    if step < row_bytes:
        msg_ = f'step {step} < {row_bytes} bytes needed for {width} px of {encoding!r}'
        raise DecodeError(msg_, topic=topic, field='step', reason='size')
    need = step * (rows - 1) + row_bytes
    if data.size < need:
        msg_ = f'data has {data.size} bytes, {encoding!r} {width}x{height} needs {need}'
        raise DecodeError(msg_, topic=topic, field='data', reason='size')
    # 1. a strided (rows, row_bytes) view: step padding is skipped without a copy
    view = np.ndarray((rows, row_bytes), np.uint8, data, 0, (step, 1))
    view.flags.writeable = False
    if dtype is np.uint16:
        # 2a. 16-bit: honour is_bigendian, keep the high byte (8 most significant bits)
        wide = np.ascontiguousarray(view).view('>u2' if msg.is_bigendian else '<u2')
        pixels = (wide >> 8).astype(np.uint8).reshape(rows, width, channels)
    else:
        pixels = np.ascontiguousarray(view).reshape(rows, -1, channels)
    # 2b. colour conversion to RGB
    if code == -1:
        return pixels if pixels.flags.c_contiguous else np.ascontiguousarray(pixels)
    src = pixels[:, :, 0] if channels == 1 else pixels
    if encoding in _YUV420:
        src = pixels.reshape(rows, width)
    return np.asarray(cv2.cvtColor(src, code), np.uint8)


def _decode_compressed(msg: Any, topic: str) -> U8:
    fmt = str(msg.format).lower()
    if 'compresseddepth' in fmt.replace(' ', ''):
        msg_ = f'format {msg.format!r}: compressed depth images are not camera images'
        raise DecodeError(msg_, topic=topic, field='format', reason='format')
    data = as_bytes(msg.data, topic=topic)
    head = data[:8].tobytes()
    if head.startswith(_JPEG_MAGIC):
        kind = 'jpeg'
    elif head.startswith(_PNG_MAGIC):
        kind = 'png'
    else:
        msg_ = f'format {msg.format!r}: data is neither JPEG nor PNG (starts {head[:4]!r})'
        raise DecodeError(msg_, topic=topic, field='data', reason='format')
    if fmt and kind not in fmt and not (kind == 'jpeg' and 'jpg' in fmt):
        msg_ = f'format {msg.format!r} does not match the {kind.upper()} data'
        raise DecodeError(msg_, topic=topic, field='format', reason='format')
    # 1. the size the header claims, checked before anything is decoded (a few hundred bytes
    #    can claim gigapixels: a decompression bomb or a corrupt header)
    dims = _jpeg_size(data) if kind == 'jpeg' else _png_size(data)
    if dims is None:
        msg_ = (
            f'{kind.upper()} data could not be decoded: no image size in its header '
            f'({data.size} bytes)'
        )
        raise DecodeError(msg_, topic=topic, field='data', reason='corrupt')
    width, height = dims
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        msg_ = f'{kind.upper()} header claims {width}x{height}, limit {MAX_PIXELS} pixels'
        raise DecodeError(msg_, topic=topic, field='data', reason='size')
    # 2. decode
    try:
        # the pixels as stored: no EXIF rotation (as image_transport's IMREAD_UNCHANGED); a
        # rotated frame would reach the model transposed and squeezed to its size
        image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:
        msg_ = f'{kind.upper()} data could not be decoded ({data.size} bytes): {exc}'
        raise DecodeError(msg_, topic=topic, field='data', reason='corrupt') from exc
    if image is None or image.size == 0:
        msg_ = f'{kind.upper()} data could not be decoded ({data.size} bytes)'
        raise DecodeError(msg_, topic=topic, field='data', reason='corrupt')
    # image_transport writes '<encoding>; <kind> compressed <encoding>'; colour images are
    # compressed as bgr8 (OpenCV order) unless the suffix says rgb8, when the bytes were written
    # in RGB order and IMREAD_COLOR hands them back unchanged.
    if fmt.rstrip().endswith('compressed rgb8'):
        return np.ascontiguousarray(image)
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.uint8)


# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic):
# 0xC0..0xCF except DHT (0xC4), JPG (0xC8) and DAC (0xCC)
_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SOS: Final = 0xDA
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI, EOI


def _jpeg_size(data: U8) -> tuple[int, int] | None:
    """(width, height) from the first SOFn segment of a JPEG, or None when there is none.

    Walks the marker segments from SOI (each ``FF xx`` + big-endian length) up to the first
    SOFn, where ``P (1) Y (2) X (2)`` follow the length: ITU-T T.81 B.2.2.
    """
    buf = data.data  # a memoryview, no copy: the segments are jumped over, not scanned
    i, n = 2, len(buf)
    while i + 4 <= n:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        length = (buf[i + 2] << 8) | buf[i + 3]
        if marker in _SOF:
            if i + 9 > n:
                return None
            height = (buf[i + 5] << 8) | buf[i + 6]
            width = (buf[i + 7] << 8) | buf[i + 8]
            return width, height
        if marker == _SOS or length < 2:
            return None
        i += 2 + length
    return None


def _png_size(data: U8) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk (always first: PNG spec 5.6), or None."""
    head = data[8:24].tobytes()
    if len(head) < 16 or head[4:8] != b'IHDR':
        return None
    return int.from_bytes(head[8:12], 'big'), int.from_bytes(head[12:16], 'big')


def decode_image(msg: Any, topic: str = '') -> U8:
    """``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` -> ``(H, W, 3)`` uint8 RGB.

    Raw encodings: rgb8, bgr8, rgba8, bgra8, mono8, 8UC1/3/4, the 16-bit variants (high byte
    kept), the four Bayer mosaics, yuv422 (UYVY), yuv422_yuy2 (YUYV), nv12, nv21. Compressed:
    JPEG and PNG (checked by magic number against ``format``). Anything else raises
    :class:`DecodeError` listing what is supported.
    """
    if hasattr(msg, 'format') and not hasattr(msg, 'encoding'):
        return _decode_compressed(msg, topic)
    if not hasattr(msg, 'encoding'):
        msg_ = f'{type(msg).__name__} is neither an Image nor a CompressedImage'
        raise DecodeError(msg_, topic=topic, field='type', reason='type')
    return _decode_raw(msg, topic)


_DTYPE_CACHE: dict[tuple[Any, ...], tuple[np.dtype[Any], dict[str, str]]] = {}


def pointcloud_dtype(msg: Any, topic: str = '') -> tuple[np.dtype[Any], dict[str, str]]:
    """The numpy structured dtype of one point, and which role each used field plays.

    Only x, y, z, the intensity and the ring fields are placed in the dtype, at their offsets,
    with ``itemsize = point_step``: everything else (padding, unused fields) is skipped for free.
    Layouts are cached (a driver sends the same one every time).
    """
    key = (
        tuple((str(f.name), int(f.offset), int(f.datatype), int(f.count)) for f in msg.fields),
        int(msg.point_step),
        bool(msg.is_bigendian),
    )
    hit = _DTYPE_CACHE.get(key)
    if hit is None:
        hit = _layout(msg, topic)
        if len(_DTYPE_CACHE) > 64:
            _DTYPE_CACHE.clear()
        _DTYPE_CACHE[key] = hit
    return hit


def _layout(msg: Any, topic: str) -> tuple[np.dtype[Any], dict[str, str]]:
    point_step = int(msg.point_step)
    if not 0 < point_step <= MAX_POINT_STEP:
        msg_ = f'point_step {point_step} must be positive and at most {MAX_POINT_STEP}'
        raise DecodeError(msg_, topic=topic, field='point_step', reason='fields')
    order = '>' if msg.is_bigendian else '<'
    by_name: dict[str, Any] = {}
    for f in msg.fields:
        name = str(f.name)
        if name in by_name:
            continue  # duplicate names (old PCL padding '_') cannot be told apart: first wins
        by_name[name] = f
    roles: dict[str, str] = {}
    for axis in ('x', 'y', 'z'):
        if axis not in by_name:
            present = [str(f.name) for f in msg.fields]
            msg_ = f'fields {present} lack {axis!r}'
            raise DecodeError(msg_, topic=topic, field='fields', reason='fields')
        roles[axis] = axis
    for role, names in (('intensity', _INTENSITY_NAMES), ('ring', _RING_NAMES)):
        for name in names:
            if name in by_name:
                roles[role] = name
                break
    names_, formats, offsets = [], [], []
    for role, name in roles.items():
        f = by_name[name]
        datatype, offset, count = int(f.datatype), int(f.offset), int(f.count)
        if datatype not in _POINT_TYPES:
            msg_ = f'field {name!r}: datatype {datatype} is not a PointField type (1..8)'
            raise DecodeError(msg_, topic=topic, field=f'fields.{name}', reason='fields')
        base = np.dtype(order + _POINT_TYPES[datatype])
        count = max(count, 1)  # some drivers write count 0 for scalars
        if offset < 0 or offset + base.itemsize * count > point_step:
            msg_ = (
                f'field {name!r}: offset {offset} + {count}x{base.itemsize} bytes '
                f'overruns point_step {point_step}'
            )
            raise DecodeError(msg_, topic=topic, field=f'fields.{name}', reason='fields')
        names_.append(role)
        formats.append(base)  # only the first element of a multi-count field is used
        offsets.append(offset)
    dtype = np.dtype(
        {'names': names_, 'formats': formats, 'offsets': offsets, 'itemsize': point_step}
    )
    return dtype, roles


def decode_pointcloud2(msg: Any, topic: str = '') -> Points:
    """``sensor_msgs/PointCloud2`` -> :class:`Points` (finite points only, float32 xyz).

    Any field layout: fields found by name (x, y, z; intensity from ``intensity``/``i``/
    ``reflectivity``; ring from ``ring``/``line``/``channel``), any PointField datatype, offsets
    and padding from ``point_step``, rows padded to ``row_step``, either endianness, organised
    (height > 1) or not. Points with a non-finite coordinate are dropped; a non-finite intensity
    reads as 0.
    """
    height, width = int(msg.height), int(msg.width)
    if height == 0 or width == 0:  # an empty sweep; some drivers then send no fields at all
        return Points(np.zeros((0, 3), np.float32))
    dtype, roles = pointcloud_dtype(msg, topic)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if height < 0 or width < 0 or height * width > MAX_POINTS:
        msg_ = f'cloud size {width}x{height} is not valid (max {MAX_POINTS} points)'
        raise DecodeError(msg_, topic=topic, field='height/width', reason='size')
    data = as_bytes(msg.data, topic=topic)
    if row_step < width * point_step:
        msg_ = f'row_step {row_step} < width {width} x point_step {point_step}'
        raise DecodeError(msg_, topic=topic, field='row_step', reason='size')
    need = row_step * (height - 1) + width * point_step
    if data.size < need:
        msg_ = f'data has {data.size} bytes, {width}x{height} points need {need}'
        raise DecodeError(msg_, topic=topic, field='data', reason='size')
    # 1. a (height, width) strided structured view of the buffer: no copy
    cloud = np.ndarray((height, width), dtype, data, 0, (row_step, point_step)).reshape(-1)
    # 2. coordinates as one (3, N) float32 block, handed over as its (N, 3) transpose: the
    #    preprocessing then reads each axis contiguously. x, y, z of one type at evenly spaced
    #    offsets (the usual float32 x, y, z) are one strided copy of a (3, height, width) view
    #    of the buffer, converting other types and byte orders on the way (2.5x faster than
    #    copying xyz records and transposing them; benchmarks/bench_runtime.py)
    fx, fy, fz = (dtype.fields[a] for a in 'xyz')  # type: ignore[index]
    base, step = fx[0], fy[1] - fx[1]
    xt = np.empty((3, height * width), np.float32)  # (3, N)
    if fy[0] == base and fz[0] == base and step > 0 and fz[1] - fy[1] == step:
        view = np.ndarray((3, height, width), base, data, fx[1], (step, row_step, point_step))
        xt.reshape(3, height, width)[...] = view
    else:
        for k, axis in enumerate('xyz'):
            xt[k] = cloud[axis]
    # 3. non-finite points dropped: one flat test first
    every = bool(np.isfinite(xt).all())
    if not every:
        finite = np.isfinite(xt).all(axis=0)  # (N,)
        xt = xt[:, finite]
    xyz = xt.T  # (N, 3), F-ordered
    intensity = ring = None
    # 4. per-point extras as contiguous copies: a strided (often unaligned) view of the buffer
    #    would make every later gather from it several times slower
    if 'intensity' in roles:
        intensity = _finite_or_zero(np.array(cloud['intensity'], np.float32))
        intensity = intensity if every else intensity[finite]
    if 'ring' in roles:
        ring = np.array(cloud['ring'], np.int32)
        ring = ring if every else ring[finite]
    return Points(xyz, intensity, ring)


def decode_laserscan(msg: Any, topic: str = '') -> Points:
    """``sensor_msgs/LaserScan`` -> :class:`Points` in the scan plane (z = 0).

    Beam i is at ``angle_min + i * angle_increment``; ranges outside
    ``[range_min, range_max]`` or non-finite are dropped (REP 117). Intensities are kept when
    there is one per range.
    """
    ranges = np.asarray(msg.ranges, np.float32).reshape(-1)
    intens_raw = np.asarray(msg.intensities, np.float32).reshape(-1)
    angle_min, increment = float(msg.angle_min), float(msg.angle_increment)
    if not (np.isfinite(angle_min) and np.isfinite(increment)) or increment == 0.0:
        msg_ = f'angle_min {angle_min} / angle_increment {increment} are not usable'
        raise DecodeError(msg_, topic=topic, field='angle_increment', reason='angles')
    if ranges.size > MAX_POINTS:
        msg_ = f'{ranges.size} ranges exceed {MAX_POINTS}'
        raise DecodeError(msg_, topic=topic, field='ranges', reason='size')
    if intens_raw.size not in (0, ranges.size):
        msg_ = f'{intens_raw.size} intensities for {ranges.size} ranges'
        raise DecodeError(msg_, topic=topic, field='intensities', reason='size')
    last = angle_min + max(ranges.size - 1, 0) * increment
    if not math.isfinite(last):  # every angle then finite: the rest lie between the two
        msg_ = f'angle_min {angle_min} + {ranges.size} x angle_increment {increment} overflows'
        raise DecodeError(msg_, topic=topic, field='angle_increment', reason='angles')
    lo, hi = float(msg.range_min), float(msg.range_max)
    keep = np.isfinite(ranges) & (ranges >= lo) & (ranges <= hi)
    index = np.flatnonzero(keep)
    angles = angle_min + index * increment  # (N,)
    r = ranges[index]
    xt = np.zeros((3, index.size), np.float32)  # (3, N): seen as (N, 3) like a cloud's
    xt[0] = r * np.cos(angles)
    xt[1] = r * np.sin(angles)
    xyz = xt.T  # (N, 3)
    intensity = _finite_or_zero(intens_raw[index]) if intens_raw.size else None
    return Points(xyz, intensity, None)


def _finite_or_zero(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A non-finite intensity of a valid point reads as 0 (no reading), in place.

    One NaN in the range image would make every model output NaN (and argmax 'forward').
    """
    if not np.isfinite(values).all():
        values[~np.isfinite(values)] = 0.0
    return values
