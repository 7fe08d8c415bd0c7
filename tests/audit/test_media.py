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

"""Report pictures are matched by sensor (header) stamp, not by recording (log) time."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from bagfactory import write_small_bag
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from dmil_ros.audit.media import fetch_media
from dmil_ros.bagio.reader import RobustReader


def _relog(src: Path, dst: Path, lag_ns: int) -> None:
    """A copy of ``src`` whose messages were logged ``lag_ns`` after their stamps."""
    with Reader(src) as r, Writer(dst, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {
            c.id: w.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest)
            for c in r.connections
        }
        for c, t, data in r.messages():
            w.write(conns[c.id], t + lag_ns, data)


def test_pictures_do_not_depend_on_log_time(tmp_path: Path) -> None:
    stamps = write_small_bag(tmp_path / 'bag', frames=30)
    _relog(tmp_path / 'bag', tmp_path / 'late', 1_000_000_000)
    wanted = stamps[3:30:6]
    # in the original bag log time equals the stamp: its pictures are the reference
    reference = fetch_media(tmp_path / 'bag', wanted)
    late = fetch_media(tmp_path / 'late', wanted)
    for stamp in wanted:
        assert set(reference[stamp]) == {'camera', 'bev'}
        assert late[stamp] == reference[stamp]


def test_frames_without_a_sweep_nearby_get_no_bev(tmp_path: Path) -> None:
    stamps = write_small_bag(tmp_path / 'bag', frames=10)
    far = stamps[-1] + 5_000_000_000  # no image, no sweep near it
    got = fetch_media(tmp_path / 'bag', [stamps[4], far])
    assert set(got[stamps[4]]) == {'camera', 'bev'}
    assert got[far] == {}


def test_a_damaged_bag_is_not_reported_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The pictures' second pass stays quiet: the audit's first pass reported the damage."""
    stamps = write_small_bag(tmp_path / 'bag', frames=60)
    storage = next((tmp_path / 'bag').glob('*.mcap'))
    data = storage.read_bytes()
    storage.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger='dmil_ros'):
        got = fetch_media(tmp_path / 'bag', [stamps[2]])
    assert set(got[stamps[2]]) == {'camera', 'bev'}  # the readable part still gives pictures
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    # the first pass (the reader as the audit builds it) does warn
    with caplog.at_level(logging.WARNING, logger='dmil_ros'):
        reader = RobustReader(tmp_path / 'bag')
        assert sum(1 for _ in reader) > 0
    assert any('salvaging' in r.getMessage() for r in caplog.records)


def test_the_paired_sweep_is_drawn_not_the_nearest(tmp_path: Path) -> None:
    stamps = write_small_bag(tmp_path / 'bag', frames=12)  # sweeps at the even frames' stamps
    # reference: each even frame's nearest sweep is its own (same stamp)
    reference = fetch_media(tmp_path / 'bag', [stamps[2], stamps[8]])
    assert reference[stamps[2]]['bev'] != reference[stamps[8]]['bev']
    # frame 4 paired with the sweep of frame 2 (100 ms off), frame 6 with none
    got = fetch_media(tmp_path / 'bag', [stamps[4], stamps[6]], sweeps={stamps[4]: stamps[2]})
    assert got[stamps[4]]['bev'] == reference[stamps[2]]['bev']
    assert set(got[stamps[6]]) == {'camera'}  # ran without a sweep: no bird's-eye view
