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

"""Decoder round trips: every supported image encoding, compressed formats, cloud layouts."""

from __future__ import annotations

import array
import struct
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.bagio import typestore
from dmil_ros.runtime.decode import (
    SUPPORTED_IMAGE_ENCODINGS,
    decode_image,
    decode_laserscan,
    decode_pointcloud2,
)
from dmil_ros.runtime.errors import DecodeError

T = typestore().types
Image = T['sensor_msgs/msg/Image']
CompressedImage = T['sensor_msgs/msg/CompressedImage']
PointCloud2 = T['sensor_msgs/msg/PointCloud2']
PointField = T['sensor_msgs/msg/PointField']
LaserScan = T['sensor_msgs/msg/LaserScan']
Header = T['std_msgs/msg/Header']
Time = T['builtin_interfaces/msg/Time']


def header() -> Any:
    return Header(stamp=Time(sec=1, nanosec=2), frame_id='cam')


def image_msg(
    body: np.ndarray, encoding: str, width: int, height: int, pad: int = 0, big: bool = False
) -> Any:
    """Rows of ``body`` (bytes per row = body.shape[1]) followed by ``pad`` junk bytes each."""
    rows = body.reshape(body.shape[0], -1).view(np.uint8)
    junk = np.full((rows.shape[0], pad), 0xAB, np.uint8)
    data = np.ascontiguousarray(np.hstack([rows, junk])).reshape(-1)
    return Image(
        header=header(),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=big,
        step=rows.shape[1] + pad,
        data=data,
    )


@pytest.fixture(scope='module')
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize('pad', [0, 3])
@pytest.mark.parametrize(
    ('encoding', 'to_raw'),
    [
        ('rgb8', lambda x: x),
        ('bgr8', lambda x: x[:, :, ::-1]),
        ('8UC3', lambda x: x[:, :, ::-1]),
        ('rgba8', lambda x: np.dstack([x, np.full(x.shape[:2], 7, np.uint8)])),
        ('bgra8', lambda x: np.dstack([x[:, :, ::-1], np.full(x.shape[:2], 7, np.uint8)])),
        ('8UC4', lambda x: np.dstack([x[:, :, ::-1], np.zeros(x.shape[:2], np.uint8)])),
    ],
)
def test_colour_8bit_round_trip(rgb: np.ndarray, encoding: str, to_raw: Any, pad: int) -> None:
    raw = np.ascontiguousarray(to_raw(rgb))
    msg = image_msg(raw.reshape(6, -1), encoding, 10, 6, pad)
    out = decode_image(msg, '/cam')
    assert out.dtype == np.uint8
    assert out.shape == (6, 10, 3)
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize('encoding', ['mono8', '8UC1'])
def test_mono8(rgb: np.ndarray, encoding: str) -> None:
    gray = rgb[:, :, 0].copy()
    out = decode_image(image_msg(gray, encoding, 10, 6, pad=2))
    np.testing.assert_array_equal(out, np.dstack([gray, gray, gray]))


@pytest.mark.parametrize('big', [False, True])
@pytest.mark.parametrize(
    ('encoding', 'to_raw'),
    [
        ('rgb16', lambda x: x),
        ('bgr16', lambda x: x[:, :, ::-1]),
        ('rgba16', lambda x: np.dstack([x, x[:, :, :1]])),
        ('bgra16', lambda x: np.dstack([x[:, :, ::-1], x[:, :, :1]])),
        ('mono16', lambda x: x[:, :, :1]),
        ('16UC1', lambda x: x[:, :, :1]),
    ],
)
def test_16bit_round_trip(rgb: np.ndarray, encoding: str, to_raw: Any, big: bool) -> None:
    wide = np.ascontiguousarray(to_raw(rgb)).astype(np.uint16) * 257 + 3  # low byte is noise
    wide = wide.astype('>u2' if big else '<u2')
    msg = image_msg(wide.reshape(6, -1).view(np.uint8), encoding, 10, 6, pad=4, big=big)
    out = decode_image(msg)
    expected = rgb if 'mono' not in encoding and '16UC1' not in encoding else rgb[:, :, [0, 0, 0]]
    np.testing.assert_array_equal(out, expected)


def flat_blocks() -> np.ndarray:
    """A 16x16 image of four uniform 8x8 colour blocks (exact under demosaicing/chroma)."""
    img = np.zeros((16, 16, 3), np.uint8)
    img[:8, :8] = (200, 40, 10)
    img[:8, 8:] = (10, 180, 60)
    img[8:, :8] = (30, 60, 220)
    img[8:, 8:] = (128, 128, 128)
    return img


# colour of each Bayer cell: pattern name -> (row0col0, row0col1, row1col0, row1col1) channel
BAYER = {
    'bayer_rggb8': 'RGGB',
    'bayer_bggr8': 'BGGR',
    'bayer_gbrg8': 'GBRG',
    'bayer_grbg8': 'GRBG',
}


@pytest.mark.parametrize('encoding', sorted(BAYER))
def test_bayer_demosaic(encoding: str) -> None:
    img = flat_blocks()
    pattern = ['RGB'.index(c) for c in BAYER[encoding]]
    mosaic = np.zeros((16, 16), np.uint8)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        mosaic[dy::2, dx::2] = img[dy::2, dx::2, pattern[k]]
    out = decode_image(image_msg(mosaic, encoding, 16, 16))
    # interior of each block (2 px from its edges) must be the block's colour
    for ys, xs in [(slice(2, 6), slice(2, 6)), (slice(10, 14), slice(10, 14))]:
        np.testing.assert_allclose(out[ys, xs].astype(int), img[ys, xs].astype(int), atol=2)
    np.testing.assert_allclose(out[2:6, 10:14].astype(int), img[2:6, 10:14].astype(int), atol=2)


def yuv601(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV of an RGB image (the formula, independent of OpenCV)."""
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return np.clip(np.rint(np.stack([y, u, v], -1)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize('encoding', ['yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv', 'nv12', 'nv21'])
def test_yuv(encoding: str) -> None:
    img = flat_blocks()
    yuv = yuv601(img)
    y, u, v = yuv[..., 0], yuv[..., 1], yuv[..., 2]
    if encoding in ('nv12', 'nv21'):
        uv = np.stack([u[::2, ::2], v[::2, ::2]], -1)
        if encoding == 'nv21':
            uv = uv[..., ::-1]
        body = np.vstack([y, uv.reshape(8, 16)])
    else:
        packed = np.zeros((16, 8, 4), np.uint8)  # two pixels per 4 bytes
        if encoding in ('yuv422', 'uyvy'):
            packed[..., 0], packed[..., 1] = u[:, ::2], y[:, ::2]
            packed[..., 2], packed[..., 3] = v[:, ::2], y[:, 1::2]
        else:
            packed[..., 0], packed[..., 1] = y[:, ::2], u[:, ::2]
            packed[..., 2], packed[..., 3] = y[:, 1::2], v[:, ::2]
        body = packed.reshape(16, 32)
    out = decode_image(image_msg(body, encoding, 16, 16, pad=2))
    np.testing.assert_allclose(out.astype(int), img.astype(int), atol=4)


def test_every_supported_encoding_is_tested() -> None:
    tested = {'rgb8', 'bgr8', '8UC3', 'rgba8', 'bgra8', '8UC4', 'mono8', '8UC1', 'rgb16'}
    tested |= {'bgr16', 'rgba16', 'bgra16', 'mono16', '16UC1', *BAYER}
    tested |= {'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv', 'nv12', 'nv21'}
    assert set(SUPPORTED_IMAGE_ENCODINGS) == tested


def test_rclpy_style_array_data(rgb: np.ndarray) -> None:
    """rclpy gives uint8[] as array.array('B'): decoded the same, no copy needed."""

    class Msg:
        height, width, encoding, is_bigendian, step = 6, 10, 'bgr8', 0, 30
        data = array.array('B', rgb[:, :, ::-1].tobytes())

    np.testing.assert_array_equal(decode_image(Msg()), rgb)


@pytest.mark.parametrize(
    ('fmt', 'ext'),
    [('png', '.png'), ('rgb8; png compressed bgr8', '.png'), ('jpeg', '.jpg'), ('jpg', '.jpg')],
)
def test_compressed_round_trip(fmt: str, ext: str) -> None:
    img = flat_blocks()
    ok, buf = cv2.imencode(ext, img[:, :, ::-1])
    assert ok
    msg = CompressedImage(header=header(), format=fmt, data=buf.reshape(-1))
    out = decode_image(msg)
    assert out.shape == img.shape
    if ext == '.png':
        np.testing.assert_array_equal(out, img)
    else:  # lossy: block interiors keep their colour, edges blur
        for ys, xs in [(slice(2, 6), slice(2, 6)), (slice(10, 14), slice(2, 6))]:
            np.testing.assert_allclose(out[ys, xs].astype(int), img[ys, xs].astype(int), atol=8)


def _with_segments(jpeg: bytes, *segments: bytes) -> bytes:
    """``jpeg`` with marker segments inserted right after its SOI."""
    return jpeg[:2] + b''.join(segments) + jpeg[2:]


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack('>BBH', 0xFF, marker, len(payload) + 2) + payload


def test_exif_orientation_is_not_applied() -> None:
    """A camera's JPEG tagged Orientation = 6 (rotate 90 degrees): the pixels as stored, as
    image_transport decodes them; rotated, a 128x96 frame came out 96x128."""
    img = np.repeat(np.repeat(flat_blocks(), 4, axis=0), 6, axis=1)  # (64, 96, 3) blocks
    ok, buf = cv2.imencode('.jpg', img[:, :, ::-1])
    assert ok
    # APP1 'Exif': a big-endian TIFF header, one IFD entry: Orientation (0x0112) SHORT 6
    ifd = struct.pack('>H', 1) + struct.pack('>HHIHH', 0x0112, 3, 1, 6, 0) + b'\0' * 4
    exif = _segment(0xE1, b'Exif\0\0' + b'MM\0*' + struct.pack('>I', 8) + ifd)
    tagged = _with_segments(buf.tobytes(), exif)
    assert cv2.imdecode(np.frombuffer(tagged, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (96, 64)
    out = decode_image(CompressedImage(header(), 'jpeg', np.frombuffer(tagged, np.uint8)))
    assert out.shape == img.shape
    np.testing.assert_allclose(out[8:16, 8:16].astype(int), img[8:16, 8:16].astype(int), atol=8)


def test_a_jpeg_with_megabytes_of_metadata_before_its_frame_header_decodes() -> None:
    """The size check walks every segment to SOFn; it read the first MiB only, and refused
    a valid JPEG with 17 x 64 kB of APP2 (an embedded ICC profile) as corrupt."""
    img = flat_blocks()
    ok, buf = cv2.imencode('.jpg', img[:, :, ::-1])
    assert ok
    icc = [_segment(0xE2, bytes(65000)) for _ in range(17)]
    big = np.frombuffer(_with_segments(buf.tobytes(), *icc), np.uint8)
    assert big.size > 1 << 20
    out = decode_image(CompressedImage(header(), 'jpeg', big))
    np.testing.assert_array_equal(out, decode_image(CompressedImage(header(), 'jpeg', buf)))


def test_compressed_rgb8_suffix_keeps_order() -> None:
    img = flat_blocks()
    ok, buf = cv2.imencode('.png', img)  # written in RGB order, as 'compressed rgb8' says
    assert ok
    msg = CompressedImage(header=header(), format='rgb8; png compressed rgb8', data=buf.ravel())
    np.testing.assert_array_equal(decode_image(msg), img)


@pytest.mark.parametrize(
    ('msg', 'reason', 'text'),
    [
        (Image(header(), 2, 2, '32FC1', 0, 8, np.zeros(16, np.uint8)), 'encoding', '32FC1'),
        (Image(header(), 2, 2, 'rgb8', 0, 6, np.zeros(11, np.uint8)), 'size', 'needs 12'),
        (Image(header(), 2, 2, 'rgb8', 0, 5, np.zeros(12, np.uint8)), 'size', 'step 5'),
        (Image(header(), 0, 2, 'rgb8', 0, 6, np.zeros(0, np.uint8)), 'size', 'empty'),
        (Image(header(), 3, 2, 'nv12', 0, 2, np.zeros(9, np.uint8)), 'size', 'even'),
        (
            Image(header(), 100000, 100000, 'rgb8', 0, 300000, np.zeros(4, np.uint8)),
            'size',
            'exceeds',
        ),
        (CompressedImage(header(), 'jpeg', np.arange(20, dtype=np.uint8)), 'format', 'neither'),
        (
            CompressedImage(header(), 'jpeg', np.frombuffer(b'\x89PNG\r\n\x1a\n' * 3, np.uint8)),
            'format',
            'does not match',
        ),
        (
            CompressedImage(header(), 'png', np.frombuffer(b'\x89PNG\r\n\x1a\n' * 3, np.uint8)),
            'corrupt',
            'could not be decoded',
        ),
        (
            CompressedImage(header(), '16UC1; compressedDepth', np.zeros(4, np.uint8)),
            'format',
            'depth',
        ),
    ],
)
def test_bad_images(msg: Any, reason: str, text: str) -> None:
    with pytest.raises(DecodeError, match=text) as info:
        decode_image(msg, '/camera/image_raw')
    assert info.value.reason == reason
    assert '/camera/image_raw' in str(info.value)


# ---- PointCloud2 -------------------------------------------------------------------------

FMT = {1: 'b', 2: 'B', 3: 'h', 4: 'H', 5: 'i', 6: 'I', 7: 'f', 8: 'd'}
SIZE = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 8: 8}


def pack_cloud(
    points: list[dict[str, float]],
    fields: list[tuple[str, int, int]],  # (name, datatype, offset)
    point_step: int,
    width: int,
    height: int,
    row_pad: int,
    big: bool,
) -> Any:
    """Build a PointCloud2 point by point with ``struct`` (independent of the decoder)."""
    order = '>' if big else '<'
    row_step = width * point_step + row_pad
    buf = bytearray(b'\xcd' * (row_step * height))
    for k, p in enumerate(points):
        r, c = divmod(k, width)
        base = r * row_step + c * point_step
        for name, datatype, offset in fields:
            struct.pack_into(order + FMT[datatype], buf, base + offset, p[name])
    return PointCloud2(
        header=header(),
        height=height,
        width=width,
        fields=[PointField(name=n, offset=o, datatype=d, count=1) for n, d, o in fields],
        is_bigendian=big,
        point_step=point_step,
        row_step=row_step,
        data=np.frombuffer(bytes(buf), np.uint8),
        is_dense=False,
    )


@st.composite
def cloud_case(draw: Any) -> Any:
    xyz_type = draw(st.sampled_from([7, 8]))
    extra = draw(st.sampled_from([None, 'intensity', 'i', 'reflectivity']))
    ring = draw(st.sampled_from([None, 'ring', 'line']))
    names = [('x', xyz_type), ('y', xyz_type), ('z', xyz_type)]
    if extra:
        names.append((extra, draw(st.sampled_from([2, 4, 7, 8]))))
    if ring:
        names.append((ring, draw(st.sampled_from([2, 4, 6]))))
    names.append(('junk', draw(st.sampled_from([1, 5]))))
    order = draw(st.permutations(names))
    fields, offset = [], 0
    for name, datatype in order:
        offset += draw(st.integers(0, 3))  # padding before the field
        fields.append((name, datatype, offset))
        offset += SIZE[datatype]
    point_step = offset + draw(st.integers(0, 5))
    height = draw(st.integers(1, 3))
    width = draw(st.integers(1, 5))
    n = width * height
    coord = st.floats(-50, 50, allow_nan=False, width=32)
    pts = []
    for _ in range(n):
        p = {name: draw(coord) for name in ('x', 'y', 'z')}
        if draw(st.booleans()) and draw(st.booleans()):
            p[draw(st.sampled_from(['x', 'y', 'z']))] = draw(st.sampled_from([np.nan, np.inf]))
        if extra:
            p[extra] = draw(st.integers(0, 255))
        if ring:
            p[ring] = draw(st.integers(0, 15))
        p['junk'] = 1
        pts.append(p)
    return pts, fields, point_step, width, height, draw(st.integers(0, 7)), draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(cloud_case())
def test_pointcloud2_any_layout(case: Any) -> None:
    pts, fields, point_step, width, height, row_pad, big = case
    msg = pack_cloud(pts, fields, point_step, width, height, row_pad, big)
    out = decode_pointcloud2(msg, '/lidar/points')
    names = {n for n, _, _ in fields}
    finite = [p for p in pts if all(np.isfinite(p[a]) for a in 'xyz')]
    assert len(out) == len(finite)
    expected = np.array([[p['x'], p['y'], p['z']] for p in finite], np.float32).reshape(-1, 3)
    np.testing.assert_array_equal(out.xyz, expected)
    assert out.xyz.dtype == np.float32
    inten = next((n for n in ('intensity', 'i', 'reflectivity') if n in names), None)
    ring = next((n for n in ('ring', 'line') if n in names), None)
    if inten:
        assert out.intensity is not None
        np.testing.assert_array_equal(out.intensity, [p[inten] for p in finite])
    else:
        assert out.intensity is None
    if ring:
        assert out.ring is not None
        np.testing.assert_array_equal(out.ring, [p[ring] for p in finite])
    else:
        assert out.ring is None


def test_velodyne_layout_from_contract() -> None:
    """The simulator's VLP-16 layout: x,y,z,intensity f32 @0..12, ring u16 @16, time f32 @18."""
    fields = [('x', 7, 0), ('y', 7, 4), ('z', 7, 8), ('intensity', 7, 12), ('ring', 4, 16)]
    fields.append(('time', 7, 18))
    pts = [
        {'x': 1.0, 'y': 2.0, 'z': 3.0, 'intensity': 40.0, 'ring': 3, 'time': 0.01},
        {'x': -1.5, 'y': 0.25, 'z': -0.5, 'intensity': 7.0, 'ring': 15, 'time': 0.02},
    ]
    out = decode_pointcloud2(pack_cloud(pts, fields, 22, 2, 1, 0, False))
    np.testing.assert_array_equal(out.xyz, [[1, 2, 3], [-1.5, 0.25, -0.5]])
    np.testing.assert_array_equal(out.intensity, [40, 7])
    np.testing.assert_array_equal(out.ring, [3, 15])


def test_strided_data_arrays_decode_like_contiguous_ones(rgb: np.ndarray) -> None:
    """A message built in code may hold a strided uint8 view as ``data`` (review 10, 5)."""
    fields = [('x', 7, 0), ('y', 7, 4), ('z', 7, 8), ('intensity', 7, 12), ('ring', 4, 16)]
    pts = [{'x': 1.0 + k, 'y': -2.0, 'z': 0.5 * k, 'intensity': 3.0, 'ring': k} for k in range(5)]
    cloud = pack_cloud(pts, fields, 18, 5, 1, 0, False)
    image = typestore().types['sensor_msgs/msg/Image'](
        header=cloud.header, height=6, width=10, encoding='rgb8', is_bigendian=0, step=30,
        data=rgb.reshape(-1),
    )  # fmt: skip
    expected = (decode_pointcloud2(cloud), decode_image(image))
    for msg in (cloud, image):
        spread = np.zeros(2 * msg.data.size, np.uint8)
        spread[::2] = msg.data
        msg.data = spread[::2]  # the same bytes, every other one of a bigger buffer
        assert not msg.data.flags.c_contiguous
    points, pixels = decode_pointcloud2(cloud), decode_image(image)
    np.testing.assert_array_equal(points.xyz, expected[0].xyz)
    np.testing.assert_array_equal(points.ring, expected[0].ring)
    np.testing.assert_array_equal(pixels, expected[1])


def test_non_finite_intensity_reads_as_zero() -> None:
    """A valid point with a NaN / inf intensity is kept, its intensity 0 (a NaN in the range
    image would make every model output NaN)."""
    fields = [('x', 7, 0), ('y', 7, 4), ('z', 7, 8), ('intensity', 7, 12)]
    pts = [
        {'x': 1.0, 'y': 2.0, 'z': 3.0, 'intensity': float('nan')},
        {'x': 2.0, 'y': 0.5, 'z': 0.0, 'intensity': float('inf')},
        {'x': -1.0, 'y': 1.0, 'z': 0.5, 'intensity': 9.0},
    ]
    out = decode_pointcloud2(pack_cloud(pts, fields, 16, 3, 1, 0, False))
    assert len(out) == 3
    np.testing.assert_array_equal(out.intensity, [0.0, 0.0, 9.0])


def test_empty_cloud() -> None:
    msg = pack_cloud([], [('x', 7, 0), ('y', 7, 4), ('z', 7, 8)], 12, 0, 1, 0, False)
    assert len(decode_pointcloud2(msg)) == 0
    bare = pack_cloud([], [], 0, 0, 1, 0, False)  # no returns, no fields, point_step 0
    assert len(decode_pointcloud2(bare)) == 0


XZ = PointField('z', 8, 7, 1)


def cloud(**over: Any) -> Any:
    base = pack_cloud(
        [{'x': 1.0, 'y': 2.0, 'z': 3.0}] * 4,
        [('x', 7, 0), ('y', 7, 4), ('z', 7, 8)],
        12,
        4,
        1,
        0,
        False,
    )
    for k, v in over.items():
        setattr(base, k, v)
    return base


@pytest.mark.parametrize(
    ('over', 'field', 'text'),
    [
        ({'fields': [PointField('x', 0, 7, 1), PointField('y', 4, 7, 1)]}, 'fields', "lack 'z'"),
        ({'point_step': 0}, 'point_step', 'positive'),
        ({'point_step': 10}, 'fields.z', 'overruns'),
        ({'row_step': 20}, 'row_step', 'row_step 20'),
        ({'data': np.zeros(47, np.uint8)}, 'data', 'need 48'),
        ({'width': 10**9}, 'height/width', 'not valid'),
        (
            {
                'fields': [
                    PointField('x', 0, 9, 1),
                    PointField('y', 4, 7, 1),
                    PointField('z', 8, 7, 1),
                ]
            },
            'fields.x',
            'datatype 9',
        ),
    ],
)
def test_bad_clouds(over: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(DecodeError, match=text) as info:
        decode_pointcloud2(cloud(**over), '/lidar/points')
    assert info.value.field == field
    assert "'/lidar/points'" in str(info.value)


# ---- LaserScan ---------------------------------------------------------------------------


def test_laserscan_geometry() -> None:
    ranges = np.array([1.0, np.nan, 2.0, 0.01, 50.0, np.inf, 3.0], np.float32)
    inten = np.arange(7, dtype=np.float32)
    msg = LaserScan(
        header=header(),
        angle_min=-np.pi / 2,
        angle_max=np.pi / 2,
        angle_increment=np.pi / 6,
        time_increment=0.0,
        scan_time=0.1,
        range_min=0.1,
        range_max=30.0,
        ranges=ranges,
        intensities=inten,
    )
    out = decode_laserscan(msg)
    keep = [0, 2, 6]
    angles = -np.pi / 2 + np.array(keep) * np.pi / 6
    r = ranges[keep]
    expected = np.stack([r * np.cos(angles), r * np.sin(angles), np.zeros(3)], 1)
    np.testing.assert_allclose(out.xyz, expected, atol=1e-6)
    np.testing.assert_array_equal(out.intensity, inten[keep])
    assert out.ring is None
    msg.intensities = np.where(np.arange(7) == 2, np.nan, inten).astype(np.float32)
    np.testing.assert_array_equal(decode_laserscan(msg).intensity, [0.0, 0.0, 6.0])


def test_laserscan_keeps_ranges_equal_to_range_min_and_range_max() -> None:
    """REP 117: only readings below range_min or above range_max are invalid; the limits
    themselves are measurements (float32 neighbours just outside are dropped)."""
    lo, hi = np.float32(0.5), np.float32(30.0)
    below, above = np.nextafter(lo, np.float32(0)), np.nextafter(hi, np.float32(np.inf))
    ranges = np.array([lo, hi, below, above, 5.0], np.float32)
    msg = LaserScan(
        header=header(),
        angle_min=0.0,
        angle_max=0.4,
        angle_increment=0.1,
        time_increment=0.0,
        scan_time=0.1,
        range_min=float(lo),
        range_max=float(hi),
        ranges=ranges,
        intensities=np.zeros(0, np.float32),
    )
    out = decode_laserscan(msg)
    np.testing.assert_allclose(np.linalg.norm(out.xyz, axis=1), [0.5, 30.0, 5.0], rtol=1e-6)


def test_laserscan_bad() -> None:
    msg = LaserScan(header(), 0.0, 1.0, 0.0, 0.0, 0.1, 0.1, 10.0, np.ones(3, np.float32), [])
    with pytest.raises(DecodeError, match='angle_increment'):
        decode_laserscan(msg, '/scan')
    msg = LaserScan(
        header(),
        0.0,
        1.0,
        0.1,
        0.0,
        0.1,
        0.1,
        10.0,
        np.ones(3, np.float32),
        np.ones(2, np.float32),
    )
    with pytest.raises(DecodeError, match='2 intensities for 3 ranges'):
        decode_laserscan(msg, '/scan')
    # angles that overflow: the points would be NaN (Points holds finite points only)
    msg = LaserScan(
        header(), 0.0, 1.0, 1e308, 0.0, 0.1, 0.1, 10.0, np.full(3, 5.0, np.float32), []
    )
    with pytest.raises(DecodeError, match='overflows'):
        decode_laserscan(msg, '/scan')
