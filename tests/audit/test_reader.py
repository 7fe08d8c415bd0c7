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

"""Robust bag reading: complete bags, truncated MCAP, corrupt chunks, sqlite3, bad CDR."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bagfactory import ACTION_TOPIC, IMAGE_TOPIC, POINTS_TOPIC, write_small_bag

from dmil_ros.bagio.reader import BagReadError, RobustReader


@pytest.fixture(scope='module')
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('reader') / 'bag'
    write_small_bag(path, frames=120)
    return path


def _count(path: Path, **kw: object) -> tuple[int, RobustReader]:
    reader = RobustReader(path, **kw)  # type: ignore[arg-type]
    return sum(1 for _ in reader.decoded()), reader


def test_complete_bag_is_indexed_and_complete(bag: Path) -> None:
    n, reader = _count(bag)
    assert n == 120 + 120 + 60
    assert reader.mode == 'indexed'
    assert reader.complete
    n_img, _ = _count(bag, topics=[IMAGE_TOPIC])
    assert n_img == 120


@pytest.mark.parametrize('fraction', [0.3, 0.7])
def test_truncated_mcap_yields_prefix_and_issue(
    bag: Path, tmp_path: Path, fraction: float
) -> None:
    copy = tmp_path / 'cut'
    shutil.copytree(bag, copy)
    storage = next(copy.glob('*.mcap'))
    data = storage.read_bytes()
    storage.write_bytes(data[: int(len(data) * fraction)])
    reader = RobustReader(copy)
    stamps = {IMAGE_TOPIC: [], POINTS_TOPIC: [], ACTION_TOPIC: []}
    for raw, _ in reader.decoded():
        stamps[raw.topic].append(raw.timestamp)
    assert reader.mode == 'salvage'
    assert not reader.complete
    assert any('truncated' in i.message for i in reader.issues)
    got = len(stamps[IMAGE_TOPIC])
    # what was read is a time-ordered prefix of the bag, roughly the share of bytes kept
    assert 0.5 * fraction * 120 <= got < 120
    assert stamps[IMAGE_TOPIC] == sorted(stamps[IMAGE_TOPIC])


def test_no_metadata_and_no_footer_still_reads(bag: Path, tmp_path: Path) -> None:
    copy = tmp_path / 'killed'
    shutil.copytree(bag, copy)
    (copy / 'metadata.yaml').unlink()
    storage = next(copy.glob('*.mcap'))
    storage.write_bytes(storage.read_bytes()[:-200])
    n, reader = _count(copy)
    assert 250 < n <= 300
    assert reader.report()['mode'] == 'salvage'


def test_corrupt_cdr_is_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / 'bag'
    write_small_bag(path, frames=20)
    storage = next(path.glob('*.mcap'))
    data = bytearray(storage.read_bytes())
    # the String messages carry 'forward' etc.; make one length field absurd
    at = data.find(b'forward')
    data[at - 4 : at] = b'\xff\xff\xff\x7f'
    storage.write_bytes(bytes(data))
    n, reader = _count(path)
    assert reader.skipped[ACTION_TOPIC] >= 1
    assert n == 20 + 20 + 10 - reader.skipped[ACTION_TOPIC]
    assert not reader.complete


def test_sqlite_bag(tmp_path: Path) -> None:
    path = tmp_path / 'sq'
    write_small_bag(path, frames=30, storage='sqlite3')
    n, reader = _count(path)
    assert n == 75
    assert reader.complete


def test_not_a_bag(tmp_path: Path) -> None:
    with pytest.raises(BagReadError, match='does not exist'):
        RobustReader(tmp_path / 'nope')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagReadError, match=r'no \.mcap or \.db3'):
        RobustReader(tmp_path / 'empty')  # on construction: before a caller makes any output
