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

"""Fuzzing the sensor decoders: malformed messages never crash, never over-allocate.

Contract under test (``dmil_ros/runtime/decode.py`` docstring): malformed input raises
:class:`DecodeError` naming the topic and field, with a stable ``reason`` key the pipeline counts
under; nothing is allocated from a size before that size is checked against the data. CDR bytes
that do not deserialise raise rosbags' ``SerdeError`` (what ``RobustReader.decoded`` and the
node count as a bad message).

Two generators feed the decoders:

* the seeded corpus of :mod:`tests.reliability.corpus` (``CORPUS_SIZE`` cases per run: message
  objects with one mutation each, and mutated CDR bytes); and
* hypothesis strategies drawing every header field freely (``derandomize=True``, so CI runs are
  reproducible; ``deadline=None``, since a slow CI box is not a bug).

Allocation is checked with ``tracemalloc`` (numpy and OpenCV's Python bindings report their
buffers to it): the peak while decoding one message must stay below
``ALLOC_BASE + ALLOC_FACTOR * payload bytes``. A decoder sizing a buffer from a header field
that the data does not back (width x height x step with 16 bytes of data) breaks that bound.
A JPEG/PNG that decodes may add twice its decoded pixels (OpenCV's BGR result and the RGB copy):
a few hundred bytes of PNG legitimately make a megabyte image, and its header size is checked
against ``MAX_PIXELS`` before decoding.

Findings in code this file does not own are pinned by ``xfail(strict=True)`` tests at the end;
each names the fix. When a fix lands the xfail passes, strict mode fails the run, and the
exemption (``KNOWN_FINDINGS``) and the xfail mark are to be removed.
"""

from __future__ import annotations

import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rosbags.serde import SerdeError

from dmil_ros.runtime.decode import (
    MAX_PIXELS,
    decode_image,
    decode_laserscan,
    decode_pointcloud2,
)
from dmil_ros.runtime.errors import DecodeError
from tests.reliability import corpus
from tests.reliability.corpus import (
    HUGE_U32,
    RAW_ENCODINGS,
    STORE,
    UNKNOWN_ENCODINGS,
    UNKNOWN_FORMATS,
    Case,
)

CORPUS_SEED = 9
CORPUS_SIZE = 12_000
pytestmark = pytest.mark.filterwarnings(
    'ignore:(overflow|invalid value) encountered:RuntimeWarning'
)
HYPOTHESIS_EXAMPLES = 300  # per decoder strategy; 5 strategies
REASONS = frozenset({'data', 'size', 'encoding', 'format', 'corrupt', 'type', 'fields', 'angles'})
"""Every ``reason`` decode.py documents (the keys the pipeline's diagnostics count under)."""
ALLOC_BASE = 1 << 20  # bytes
ALLOC_FACTOR = 40  # x payload: RGB from mono is 3x, a cloud's xyz+masks ~ 20x its 1-byte points
PACKED_422 = ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv')
TOPICS = {
    'image': '/camera/image_raw',
    'compressed': '/camera/image_raw/compressed',
    'pointcloud2': '/lidar/points',
    'laserscan': '/scan',
}
DECODERS: dict[str, Callable[[Any, str], Any]] = {
    'image': decode_image,
    'compressed': decode_image,
    'pointcloud2': decode_pointcloud2,
    'laserscan': decode_laserscan,
}


def known_finding(kind: str, msg: Any, exc: BaseException) -> str | None:
    """Name the reported-but-unfixed defect an exception comes from (None: a new crash)."""
    if kind == 'pointcloud2' and type(exc) is ValueError and 'C int' in str(exc):
        return 'point_step_beyond_c_int'
    if not isinstance(exc, cv2.error):
        return None
    text = str(exc)
    if kind == 'image' and msg.encoding in PACKED_422 and 'width % 2' in text:
        return 'packed_422_odd_width'
    if kind == 'compressed' and ('imdecode' in text or 'validateInputImageSize' in text):
        return 'imdecode_raises_cv2_error'
    return None


@contextmanager
def traced() -> Iterator[Callable[[], int]]:
    """Yield a function returning the peak traced bytes above the level at entry."""
    started = tracemalloc.is_tracing()
    if not started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield lambda: tracemalloc.get_traced_memory()[1] - base
    finally:
        if not started:
            tracemalloc.stop()


def check_output(kind: str, msg: Any, out: Any) -> None:
    """Invariants of a successful decode."""
    if kind in ('image', 'compressed'):
        assert isinstance(out, np.ndarray)
        assert out.dtype == np.uint8
        assert out.ndim == 3
        assert out.shape[2] == 3
        assert out.shape[0] * out.shape[1] <= MAX_PIXELS
        if kind == 'image':
            assert out.shape[:2] == (msg.height, msg.width)
    else:
        xyz = out.xyz
        assert xyz.dtype == np.float32
        assert xyz.ndim == 2
        assert xyz.shape[1] == 3
        assert np.isfinite(xyz).all()
        for extra in (out.intensity, out.ring):
            assert extra is None or extra.shape == (xyz.shape[0],)


def alloc_bound(msg: Any) -> int:
    return ALLOC_BASE + ALLOC_FACTOR * corpus.input_bytes(msg)


@dataclass
class Tally:
    """What happened to the corpus."""

    total: int = 0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, outcome)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, reason)
    mutations: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    known: Counter[str] = field(default_factory=Counter)
    over_allocation: list[str] = field(default_factory=list)
    unnamed: list[str] = field(default_factory=list)  # DecodeError without topic / reason


def run_case(case: Case, tally: Tally) -> None:
    tally.total += 1
    tally.mutations[case.mutation] += 1
    topic = TOPICS[case.kind]
    msg = case.msg
    if case.cdr is not None:
        try:
            msg = STORE.deserialize_cdr(case.cdr, case.msgtype)
        except SerdeError:
            tally.outcomes[case.kind, 'cdr_rejected'] += 1
            return
        except Exception as exc:
            tally.unexpected.append(f'{case.kind}/{case.mutation}: deserialize {exc!r}')
            return
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        out = DECODERS[case.kind](msg, topic)
    except DecodeError as exc:
        tally.outcomes[case.kind, 'rejected'] += 1
        tally.reasons[case.kind, exc.reason] += 1
        if exc.reason not in REASONS or topic not in str(exc) or not exc.field:
            tally.unnamed.append(f'{case.kind}/{case.mutation}: {exc.reason!r} {exc}')
    except Exception as exc:
        name = known_finding(case.kind, msg, exc)
        if name is None:
            tally.unexpected.append(f'{case.kind}/{case.mutation}: {exc!r}')
        else:
            tally.known[name] += 1
    else:
        tally.outcomes[case.kind, 'decoded'] += 1
        try:
            check_output(case.kind, msg, out)
        except AssertionError:
            tally.unexpected.append(f'{case.kind}/{case.mutation}: bad output {out!r:.200}')
    used = tracemalloc.get_traced_memory()[1] - base
    if used > alloc_bound(msg):
        tally.over_allocation.append(
            f'{case.kind}/{case.mutation}: {used} B traced for {corpus.input_bytes(msg)} B'
        )


@pytest.fixture(scope='module')
def tally() -> Tally:
    result = Tally()
    with traced():
        for case in corpus.generate(CORPUS_SEED, CORPUS_SIZE):
            run_case(case, result)
    return result


def test_corpus_is_large_and_covers_every_mutation(tally: Tally) -> None:
    assert tally.total >= 10_000
    every = {
        *(f'{k}' for m in corpus.MUTATIONS.values() for k in m),
        *corpus.CDR_MUTATIONS,
    }
    assert set(tally.mutations) == every
    for kind in corpus.MSGTYPES:
        # every decoder both rejected and accepted something, and CDR damage reached it
        assert tally.outcomes[kind, 'rejected'] > 50, kind
        assert tally.outcomes[kind, 'decoded'] > 50, kind
        assert tally.outcomes[kind, 'cdr_rejected'] > 50, kind


def test_corpus_no_crash(tally: Tally) -> None:
    assert tally.unexpected == []


def test_corpus_every_rejection_counted_with_reason(tally: Tally) -> None:
    assert tally.unnamed == []
    rejected = sum(n for (_, outcome), n in tally.outcomes.items() if outcome == 'rejected')
    assert sum(tally.reasons.values()) == rejected
    assert {reason for _, reason in tally.reasons} <= REASONS
    # the corpus provokes most of the documented reasons, not just one catch-all
    assert len({reason for _, reason in tally.reasons}) >= 6


def test_corpus_no_allocation_beyond_the_data(tally: Tally) -> None:
    assert tally.over_allocation == []


def test_corpus_is_deterministic() -> None:
    def fingerprint(seed: int) -> list[tuple[str, str, bytes]]:
        out = []
        for case in corpus.generate(seed, 200):
            payload = (
                case.cdr if case.cdr is not None else STORE.serialize_cdr(case.msg, case.msgtype)
            )
            out.append((case.kind, case.mutation, bytes(payload)))
        return out

    assert fingerprint(3) == fingerprint(3)
    assert fingerprint(3) != fingerprint(4)


def test_corpus_known_findings_gone(tally: Tally) -> None:
    assert dict(tally.known) == {}


# -- targeted: huge headers, tiny data ----------------------------------------------------------


@pytest.mark.parametrize(
    ('width', 'height', 'step'),
    [(2**32 - 1, 2**32 - 1, 2**32 - 1), (8192, 8191, 8192 * 3), (1, MAX_PIXELS, 3), (2**31, 1, 0)],
)
def test_huge_image_header_rejected_before_allocating(width: int, height: int, step: int) -> None:
    msg = corpus.Image(
        header=corpus.header(corpus.random.Random(0)),
        height=height,
        width=width,
        encoding='rgb8',
        is_bigendian=0,
        step=step,
        data=np.zeros(16, np.uint8),
    )
    with traced() as peak, pytest.raises(DecodeError) as info:
        decode_image(msg, '/cam')
    assert peak() < 64 * 1024
    assert info.value.reason == 'size'
    assert "'/cam'" in str(info.value)


def test_huge_cloud_header_rejected_before_allocating() -> None:
    base = corpus.valid_cloud(corpus.random.Random(1))
    msg = corpus.dataclasses.replace(
        base, width=2**16, height=2**8, row_step=2**16 * base.point_step, data=base.data[:64]
    )
    with traced() as peak, pytest.raises(DecodeError) as info:
        decode_pointcloud2(msg, '/lidar/points')
    assert peak() < 64 * 1024
    assert info.value.reason == 'size'
    assert info.value.field == 'data'


# -- hypothesis: every header field drawn freely -------------------------------------------------

FUZZ = settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
u32 = st.one_of(st.integers(0, 16), st.integers(0, 2**32 - 1), st.sampled_from(HUGE_U32))
floats32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


def assert_decodes_or_rejects(kind: str, msg: Any) -> None:
    rejected: DecodeError | None = None
    decoded = 0  # bytes of a compressed image's pixels: its header (checked) declared them
    with traced() as peak:
        try:
            out = DECODERS[kind](msg, TOPICS[kind])
        except DecodeError as exc:
            rejected = exc
        except Exception as exc:
            if known_finding(kind, msg, exc) is None:  # a reported defect, pinned below
                raise
        else:
            check_output(kind, msg, out)
            if kind == 'compressed':
                decoded = 2 * out.nbytes  # OpenCV's BGR result and the RGB copy
        assert peak() <= alloc_bound(msg) + decoded
    if rejected is not None:
        assert rejected.reason in REASONS
        assert TOPICS[kind] in str(rejected)


@FUZZ
@given(
    encoding=st.sampled_from(RAW_ENCODINGS + UNKNOWN_ENCODINGS),
    width=u32,
    height=u32,
    step=u32,
    big=st.integers(0, 255),
    data=st.binary(max_size=512),
)
def test_hypothesis_image(
    encoding: str, width: int, height: int, step: int, big: int, data: bytes
) -> None:
    msg = corpus.Image(
        header=corpus.header(corpus.random.Random(0)),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=big,
        step=step,
        data=np.frombuffer(data, np.uint8),
    )
    assert_decodes_or_rejects('image', msg)


@FUZZ
@given(
    fmt=st.sampled_from(('jpeg', 'png', 'jpg', 'rgb8; jpeg compressed bgr8', *UNKNOWN_FORMATS)),
    source=st.sampled_from(('jpeg', 'png')),
    variant=st.integers(0, 3),
    cut=st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=6),
)
def test_hypothesis_compressed(
    fmt: str, source: str, variant: int, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(corpus._encoded(source, variant)[:cut])
    for at, value in flips:
        if at < len(data):
            data[at] = value
    msg = corpus.CompressedImage(
        header=corpus.header(corpus.random.Random(0)),
        format=fmt,
        data=np.frombuffer(bytes(data), np.uint8),
    )
    assert_decodes_or_rejects('compressed', msg)


point_fields = st.lists(
    st.builds(
        corpus.PointField,
        name=st.sampled_from(('x', 'y', 'z', 'intensity', 'i', 'ring', 'channel', '_', 't')),
        offset=st.one_of(st.integers(0, 40), st.sampled_from(HUGE_U32)),
        datatype=st.integers(0, 10),
        count=st.one_of(st.integers(0, 3), st.sampled_from(HUGE_U32)),
    ),
    max_size=8,
)


@FUZZ
@given(
    fields=point_fields,
    width=u32,
    height=u32,
    point_step=u32,
    row_step=u32,
    big=st.booleans(),
    data=st.binary(max_size=800),
)
def test_hypothesis_pointcloud2(
    fields: list[Any], width: int, height: int, point_step: int, row_step: int, big: bool,
    data: bytes,
) -> None:  # fmt: skip
    msg = corpus.PointCloud2(
        header=corpus.header(corpus.random.Random(0)),
        height=height,
        width=width,
        fields=fields,
        is_bigendian=big,
        point_step=point_step,
        row_step=row_step,
        data=np.frombuffer(data, np.uint8),
        is_dense=False,
    )
    assert_decodes_or_rejects('pointcloud2', msg)


@FUZZ
@given(
    seed=st.integers(0, 2**31),
    layout=st.integers(0, 3),
    width=st.integers(0, 30),
    height=st.integers(0, 3),
    big=st.booleans(),
)
def test_hypothesis_pointcloud2_layouts_with_nonfinite(
    seed: int, layout: int, width: int, height: int, big: bool
) -> None:
    """Well-formed layouts filled with arbitrary bytes: NaN/Inf/denormals, either byte order."""
    rng = np.random.default_rng(seed)
    fields = [
        corpus.PointField(name=n, offset=o, datatype=d, count=1)
        for n, d, o in corpus._LAYOUTS[layout]
    ]
    step = corpus._STEPS[layout]
    msg = corpus.PointCloud2(
        header=corpus.header(corpus.random.Random(0)),
        height=height,
        width=width,
        fields=fields,
        is_bigendian=big,
        point_step=step,
        row_step=step * width,
        data=rng.integers(0, 256, step * width * height, dtype=np.uint8),
        is_dense=False,
    )
    assert_decodes_or_rejects('pointcloud2', msg)


@FUZZ
@given(
    ranges=st.lists(floats32, max_size=300),
    intensities=st.lists(floats32, max_size=300),
    angle_min=floats32,
    angle_increment=floats32,
    range_min=floats32,
    range_max=floats32,
)
def test_hypothesis_laserscan(
    ranges: list[float], intensities: list[float], angle_min: float, angle_increment: float,
    range_min: float, range_max: float,
) -> None:  # fmt: skip
    msg = corpus.LaserScan(
        header=corpus.header(corpus.random.Random(0)),
        angle_min=angle_min,
        angle_max=0.0,
        angle_increment=angle_increment,
        time_increment=0.0,
        scan_time=0.0,
        range_min=range_min,
        range_max=range_max,
        ranges=np.asarray(ranges, np.float32),
        intensities=np.asarray(intensities, np.float32),
    )
    assert_decodes_or_rejects('laserscan', msg)


# -- findings in decode.py (owner: issue 7); each xfail names the fix -----------------------------


def _image(encoding: str, width: int, height: int, step: int) -> Any:
    return corpus.Image(
        header=corpus.header(corpus.random.Random(0)),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=step,
        data=np.zeros(step * height, np.uint8),
    )


@pytest.mark.parametrize('encoding', PACKED_422)
def test_finding_packed_422_odd_width_is_decode_error(encoding: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_image(_image(encoding, 3, 2, 6), '/cam')
    assert info.value.reason == 'size'


@pytest.mark.parametrize('point_step', [2**31, 2**32 - 1])
def test_finding_huge_point_step_is_decode_error(point_step: int) -> None:
    base = corpus.valid_cloud(corpus.random.Random(2))
    msg = corpus.dataclasses.replace(base, point_step=point_step)
    with pytest.raises(DecodeError) as info:
        decode_pointcloud2(msg, '/lidar/points')
    assert info.value.reason == 'fields'
    assert info.value.field == 'point_step'


def _jpeg_claiming(width: int, height: int) -> Any:
    data = corpus._with_header_dims(
        np.frombuffer(corpus._encoded('jpeg', 0), np.uint8), width, height
    )
    return corpus.CompressedImage(
        header=corpus.header(corpus.random.Random(0)), format='jpeg', data=data
    )


def test_finding_imdecode_error_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_image(_jpeg_claiming(60000, 60000), '/cam/compressed')


def test_finding_compressed_header_dims_checked_before_decoding() -> None:
    msg = _jpeg_claiming(9000, 9000)  # 81M px > MAX_PIXELS, 700 bytes of data
    with traced() as peak, pytest.raises(DecodeError) as info:
        decode_image(msg, '/cam/compressed')
    assert info.value.reason == 'size'
    assert peak() < 16 << 20


@pytest.fixture(scope='module')
def png_bomb_msg() -> Any:
    side = 8200  # 67.2M px > MAX_PIXELS = 64 Mi px, ~65 kB of PNG
    return corpus.CompressedImage(
        header=corpus.header(corpus.random.Random(0)),
        format='png',
        data=np.frombuffer(corpus.png_bomb(side, side), np.uint8),
    )


def test_finding_png_bomb_refused(png_bomb_msg: Any) -> None:
    assert png_bomb_msg.data.size < 100_000
    with pytest.raises(DecodeError) as info:
        decode_image(png_bomb_msg, '/cam/compressed')
    assert info.value.reason == 'size'
