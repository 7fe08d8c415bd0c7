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

"""Chunks read ahead on a worker thread: rosbags' messages exactly, and damage still found."""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from typing import Any

import pytest
from backports import zstd
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapReader

from dmil_ros.bagio import RobustReader, mcap, prefetch, typestore

STRING = 'std_msgs/msg/String'
ROOT = Path(__file__).resolve().parents[2]


def write_bag(path: Path, stamps: list[int], topics: tuple[str, ...] = ('/a', '/b')) -> None:
    """zstd chunks of ~1 MB (rosbags' size): 100 kB messages, several per chunk."""
    store = typestore()
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        conns = [writer.add_connection(t, STRING, typestore=store) for t in topics]
        for i, stamp in enumerate(stamps):
            conn = conns[i % len(conns)]
            text = f'{conn.topic} {i} ' + 'x' * 100_000
            data = bytes(store.serialize_cdr(store.types[STRING](data=text), STRING))
            writer.write(conn, stamp, data)


def both(mcap: Path, topics: set[str] | None = None) -> tuple[list[Any], list[Any], Any]:
    """(rosbags' messages, prefetched messages, the reader's chunks) of one MCAP file."""
    reader = McapReader(mcap)
    reader.open()
    try:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        expected = [(c.topic, t, bytes(d)) for c, t, d in reader.messages(conns)]
        got = [(c.topic, t, bytes(d)) for c, t, d in prefetch.messages(reader, conns)]
        return expected, got, list(reader.chunks)
    finally:
        reader.close()


@pytest.mark.skipif(mcap.zstandard is None, reason='python-zstandard not installed')
@pytest.mark.parametrize('topics', [None, {'/b'}])
def test_same_messages_as_rosbags_in_time_ordered_chunks(
    tmp_path: Path, topics: set[str] | None
) -> None:
    # equal stamps inside and across chunks: the order at a shared stamp must match, too
    stamps = [10**18 + (i // 3) * 1_000 for i in range(60)]
    write_bag(tmp_path / 'bag', stamps)
    expected, got, chunks = both(tmp_path / 'bag' / 'bag.mcap', topics)
    assert len(chunks) >= 4
    assert prefetch.sequential(chunks)
    assert got == expected
    assert len(got) == (60 if topics is None else 30)


def test_overlapping_chunks_are_merged_by_rosbags(tmp_path: Path) -> None:
    """Messages written out of order make chunks overlap in time: rosbags' merge reads them."""
    stamps = [10**18 + ((i * 37) % 60) * 1_000 for i in range(60)]
    write_bag(tmp_path / 'bag', stamps)
    expected, got, chunks = both(tmp_path / 'bag' / 'bag.mcap')
    assert not prefetch.sequential(chunks)
    assert got == expected
    assert [t for _, t, _ in got] == sorted(stamps)


def test_shipped_sample_bag_reads_identically() -> None:
    expected, got, _ = both(ROOT / 'bags' / 'hallway_demo' / 'hallway_demo.mcap')
    assert got == expected
    assert len(got) > 800


@pytest.mark.skipif(mcap.zstandard is None, reason='python-zstandard not installed')
def test_corrupt_chunk_is_salvaged_around(tmp_path: Path) -> None:
    """Garbage in the third chunk: the read-ahead raises, the reader salvages the others."""
    stamps = [10**18 + i * 1_000 for i in range(60)]
    write_bag(tmp_path / 'bag', stamps)
    mcap = tmp_path / 'bag' / 'bag.mcap'
    reader = McapReader(mcap)
    reader.open()
    chunk = sorted(reader.chunks, key=lambda c: c.chunk_start_offset)[2]  # before close
    reader.close()
    data = bytearray(mcap.read_bytes())
    middle = chunk.chunk_start_offset + chunk.chunk_length // 2
    data[middle : middle + 64] = bytes(64)
    mcap.write_bytes(bytes(data))
    got = RobustReader(tmp_path / 'bag')
    messages = list(got)
    assert got.mode == 'salvage'
    assert got.issues
    stamps_read = [m.timestamp for m in messages]
    assert stamps_read == sorted(stamps_read)
    assert 0 < len(messages) < 60  # the damaged chunk's messages, and only those, are gone
    assert set(stamps_read) < set(stamps)


@pytest.mark.skipif(mcap.zstandard is None, reason='python-zstandard not installed')
def test_abandoned_read_stops_its_worker(tmp_path: Path) -> None:
    write_bag(tmp_path / 'bag', [10**18 + i * 1_000 for i in range(60)])
    before = {t.ident for t in threading.enumerate()}
    reader = McapReader(tmp_path / 'bag' / 'bag.mcap')
    reader.open()
    source = prefetch.messages(reader, reader.connections)
    next(source)
    assert any(t.name.startswith('mcap-inflate') for t in threading.enumerate())
    source.close()
    reader.close()
    assert {t.ident for t in threading.enumerate()} <= before


def test_inflate_refuses_a_frame_larger_than_declared() -> None:
    """A zstd frame announcing more than the chunk declares is not expanded (bomb)."""
    frame = zstd.compress(bytes(1 << 20))
    assert mcap.decompress_bounded(frame, 'zstd', 1 << 20) == bytes(1 << 20)
    with pytest.raises(ValueError, match='past its declared'):
        mcap.decompress_bounded(frame, 'zstd', 1000)


def test_without_zstandard_rosbags_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcap, 'zstandard', None)
    write_bag(tmp_path / 'bag', [10**18 + i * 1_000 for i in range(30)])
    expected, got, _ = both(tmp_path / 'bag' / 'bag.mcap')
    assert got == expected


def test_short_message_record_is_an_error_not_a_misread() -> None:
    """A message record shorter than its 22-byte head would read the next record's bytes."""
    good = struct.pack('<BQ', 0x05, 26) + struct.pack('<HIQQ', 1, 0, 5, 5) + b'abcd'
    short = struct.pack('<BQ', 0x05, 4) + b'wxyz'
    channels = {1: 'conn'}
    assert mcap.chunk_messages(good, channels, 0, 10) == [(5, 'conn', b'abcd')]
    with pytest.raises(ValueError, match='4 bytes long'):
        mcap.chunk_messages(short + good, channels, 0, 10)
    with pytest.raises(ValueError, match='overruns'):
        mcap.chunk_messages(good[:-1], channels, 0, 10)
