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

"""Shared preprocessing: analytic expectations for the image and the LiDAR range image."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dmil_ros.errors import ConfigError
from dmil_ros.runtime import preprocess
from dmil_ros.runtime.preprocess import Points, PreprocessSpec, prepare_image, prepare_points

SPEC = PreprocessSpec()


def cell_centre(row: float, col: int, rng: float, spec: PreprocessSpec = SPEC) -> np.ndarray:
    """A point at the centre of range-image cell (row, col), ``rng`` metres away."""
    azimuth = (col + 0.5) * 2 * np.pi / spec.azimuth_bins - np.pi
    lo, hi = np.deg2rad(spec.vertical_fov_deg)
    elevation = lo + row * (hi - lo) / (spec.beams - 1)
    return rng * np.array(
        [
            np.cos(elevation) * np.cos(azimuth),
            np.cos(elevation) * np.sin(azimuth),
            np.sin(elevation),
        ],
        np.float32,
    )


def test_uniform_image_standardises_to_a_constant() -> None:
    rgb = np.empty((96, 128, 3), np.uint8)
    rgb[...] = (255, 128, 0)
    out = prepare_image(rgb, SPEC)
    assert out.shape == SPEC.image_shape
    assert out.dtype == np.float32
    expected = (np.array([255, 128, 0]) / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(out.reshape(3, -1).mean(axis=1), expected, atol=1e-6)
    np.testing.assert_allclose(out.reshape(3, -1).std(axis=1), 0.0, atol=1e-6)


def test_downscale_averages_blocks() -> None:
    """INTER_AREA at an exact factor of 2 is the mean of each 2x2 block."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    out = prepare_image(rgb, SPEC)  # (3, 48, 64)
    blocks = rgb.reshape(48, 2, 64, 2, 3).astype(np.float64).mean(axis=(1, 3))  # (48, 64, 3)
    expected = (blocks / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(out.transpose(1, 2, 0), expected, atol=2 / 255 / 0.25)


def test_channel_order_is_rgb_first() -> None:
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0] = 255
    out = prepare_image(rgb, SPEC)
    assert out[0].min() > out[1].max()


def test_points_land_in_their_cell_with_range_and_intensity() -> None:
    xyz = np.stack([cell_centre(3, 10, 4.0), cell_centre(12, 170, 8.0)])
    pts = Points(xyz=xyz, intensity=np.array([100.0, 200.0], np.float32))
    img = prepare_points(pts, SPEC)
    assert img.shape == SPEC.lidar_shape
    assert img[0, 3, 10] == pytest.approx(4.0 / SPEC.max_range, rel=1e-5)
    assert img[0, 12, 170] == pytest.approx(8.0 / SPEC.max_range, rel=1e-5)
    assert img[1, 3, 10] == pytest.approx(100.0 / 255.0, rel=1e-5)
    assert img[1, 12, 170] == pytest.approx(200.0 / 255.0, rel=1e-5)
    assert np.count_nonzero(img[0]) == 2


def test_a_return_straight_behind_lands_in_the_last_column_of_its_row() -> None:
    """Azimuth +pi (x < 0, y = +0) maps to column ``azimuth_bins``, one past the end: it is
    clamped into the last column of its own row, not wrapped into the next row's first."""
    img = prepare_points(Points(np.array([[-5.0, 0.0, 0.0]], np.float32)), SPEC)
    lo, hi = SPEC.vertical_fov_deg
    row = round((0.0 - lo) / (hi - lo) * (SPEC.beams - 1))  # elevation 0: row 7.5 -> 8
    rows, cols = np.nonzero(img[0])
    assert (rows.tolist(), cols.tolist()) == ([row], [SPEC.azimuth_bins - 1])
    assert img[0, row, -1] == pytest.approx(5.0 / SPEC.max_range)


def test_ring_field_sets_the_row() -> None:
    # elevation says row 7 (6.6 rounded) ... the driver says 6, within one row, so 6 (beside a
    # ring-0 return lower down: one ring alone names no rows)
    xyz = np.stack([cell_centre(6.6, 90, 5.0), cell_centre(0, 20, 5.0)])
    pts = Points(xyz=xyz, intensity=None, ring=np.array([6, 0], np.int32))
    img = prepare_points(pts, SPEC)
    assert img[0, 6, 90] > 0
    assert img[0, 7, 90] == 0
    assert prepare_points(Points(xyz=xyz), SPEC)[0, 7, 90] > 0  # the premise


def test_nearest_return_wins_the_cell_with_its_intensity() -> None:
    xyz = np.stack([cell_centre(5, 40, r) for r in (9.0, 3.0, 6.0)])
    pts = Points(xyz=xyz, intensity=np.array([10.0, 20.0, 30.0], np.float32))
    img = prepare_points(pts, SPEC)
    assert img[0, 5, 40] == pytest.approx(3.0 / SPEC.max_range, rel=1e-5)
    assert img[1, 5, 40] == pytest.approx(20.0 / 255.0, rel=1e-5)


def test_out_of_range_and_out_of_fov_points_are_dropped() -> None:
    far = cell_centre(5, 40, SPEC.max_range * 1.5)
    steep = np.array([0.1, 0.0, 5.0], np.float32)  # ~88 degrees up, outside +-15
    img = prepare_points(Points(xyz=np.stack([far, steep])), SPEC)
    assert not img.any()


def test_empty_cloud_gives_zeros() -> None:
    img = prepare_points(Points(xyz=np.zeros((0, 3), np.float32)), SPEC)
    assert img.shape == SPEC.lidar_shape
    assert not img.any()


def test_float64_points_give_the_float32_result() -> None:
    """Decoders hand over float32; a float64 cloud from other code is cast, not misread."""
    xyz = np.stack([cell_centre(r, c, d) for r, c, d in ((5, 40, 9.0), (5, 40, 3.0), (2, 7, 4.0))])
    ring = np.array([5, 5, 2], np.int64)
    wide = Points(xyz=xyz.astype(np.float64), intensity=np.ones(3, np.float32), ring=ring)
    narrow = Points(xyz=xyz, intensity=np.ones(3, np.float32), ring=ring)
    np.testing.assert_array_equal(prepare_points(wide, SPEC), prepare_points(narrow, SPEC))
    assert np.count_nonzero(prepare_points(wide, SPEC)[0]) == 2


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 15), st.integers(0, 179), st.floats(0.5, 19.0)),
        min_size=1,
        max_size=40,
    )
)
def test_every_cell_holds_its_minimum_range(cells: list[tuple[int, int, float]]) -> None:
    xyz = np.stack([cell_centre(r, c, d) for r, c, d in cells])
    img = prepare_points(Points(xyz=xyz, intensity=np.ones(len(cells), np.float32)), SPEC)
    expected: dict[tuple[int, int], float] = {}
    for r, c, d in cells:
        expected[r, c] = min(d, expected.get((r, c), np.inf))
    assert np.count_nonzero(img[0]) == len(expected)
    for (r, c), d in expected.items():
        assert img[0, r, c] == pytest.approx(d / SPEC.max_range, rel=1e-4)


def test_spec_json_round_trip_and_validation() -> None:
    spec = PreprocessSpec(image_width=32, azimuth_bins=90)
    assert PreprocessSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ConfigError, match='unknown keys'):
        PreprocessSpec.from_json('{"image_widht": 3}')
    with pytest.raises(ConfigError, match='max_range'):
        PreprocessSpec(max_range=0.0)
    with pytest.raises(ConfigError, match='image_width'):
        PreprocessSpec(image_width=100_000)  # would size a 100k-wide buffer per frame
    with pytest.raises(ConfigError, match='azimuth_bins'):
        PreprocessSpec.from_json('{"azimuth_bins": 1000000000}')
    with pytest.raises(ConfigError, match='not JSON'):
        PreprocessSpec.from_json('{')


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ('{"image_width": "64"}', "image_width='64' is not an integer"),
        ('{"beams": 16.5}', 'beams=16.5 is not an integer'),
        ('{"azimuth_bins": true}', 'azimuth_bins=True is not an integer'),
        ('{"max_range": "20"}', "max_range='20' is not a number"),
        ('{"image_mean": 5}', 'image_mean=5 is not a list of numbers'),
        ('{"image_mean": [0.5, NaN, 0.5]}', r'image_mean=\(0.5, nan, 0.5\) is not valid'),
        ('{"image_std": [0.2, Infinity, 0.2]}', 'image_std=.* is not valid'),
        ('{"vertical_fov_deg": [-15, NaN]}', 'vertical_fov_deg=.* is not valid'),
        ('{"extra": [1]}', r'extra=\[1\] is not an object'),
    ],
)
def test_spec_from_model_metadata_refuses_wrong_types_by_name(text: str, message: str) -> None:
    # a model's metadata is untrusted text: each bad value is a ConfigError naming it, never a
    # TypeError from deep in numpy, and never a NaN that makes every frame non-finite
    with pytest.raises(ConfigError, match=message):
        PreprocessSpec.from_json(text)


def test_spec_takes_integral_floats_as_integers() -> None:
    spec = PreprocessSpec.from_json('{"image_width": 64.0, "beams": 16.0}')
    assert (spec.image_width, spec.beams) == (64, 16)
    assert isinstance(spec.image_width, int)
    assert spec == PreprocessSpec()


def test_spec_sequences_become_tuples_and_bad_ones_are_refused() -> None:
    mean, std = [0.4, 0.5, 0.6], np.array([0.2, 0.3, 0.25])
    listed = PreprocessSpec(image_mean=mean, image_std=std)  # type: ignore[arg-type]
    assert listed.image_mean == (0.4, 0.5, 0.6)
    assert listed.image_std == (0.2, 0.3, 0.25)
    rgb = np.full((48, 64, 3), 204, np.uint8)  # 0.8 after scaling
    img = prepare_image(rgb, listed)
    np.testing.assert_allclose(img[:, 0, 0], [2.0, 1.0, 0.8], rtol=1e-5)
    for bad in ({'image_mean': ['a', 'b', 'c']}, {'vertical_fov_deg': (1.0, 2.0, 3.0)}):
        with pytest.raises(ConfigError):
            PreprocessSpec(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize('blob', [True, False], ids=['opencv', 'numpy'])
def test_per_channel_standardisation_follows_the_formula(
    blob: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(x / 255 - mean) / std per channel, RGB order kept, on both paths of prepare_image."""
    spec = PreprocessSpec(image_mean=(0.4, 0.5, 0.6), image_std=(0.2, 0.3, 0.25))
    if blob and preprocess._blob_params(spec.image_mean, spec.image_std, 64, 48) is None:
        pytest.skip('this OpenCV has no blobFromImageWithParams')
    if not blob:
        monkeypatch.setattr(preprocess, '_blob_params', lambda *args: None)
    rgb = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = prepare_image(rgb, spec)
    assert out.shape == spec.image_shape
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    expected = (rgb / 255.0 - spec.image_mean) / spec.image_std  # (h, w, 3)
    np.testing.assert_allclose(out, expected.transpose(2, 0, 1), rtol=0, atol=1e-5)


@pytest.mark.parametrize('shape', [(48, 64, 3), (96, 128, 3), (480, 640, 3), (50, 70, 3)])
def test_opencv_blob_and_numpy_fallback_agree(
    shape: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenCV >= 4.8 standardises in blobFromImageWithParams; older ones (Debian's python3-opencv
    on Humble and Jazzy) take the numpy per-plane affine. Both give the same model input, from
    any input size and memory layout."""
    spec = PreprocessSpec(image_mean=(0.4, 0.5, 0.6), image_std=(0.2, 0.3, 0.25))
    if preprocess._blob_params(spec.image_mean, spec.image_std, 64, 48) is None:
        pytest.skip('this OpenCV has no blobFromImageWithParams')
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    strided = np.repeat(rgb, 2, axis=1)[:, ::2]  # the same pixels, not C-contiguous
    with_blob = prepare_image(strided, spec)
    monkeypatch.setattr(preprocess, '_blob_params', lambda *args: None)
    with_numpy = prepare_image(rgb, spec)
    assert with_blob.shape == with_numpy.shape == spec.image_shape
    np.testing.assert_allclose(with_blob, with_numpy, rtol=0, atol=1e-6)


def test_image_of_the_wrong_shape_is_named() -> None:
    with pytest.raises(ValueError, match=r'\(48, 64\)'):
        prepare_image(np.zeros((48, 64), np.uint8), SPEC)


def test_float_ring_values_set_the_row() -> None:
    xyz = np.stack([cell_centre(7.4, 10, 5.0), cell_centre(0, 20, 5.0)])
    as_float = prepare_points(Points(xyz=xyz, ring=np.array([8.0, 0.0], np.float32)), SPEC)
    as_int = prepare_points(Points(xyz=xyz, ring=np.array([8, 0], np.int32)), SPEC)
    np.testing.assert_array_equal(as_float, as_int)
    assert as_int[0, 8, 10] > 0  # the ring's row, not the elevation's 7


def reference_range_image(points: Points, spec: PreprocessSpec) -> np.ndarray:
    """The range image point by point: the spec's float32 formulas, the first nearest wins."""
    out = np.zeros(spec.lidar_shape, np.float32)
    best: dict[tuple[int, int], tuple[np.float32, int]] = {}
    for i, (x, y, z) in enumerate(np.asarray(points.xyz, np.float32)):
        rng = np.sqrt(x * x + y * y + z * z)
        azimuth = (np.arctan2(y, x) + np.float32(np.pi)) * np.float32(
            spec.azimuth_bins / (2 * np.pi)
        )
        col = min(int(azimuth), spec.azimuth_bins - 1)
        row = int(points.ring[i])  # type: ignore[index]
        if not (0 <= row < spec.beams and 0 < rng <= spec.max_range):
            continue
        if (row, col) not in best or rng < best[row, col][0]:
            best[row, col] = (rng, i)
    for (row, col), (rng, i) in best.items():
        out[0, row, col] = rng / np.float32(spec.max_range)
        if points.intensity is not None:
            out[1, row, col] = points.intensity[i] * np.float32(spec.intensity_scale)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-3, SPEC.beams - 1),  # ring, below the image too (above: see below)
            st.integers(0, 179),
            st.sampled_from([0.0, 0.7, 3.0, 3.0, 12.5, SPEC.max_range, 25.0]),  # ties, 0, far
            st.floats(0.0, 255.0, width=32),
        ),
        min_size=1,
        max_size=60,
    ),
    st.booleans(),
)
def test_range_image_matches_a_point_by_point_reference(
    cells: list[tuple[int, int, float, float]], c_ordered: bool
) -> None:
    """Bit-exact against the loop: nearest return, first of equals, rows and ranges outside
    the image dropped, for decoder-style (F-ordered) and plain C-ordered coordinates."""
    # two rings among the returns at least: a single ring gives no rows (elevation instead)
    assume(len({r for r, _, d, _ in cells if d > 0}) >= 2)
    # each point 0.6 rows above its ring's row: the ring names the row (within one), the
    # elevation another
    xyz = np.stack([cell_centre(r + 0.6, c, d) for r, c, d, _ in cells])
    if not c_ordered:
        xyz = np.asfortranarray(xyz)
    ring = np.array([r for r, _, _, _ in cells], np.int32)
    intensity = np.array([i for _, _, _, i in cells], np.float32)
    pts = Points(xyz=xyz, intensity=intensity, ring=ring)
    np.testing.assert_array_equal(prepare_points(pts, SPEC), reference_range_image(pts, SPEC))


def sweep(
    beams: int,
    *,
    top_first: bool = False,
    tilt_deg: float = 0.0,
    field_deg: tuple[float, float] = SPEC.vertical_fov_deg,
) -> Points:
    """A spinning LiDAR's sweep over ``field_deg`` (the spec's vertical field), ``beams``
    rings, 2 degrees of azimuth apart; the upper half 10 m away, the lower half 5 m; pitched by
    ``tilt_deg``."""
    lo, hi = field_deg
    elevation = np.deg2rad(np.linspace(lo, hi, beams))  # ring 0 the lowest ...
    ring = np.arange(beams)[::-1] if top_first else np.arange(beams)  # ... or the highest
    azimuth = np.deg2rad(np.arange(-179.0, 180.0, 2.0))
    e, a = np.meshgrid(elevation, azimuth, indexing='ij')  # (beams, A)
    r = np.where(e > 0, 10.0, 5.0)
    xyz = np.stack([r * np.cos(e) * np.cos(a), r * np.cos(e) * np.sin(a), r * np.sin(e)], -1)
    t = np.deg2rad(tilt_deg)  # pitch about y
    pitch = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    xyz = xyz.reshape(-1, 3) @ pitch.T
    rings = np.repeat(ring, azimuth.size).astype(np.int32)
    return Points(xyz=xyz.astype(np.float32), intensity=None, ring=rings)


@pytest.mark.parametrize(
    ('beams', 'top_first', 'why'),
    [
        (16, True, 'ring 0 is above ring 15 (numbered from the top)'),
        (64, True, 'ring values reach 16 or more, the model has 16 rows'),
        (32, False, 'ring values reach 16 or more, the model has 16 rows'),
    ],
)
def test_a_ring_numbered_otherwise_gives_the_rows_of_the_elevation(
    beams: int, top_first: bool, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An Ouster-style ring (0 = top beam) or more rings than rows: the image of the same
    points without a ring, i.e. row 0 at the bottom of the field and no return dropped (with
    the ring, a 64-beam sweep lost 3/4 of its returns and the rest came out upside down)."""
    preprocess._WARNED.clear()
    points = sweep(beams, top_first=top_first)
    with caplog.at_level('WARNING', logger='dmil_ros'):
        got = prepare_points(points, SPEC)
        prepare_points(points, SPEC)  # said once
    want = prepare_points(Points(xyz=points.xyz), SPEC)
    np.testing.assert_array_equal(got, want)
    assert np.count_nonzero(got[0]) == SPEC.beams * 180  # every cell, none dropped
    np.testing.assert_allclose(got[0, 0][got[0, 0] > 0], 5.0 / SPEC.max_range, rtol=1e-5)
    np.testing.assert_allclose(got[0, -1][got[0, -1] > 0], 10.0 / SPEC.max_range, rtol=1e-5)
    assert [r.getMessage() for r in caplog.records] == [
        f'LiDAR range image rows from the elevation, not the ring field: {why}'
    ]


@pytest.mark.parametrize(
    ('beams', 'field', 'why'),
    [
        (8, (-15.0, 15.0), "rings 0 and 7 lie 30.0 degrees apart, the model's rows 0 and 7 14.0"),
        (4, (-3.75, 3.75), 'ring 0 lies at -3.7 degrees, row 0 of the model at -15.0'),
    ],
)
def test_fewer_rings_than_rows_keep_their_elevation(
    beams: int, field: tuple[float, float], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An 8-beam sensor over the model's field, or a 4-layer scanner around the horizon: ring
    as row put them in the bottom rows (the 8-beam's top beam read as -1 degree, the scanner
    as looking 10 degrees down), silently. Now each return lands in its elevation's row."""
    preprocess._WARNED.clear()
    points = sweep(beams, field_deg=field)
    with caplog.at_level('WARNING', logger='dmil_ros'):
        got = prepare_points(points, SPEC)
    np.testing.assert_array_equal(got, prepare_points(Points(xyz=points.xyz), SPEC))
    lo, hi = SPEC.vertical_fov_deg
    rows = np.rint((np.linspace(*field, beams) - lo) / (hi - lo) * (SPEC.beams - 1))
    assert sorted(set(np.flatnonzero(got[0].any(axis=1)))) == sorted(set(rows.astype(int)))
    assert [r.getMessage() for r in caplog.records] == [
        f'LiDAR range image rows from the elevation, not the ring field: {why}'
    ]


def test_rings_spaced_more_than_a_row_off_the_rows_give_the_elevation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """16 rings over 27 degrees: ring 15 lies 13.5 rows of the model's 2-degree step above
    ring 0, 1.5 rows short of the 15 between rows 0 and 15 (check 3 allows one). Taken as the
    rows, the beams would be stretched over the image; each return lands in its elevation's
    row instead."""
    preprocess._WARNED.clear()
    points = sweep(16, field_deg=(-13.5, 13.5))
    with caplog.at_level('WARNING', logger='dmil_ros'):
        got = prepare_points(points, SPEC)
    np.testing.assert_array_equal(got, prepare_points(Points(xyz=points.xyz), SPEC))
    lo, hi = SPEC.vertical_fov_deg
    rows = np.rint((np.linspace(-13.5, 13.5, 16) - lo) / (hi - lo) * (SPEC.beams - 1))
    assert sorted(set(np.flatnonzero(got[0].any(axis=1)))) == sorted(set(rows.astype(int)))
    why = "rings 0 and 15 lie 27.0 degrees apart, the model's rows 0 and 15 30.0"
    assert [r.getMessage() for r in caplog.records] == [
        f'LiDAR range image rows from the elevation, not the ring field: {why}'
    ]


def test_a_bottom_up_ring_keeps_setting_the_rows_of_a_tilted_sensor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A VLP-16 pitched 5 degrees: the ring still names the row (elevation binning would smear
    the beams across rows), and nothing is logged."""
    points = sweep(16, tilt_deg=5.0)
    with caplog.at_level('WARNING', logger='dmil_ros'):
        got = prepare_points(points, SPEC)
    assert not caplog.records
    by_elevation = prepare_points(Points(xyz=points.xyz), SPEC)
    assert not np.array_equal(got, by_elevation)
    assert np.count_nonzero(got[0]) > 0.99 * 16 * 180  # the pitch moves a few azimuths
    np.testing.assert_allclose(got[0, :8][got[0, :8] > 0], 5.0 / SPEC.max_range, rtol=1e-5)
    np.testing.assert_allclose(got[0, 8:][got[0, 8:] > 0], 10.0 / SPEC.max_range, rtol=1e-5)


def test_a_top_ring_without_returns_does_not_hide_the_numbering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An Ouster's ring 0 looks up: its first point often has no return (the sky). The order
    check used that point, found no range and kept the ring: the image came out upside down."""
    preprocess._WARNED.clear()
    points = sweep(16, top_first=True)
    xyz = points.xyz.copy()
    xyz[int(np.argmax(points.ring == 0))] = 0.0  # ring 0's first point (top beam): no return
    sky = Points(xyz=xyz, intensity=None, ring=points.ring)
    with caplog.at_level('WARNING', logger='dmil_ros'):
        got = prepare_points(sky, SPEC)
    np.testing.assert_array_equal(got, prepare_points(Points(xyz=xyz), SPEC))
    assert any('numbered from the top' in r.getMessage() for r in caplog.records)
    # the numbers in the reason vary by sweep: said once all the same
    caplog.clear()
    with caplog.at_level('WARNING', logger='dmil_ros'):
        prepare_points(Points(xyz=points.xyz[180:], intensity=None, ring=points.ring[180:]), SPEC)
    assert not caplog.records


def test_one_ring_for_every_return_gives_the_rows_of_the_elevation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A driver that leaves the ring field at 0 (or a planar sensor that fills it): the ring
    names no rows. With it, the whole 3-D sweep was squashed into row 0, silently."""
    preprocess._WARNED.clear()
    points = sweep(16)
    unset = Points(xyz=points.xyz, ring=np.zeros_like(points.ring))
    with caplog.at_level('WARNING', logger='dmil_ros'):
        got = prepare_points(unset, SPEC)
    np.testing.assert_array_equal(got, prepare_points(points, SPEC))  # the VLP-16's own rows
    assert [r.getMessage() for r in caplog.records] == [
        'LiDAR range image rows from the elevation, not the ring field: every return has ring 0'
    ]


def livox_sweep(rng: np.random.Generator, n: int = 2000) -> Points:
    """A Livox Avia-like sweep as livox_ros_driver2 publishes it: a rosette over +-38.4 degrees
    of elevation and +-35 of azimuth, and its ``line`` field (the laser, 0-5, cycling along the
    points; the decoder's ring) no elevation row at all."""
    elevation = np.deg2rad(rng.uniform(-38.4, 38.4, n))
    azimuth = np.deg2rad(rng.uniform(-35.0, 35.0, n))
    r = rng.uniform(2.0, 15.0, n)
    xyz = np.stack(
        [
            r * np.cos(elevation) * np.cos(azimuth),
            r * np.cos(elevation) * np.sin(azimuth),
            r * np.sin(elevation),
        ],
        axis=1,
    )
    line = (np.arange(n) % 6).astype(np.int32)
    return Points(xyz=xyz.astype(np.float32), intensity=None, ring=line)


def test_a_line_index_is_never_taken_for_the_row_and_a_tilted_ring_always_is() -> None:
    """The two returns checks 1-4 look at let a Livox ``line`` through in about 1 sweep of
    250 (rows 0-5 = line instead of the elevations' 0-15), so the rows flipped from sweep to
    sweep. Over 1000 sweeps none is built from the line now; the ring of a VLP-16 in firing
    order (the returns checked at many azimuths), pitched 5 or rolled 20 degrees, still names
    every row."""
    rng = np.random.default_rng(1)
    taken = 0
    for _ in range(1000):
        sweep_ = livox_sweep(rng)
        by_elevation = prepare_points(Points(xyz=sweep_.xyz), SPEC)
        taken += not np.array_equal(prepare_points(sweep_, SPEC), by_elevation)
    assert taken == 0
    for tilt, roll in ((5.0, False), (20.0, True)):
        points = sweep(16, tilt_deg=tilt)
        firing = np.arange(len(points)).reshape(16, -1).T.reshape(-1)  # azimuth by azimuth
        xyz = points.xyz[firing]
        if roll:  # the pitch turned 90 degrees about z
            xyz = np.stack([xyz[:, 1], -xyz[:, 0], xyz[:, 2]], axis=1)
        ring = points.ring[firing]  # type: ignore[index]
        got = prepare_points(Points(xyz=xyz, ring=ring), SPEC)
        want = np.zeros_like(got)  # each return in its ring's row: cells from the loop
        for (x, y, z), row in zip(xyz.astype(np.float64), ring, strict=True):
            col = min(int((np.arctan2(y, x) + np.pi) * SPEC.azimuth_bins / (2 * np.pi)), 179)
            d = np.sqrt(x * x + y * y + z * z) / SPEC.max_range
            if want[0, row, col] == 0 or d < want[0, row, col]:
                want[0, row, col] = d
        np.testing.assert_allclose(got, want, rtol=1e-5)


def _spinning(
    elevations_deg: npt.ArrayLike, rng: np.random.Generator, *, pitch_deg: float = 0.0
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """A spinning LiDAR's sweep in firing order (ring fastest), 10% of returns dropped at
    random, ranges 1-30 m; ``(ring, xyz as (3, N), range)`` as ``_ring_mismatch`` takes them."""
    el = np.deg2rad(np.asarray(elevations_deg, np.float64))  # (R,)
    az = np.deg2rad(np.linspace(-180.0, 180.0, int(rng.integers(850, 950)), endpoint=False))
    e, a = (m.reshape(-1) for m in np.meshgrid(el, az, indexing='xy'))  # (A * R,)
    ring = np.tile(np.arange(el.size), az.size).astype(np.int32)
    d = rng.uniform(1.0, 30.0, e.size)
    xyz = np.stack([d * np.cos(e) * np.cos(a), d * np.cos(e) * np.sin(a), d * np.sin(e)], 1)
    t = np.deg2rad(pitch_deg)
    xyz = xyz @ np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]]).T
    keep = rng.uniform(size=e.size) >= 0.1
    xt = np.ascontiguousarray(xyz[keep].T, np.float32)
    return ring[keep], xt, np.sqrt(np.square(xt).sum(0))


@pytest.mark.parametrize(
    ('elevations', 'beams', 'field', 'pitch'),
    [
        # VLP-32C: dense around the horizon, against a uniform 32-row grid over -25..15
        ([-25, -15.639, -11.31, -8.843, -7.254, -6.148, -5.333, -4.667, -4, -3.667, -3.333,
          -3, -2.667, -2.333, -2, -1.667, -1.333, -1, -0.667, -0.333, 0, 0.333, 0.667, 1,
          1.333, 1.667, 2.333, 3.333, 4.667, 7, 10.333, 15], 32, (-25.0, 15.0), 0.0),
        (list(range(-15, 16, 2)), 16, (-15.0, 15.0), 30.0),  # a VLP-16 pitched 30 degrees
    ],
)  # fmt: skip
def test_a_real_ring_keeps_its_rows_on_every_sweep(
    elevations: list[float], beams: int, field: tuple[float, float], pitch: float
) -> None:
    """Check 5 asks whether the ring orders the returns by elevation, not whether it sits on
    the model's uniform grid (checks 1-4): a first version (within one row) refused a VLP-32C's
    ring on 190 of 200 sweeps and kept it on the rest, so its rows flipped sweep by sweep."""
    spec = PreprocessSpec(beams=beams, vertical_fov_deg=field)
    lo, hi = np.deg2rad(field)
    step = float(hi - lo) / (beams - 1)
    rng = np.random.default_rng(3)
    for _ in range(100):
        ring, xt, ranges = _spinning(elevations, rng, pitch_deg=pitch)
        assert preprocess._ring_scatter(ring, xt, ranges, spec.beams, step) is None


def test_intensities_beyond_the_trained_range_saturate(caplog: pytest.LogCaptureFixture) -> None:
    """One corrupt return (1e5) or a 16-bit reflectivity: channel 1 stays in [0, 1], equal to
    the image of the intensities clipped to 0..255 (1 / intensity_scale), said once."""
    preprocess._WARNED.clear()
    points = sweep(16)
    rng = np.random.default_rng(0)
    intensity = rng.uniform(0.0, 255.0, len(points)).astype(np.float32)
    intensity[[7, 300]] = (1e5, -40.0)
    wide = Points(xyz=points.xyz, intensity=intensity, ring=points.ring)
    clipped = Points(xyz=points.xyz, intensity=np.clip(intensity, 0, 255), ring=points.ring)
    with caplog.at_level('WARNING', logger='dmil_ros'):
        got = prepare_points(wide, SPEC)
        sixteen_bit = Points(xyz=points.xyz, intensity=intensity * 257.0, ring=points.ring)
        prepare_points(sixteen_bit, SPEC)  # the same kind of warning: not said again
    np.testing.assert_array_equal(got, prepare_points(clipped, SPEC))
    assert got[1].max() == 1.0
    assert got[1].min() == 0.0
    (record,) = caplog.records
    assert record.getMessage().startswith('LiDAR intensities from -40 to 100000 exceed')
