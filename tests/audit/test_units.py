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

"""Spike segmentation, frame table writers, masking statistics, GapScore, PID bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.audit.bagaudit import BagOptions
from dmil_ros.audit.errors import AuditError, AuditInputError
from dmil_ros.audit.masking import MaskStats, Profile, masked_inputs
from dmil_ros.audit.merge import MergeOptions
from dmil_ros.audit.spikes import (
    SpikeConfig,
    find_spikes,
    running_median,
    segment_coverage,
    spike_mask,
)
from dmil_ros.audit.tables import COLUMNS, build_table, read_table, write_table
from dmil_ros.audit.terms import broja_frames, entropy_bits, gapscore, reduce_features


def test_spikes_find_planted_segments() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(0.0, 0.05, 600)
    truth = [(100, 140), (300, 330), (500, 560)]
    for a, b in truth:
        s[a:b] += 1.0
    s[250] = 3.0  # a single-frame outlier is not a spike
    stamps = np.arange(600) * 50_000_000
    spikes = find_spikes(s, stamps)
    assert [(sp.first, sp.last) for sp in spikes] == [(a, b - 1) for a, b in truth]
    assert all(sp.peak >= 0.9 for sp in spikes)
    assert spikes[0].start == stamps[100]
    assert spikes[0].end == stamps[139]
    mask = spike_mask(600, spikes)
    seg = np.full(600, -1)
    for k, (a, b) in enumerate(truth):
        seg[a:b] = k
    assert segment_coverage(mask, seg) == (3, 3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-2, 2), min_size=0, max_size=200))
def test_spikes_invariants(values: list[float]) -> None:
    s = np.array(values)
    spikes = find_spikes(s, np.arange(len(s)))
    cfg = SpikeConfig()
    last = -10
    for sp in spikes:
        assert sp.first <= sp.peak_index <= sp.last
        assert sp.frames >= cfg.min_frames
        assert sp.first - last - 1 > cfg.max_gap  # merged when closer
        last = sp.last
    # nothing is flagged when the series never reaches the low threshold
    if len(s) and s.max() < cfg.low:
        assert spikes == []


def _spans(s: np.ndarray, cfg: SpikeConfig) -> list[tuple[int, int]]:
    return [(sp.first, sp.last) for sp in find_spikes(s, np.arange(len(s)), cfg)]


def test_spike_boundaries_are_inclusive() -> None:
    """Without smoothing: a run of exactly min_frames is a spike (min_frames - 1 is not), a gap
    of exactly max_gap frames merges two runs (max_gap + 1 does not), and a low run whose
    only high frame is its last is a spike."""
    cfg = SpikeConfig(window=1, high=0.3, low=0.15, min_frames=3, max_gap=2)
    for length, want in ((3, [(5, 7)]), (2, [])):
        s = np.zeros(40)
        s[5 : 5 + length] = 1.0
        assert _spans(s, cfg) == want
    for gap, want in ((2, [(5, 16)]), (3, [(5, 9), (13, 17)])):
        s = np.zeros(40)
        s[5:10] = 1.0
        s[10 + gap : 15 + gap] = 1.0
        assert _spans(s, cfg) == want
    s = np.zeros(40)
    s[5:9] = (0.2, 0.2, 0.2, 0.5)
    assert _spans(s, cfg) == [(5, 8)]


def test_a_nan_frame_is_never_the_peak() -> None:
    # a spike's peak is its largest raw synergy: a NaN frame inside is no value, not the top
    s = np.zeros(40)
    s[5:12] = 1.0
    s[8] = np.nan
    s[9] = 2.0
    (sp,) = find_spikes(s, np.arange(40), SpikeConfig(window=3))
    assert (sp.peak, sp.peak_index) == (2.0, 9)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.floats(-5, 5), min_size=1, max_size=40),
    st.sampled_from([1, 3, 5, 7]),
)
def test_running_median_uses_the_frames_that_exist(values: list[float], window: int) -> None:
    """Brute force: the median of frames i - window // 2 .. i + window // 2 that lie in the
    series (a shrinking window at the ends, no padding with the edge values)."""
    v = np.asarray(values)
    half = window // 2
    want = [np.median(v[max(0, i - half) : i + half + 1]) for i in range(len(v))]
    np.testing.assert_allclose(running_median(v, window), want, atol=0, rtol=0)


def test_a_segment_half_flagged_is_covered() -> None:
    mask = np.array([True, True, False, False, True, False, False, False])
    segments = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # half of 0 flagged, a quarter of 1
    assert segment_coverage(mask, segments) == (1, 2)


def test_spike_config_validated() -> None:
    with pytest.raises(AuditInputError, match='window'):
        SpikeConfig(window=4)
    with pytest.raises(AuditInputError, match='low'):
        SpikeConfig(high=0.1, low=0.2)


@pytest.mark.parametrize(
    ('options', 'named'),
    [
        ({'batch': 0}, 'batch=0'),
        ({'mask_samples': -1}, 'mask_samples=-1'),
        ({'max_frames': -5}, 'max_frames=-5'),
        ({'profile_frames': 2.5}, 'profile_frames=2.5'),
        ({'threads': True}, 'threads=True'),
    ],
)
def test_bag_options_validated_where_defined(options: dict[str, object], named: str) -> None:
    """A library caller gets the checks the CLI's users get (batch 0 raised a bare ValueError
    from range() deep in the bag stage)."""
    with pytest.raises(AuditError, match=named):
        BagOptions(model='m.onnx', **options)  # type: ignore[arg-type]


@pytest.mark.parametrize('k', [0, 1, -3, 2.0])
def test_merge_options_refuse_fewer_than_two_clusters(k: object) -> None:
    with pytest.raises(AuditError, match=f'n_clusters={k!r}'):
        MergeOptions(n_clusters=k)  # type: ignore[arg-type]
    assert MergeOptions(n_clusters=2).n_clusters == 2


def _columns(n: int) -> dict[str, object]:
    rng = np.random.default_rng(1)
    cols: dict[str, object] = {c: rng.random(n) for c in COLUMNS}
    cols.update(
        bag=['a'] * n,
        index=np.arange(n),
        stamp=np.arange(n) * 7,
        lidar_stamp=np.where(np.arange(n) % 3, np.arange(n) * 7 + 2, -1),
        action=['left'] * n,
        label=[''] * n,
        alert=np.zeros(n, bool),
        spike=np.ones(n, bool),
        family=['S'] * n,
        segment=np.zeros(n, int),
    )
    cols['lsmi_model_synergy'] = np.where(np.arange(n) % 2, np.nan, 1.0)
    return cols


def test_table_round_trip(tmp_path: Path) -> None:
    table = build_table(_columns(50))
    parquet, csv = write_table(table, tmp_path)
    back = read_table(parquet)
    assert back.equals(table)
    from_csv = pacsv.read_csv(csv)
    assert from_csv.column_names == list(COLUMNS)
    assert from_csv.num_rows == 50
    assert np.allclose(
        from_csv.column('prob_left').to_numpy(), table.column('prob_left').to_numpy()
    )


def test_table_rejects_bad_columns() -> None:
    cols = _columns(3)
    del cols['gapscore']
    with pytest.raises(AuditInputError, match='gapscore'):
        build_table(cols)
    cols = _columns(3)
    cols['stamp'] = np.arange(4)
    with pytest.raises(AuditInputError, match='length'):
        build_table(cols)


def test_profile_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(3.0, 2.0, (300, 2, 3)).astype(np.float32)
    prof = Profile()
    for part in np.array_split(x, 7):
        prof.add(part)
    mean, std = prof.stats()
    assert np.allclose(mean, x.mean(0), atol=1e-5)
    assert np.allclose(std, x.std(0, ddof=1), atol=1e-5)


def test_masked_inputs_are_calibrated_and_deterministic() -> None:
    rng = np.random.default_rng(3)
    image = rng.normal(1.0, 0.5, (400, 3, 4, 5)).astype(np.float32)
    lidar = rng.normal(-2.0, 3.0, (400, 2, 3, 4)).astype(np.float32)
    pi, pl = Profile(), Profile()
    pi.add(image)
    pl.add(lidar)
    stats = MaskStats.from_profiles(pi, pl)
    stamps = np.arange(400, dtype=np.int64) * 1000
    (img_kept, lid_masked), (img_masked, lid_kept) = masked_inputs(stats, image, lidar, stamps)
    assert img_kept is image
    assert lid_kept is lidar
    # the noise has the profile's per-dimension mean and spread, not zeros
    assert np.allclose(lid_masked.mean(0), lidar.mean(0), atol=0.5)
    assert np.allclose(lid_masked.std(0), lidar.std(0), rtol=0.2)
    assert np.allclose(img_masked.std(0), image.std(0), rtol=0.2)
    # a frame's draw depends on its stamp only, not on the batch it is in
    (_, again), _ = masked_inputs(stats, image[10:20], lidar[10:20], stamps[10:20])
    assert np.array_equal(again, lid_masked[10:20])


def test_gapscore_formula() -> None:
    # pure synergy frame: SR = 1 -> GapScore 0; shortcut frame: SC = 1 -> 0
    terms = np.array([[0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]])
    uniform = np.full((3, 4), 0.25)
    sure = np.array([[1.0, 0.0, 0.0, 0.0]] * 3)
    out = gapscore(terms, uniform, uniform, sure)
    assert np.allclose(out[:, 0], [1.0, 0.0, 0.0], atol=1e-5)
    assert np.allclose(out[:, 1], [0.0, 1.0, 0.0], atol=1e-5)
    assert np.allclose(out[:, 2], 2.0, atol=1e-6)  # FP = 2 bits - 0
    assert np.allclose(out[:, 3], [0.0, 0.0, 2.0], atol=1e-4)
    assert np.allclose(entropy_bits(uniform), 2.0)


def test_fusion_potential_is_measured_from_the_more_certain_sensor() -> None:
    """FP = min(H(camera), H(LiDAR)) - H(joint): what fusing adds beyond the better sensor
    alone. Camera 1 bit, LiDAR 2 bits, joint 0: FP = 1 bit, whichever sensor is which."""
    sure = np.array([[1.0, 0.0, 0.0, 0.0]])
    half = np.array([[0.5, 0.5, 0.0, 0.0]])
    uniform = np.full((1, 4), 0.25)
    terms = np.zeros((1, 4))
    assert gapscore(terms, half, uniform, sure)[0, 2] == pytest.approx(1.0, abs=1e-6)
    assert gapscore(terms, uniform, half, sure)[0, 2] == pytest.approx(1.0, abs=1e-6)


def test_broja_frames_left_out_by_the_label_floor_are_nan() -> None:
    """A label carried by 1 % of its clusters' frames is below the 2 % label floor: those
    frames are left out of the histogram, their terms sit at the log floor (about -60 bits)
    and must reach the table as NaN (no evidence), not as numbers."""
    rng = np.random.default_rng(0)
    n = 400
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    f1 = np.eye(2)[a] * 6 + 0.1 * rng.standard_normal((n, 2))
    f2 = np.eye(2)[b] * 6 + 0.1 * rng.standard_normal((n, 2))
    y = a ^ b
    y[:2] = 2
    got = broja_frames(f1, f2, y, n_clusters=2)
    assert np.isnan(got.terms[:2]).all()
    assert np.isfinite(got.terms[2:]).all()
    assert np.abs(got.terms[2:]).max() < 10


def test_reduce_features_deterministic_and_standardised() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 20)) @ rng.normal(size=(20, 20))
    a, b = reduce_features(x, 5), reduce_features(x.copy(), 5)
    assert a.shape == (200, 5)
    assert np.array_equal(a, b)
    small = reduce_features(x[:, :3], 5)
    assert np.allclose(small.std(0), 1.0)


def test_mask_noise_draws_differ_and_share_one_pool_per_seed() -> None:
    from dmil_ros.audit import masking

    stats = MaskStats(
        np.zeros((2, 3, 4), np.float32),
        np.ones((2, 3, 4), np.float32),
        np.zeros((2, 3, 4), np.float32),
        np.ones((2, 3, 4), np.float32),
        10,
    )
    x = np.zeros((50, 2, 3, 4), np.float32)
    stamps = np.arange(50, dtype=np.int64) * 50_000_000
    seed = 987_654  # a seed no other test draws: its pool is created here
    draws = []
    for draw in range(6):
        (_, lidar), (image, _) = masked_inputs(stats, x, x, stamps, seed=seed, draw=draw)
        assert not np.array_equal(lidar, image)  # the two modalities' noise differs
        draws.append(lidar)
    # every draw is fresh noise: no two draws of a frame correlate
    flat = np.stack([d.reshape(50, -1) for d in draws])  # (6, 50, 24)
    for a in range(6):
        for b in range(a):
            assert not np.array_equal(flat[a], flat[b])
            r = np.corrcoef(flat[a].ravel(), flat[b].ravel())[0, 1]
            assert abs(r) < 0.2
    # ... yet all came from the seed's one 16 MiB pool, not one per draw and modality
    assert [key for key in masking._POOLS if seed in np.atleast_1d(key)] == [seed]
    assert masking._POOLS[seed].nbytes == 16 * 2**20
