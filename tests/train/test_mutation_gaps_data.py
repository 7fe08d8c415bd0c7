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

"""Bag loading and cache behaviour no other test pinned down (found by mutation testing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dmil_ros.runtime.preprocess import PreprocessSpec
from dmil_ros.sim import SimConfig, record_bag
from dmil_ros.train.config import DataConfig
from dmil_ros.train.data import load_bags

SPEC = PreprocessSpec()


@pytest.fixture(scope='module')
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('bags') / 'drive'
    record_bag(SimConfig(frames=30, seed=3), path)
    return path


def test_a_cache_hit_takes_the_bags_index_in_this_call_as_its_segment(
    bag: Path, tmp_path: Path
) -> None:
    """``segment`` = the bag's index in ``bags`` (the time-block split keeps recordings
    apart by it), whichever index the bag had when its cache entry was written."""
    cache = tmp_path / 'cache'
    first, stats = load_bags([bag], DataConfig(), SPEC, cache)
    assert not stats[0].cached
    assert set(first.segment.tolist()) == {0}
    other = tmp_path / 'other'
    shutil.copytree(bag, other)
    both, stats = load_bags([other, bag], DataConfig(), SPEC, cache)
    assert [s.cached for s in stats] == [False, True]
    n = len(first)
    np.testing.assert_array_equal(both.segment, [0] * (len(both) - n) + [1] * n)


def test_a_damaged_bag_is_never_cached(bag: Path, tmp_path: Path) -> None:
    """A bag read up to its damage is not stored: the next load reads it (and reports the
    damage) again instead of serving the partial pairs as a clean cache hit."""
    broken = tmp_path / 'broken'
    shutil.copytree(bag, broken)
    mcap = next(broken.glob('*.mcap'))
    with mcap.open('r+b') as f:
        f.truncate(mcap.stat().st_size // 2)
    cache = tmp_path / 'cache'
    for _ in range(2):
        arrays, stats = load_bags([broken], DataConfig(), SPEC, cache)
        assert len(arrays)
        assert not stats[0].cached
        assert stats[0].error is not None
    assert not list(cache.glob('*.npz'))
