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

"""Run-directory checks no other test pinned down (found by mutation testing): a resume on
another recording is refused on each recorded figure alone, and the export leaves validation
blocks out of its fitting frames only when they lie in the training bags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmil_ros.train.data import BagStats
from dmil_ros.train.errors import TrainConfigError
from dmil_ros.train.rundir import check_recordings, fit_frames


def _data_json(out: Path, stats: list[dict[str, object]], **extra: object) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / 'data.json').write_text(json.dumps({'stats': stats, **extra}), encoding='utf-8')


def test_resume_refuses_a_recording_whose_pair_stamps_moved(tmp_path: Path) -> None:
    """Same pair count, no digest recorded (an older run): the stamps alone tell them apart."""
    _data_json(tmp_path, [{'pairs': 10, 'stamps': [1_000_000_000, 2_000_000_000]}])
    same = BagStats('a', pairs=10, stamps=(1_000_000_000, 2_000_000_000), digest='d1')
    check_recordings(tmp_path, [same])
    moved = BagStats('a', pairs=10, stamps=(1_000_000_000, 3_000_000_000), digest='d1')
    with pytest.raises(
        TrainConfigError, match=r'stamped 1\.000\.\.2\.000 s, now 1\.000\.\.3\.000'
    ):
        check_recordings(tmp_path, [moved])


def test_resume_refuses_a_recording_whose_pairs_digest_changed(tmp_path: Path) -> None:
    stamps = [1_000_000_000, 2_000_000_000]
    _data_json(tmp_path, [{'pairs': 10, 'stamps': stamps, 'digest': 'abc'}])
    check_recordings(tmp_path, [BagStats('a', pairs=10, stamps=(*stamps,), digest='abc')])
    with pytest.raises(TrainConfigError, match='digest abc, now xyz'):
        check_recordings(tmp_path, [BagStats('a', pairs=10, stamps=(*stamps,), digest='xyz')])


def test_fitting_frames_leave_validation_out_only_when_it_came_from_the_training_bags(
    tmp_path: Path,
) -> None:
    bags = [tmp_path / 'b0', tmp_path / 'b1']
    for b in bags:
        b.mkdir()
    run = tmp_path / 'run'
    _data_json(run, [], bags=[str(b) for b in bags], val_bags=[])
    split = fit_frames(run, [], pid=True)
    assert split.bags == bags
    assert split.held_out  # validation = time blocks of these bags: leave them out
    _data_json(run, [], bags=[str(b) for b in bags], val_bags=[str(tmp_path / 'v')])
    own = fit_frames(run, [], pid=True)
    assert own.bags == bags
    assert not own.held_out  # validation had bags of its own: every frame here trained
