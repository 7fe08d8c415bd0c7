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

"""A damaged top-level record header costs its own chunk, not every later one (review 22c, F2).

Zeroed or bit-flipped bytes in one chunk's 9-byte header (opcode, length) hid where the next
record starts, and the salvage stopped there: 32 of 300 frames were kept of a bag whose
summary, and so rosbags' own indexed read, was intact. The damaged chunk's own records are
spoiled here too (its zstd frame magic), so that it cannot be recovered
(test_mcap_chunk_recovery.py): what is tested is the read of the chunks after it.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from rosbags.rosbag2 import CompressionFormat, CompressionMode
from rosbags.rosbag2.storage_mcap import McapReader

from dmil_ros.bagio import RobustReader, typestore
from tests.bagio.test_reader_salvage import STRING, write_bag_at

Row = tuple[int, str, bytes]


@pytest.fixture(scope='module')
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[Row], list[tuple]]:
    """An MCAP file of several zstd chunks: its bytes, its rows and ``(start, first, last)``
    (offset, first and last log time) of each chunk in file order."""
    store = typestore()
    rows = []  # 20 kB messages of letters: about 1 MB chunks
    for i in range(220):
        text = ''.join(random.Random(i).choices('ABCDEFGH', k=20_000))
        data = bytes(store.serialize_cdr(store.types[STRING](data=text), STRING))
        rows.append((10**18 + i, '/a' if i % 3 else '/b', data))
    folder = tmp_path_factory.mktemp('resync') / 'bag'
    write_bag_at(folder, rows, set_compression=(CompressionMode.STORAGE, CompressionFormat.ZSTD))
    file = folder / 'bag.mcap'
    reader = McapReader(file)
    reader.open()
    chunks = sorted(
        (c.chunk_start_offset, c.message_start_time, c.message_end_time) for c in reader.chunks
    )
    reader.close()
    assert len(chunks) >= 4
    return file.read_bytes(), rows, chunks


def read(path: Path, data: bytes) -> tuple[list[Row], RobustReader]:
    path.write_bytes(data)
    got = RobustReader(path)
    return [(m.timestamp, m.topic, m.data) for m in got], got


def without_chunk(rows: list[Row], chunk: tuple) -> list[Row]:
    return [r for r in rows if not chunk[1] <= r[0] <= chunk[2]]


def spoil_records(raw: bytearray, at: int) -> None:
    """The zstd frame magic of the chunk at ``at`` damaged: its records cannot be recovered."""
    assert raw[at + 9 + 32 : at + 9 + 36] == b'zstd'
    raw[at + 9 + 44] ^= 0xFF  # after the name, the compressed size: the frame's first byte


@pytest.mark.parametrize('summary', [True, False])
def test_a_zeroed_chunk_header_costs_that_chunk_only(
    recorded: tuple[bytes, list[Row], list[tuple]], tmp_path: Path, summary: bool
) -> None:
    """With the summary, the chunk index says where the next chunk starts; without it (a
    recorder that died), a forward scan finds the next chunk record."""
    data, rows, chunks = recorded
    raw = bytearray(data)
    at = chunks[1][0]
    raw[at : at + 9] = bytes(9)
    spoil_records(raw, at)
    if not summary:
        (summary_start,) = struct.unpack_from('<Q', data, len(data) - 8 - 20)
        raw = raw[:summary_start]
    got, reader = read(tmp_path / 'bag.mcap', bytes(raw))
    assert reader.mode == 'salvage'
    assert got == without_chunk(rows, chunks[1])
    how = "the summary's chunk index" if summary else 'a forward scan for a chunk record'
    skipped = [i for i in reader.issues if 'skipped, read on at the next chunk' in i.message]
    assert len(skipped) == 1
    assert skipped[0].offset == at
    assert f'bytes {at}-{chunks[2][0]} skipped' in skipped[0].message
    assert how in skipped[0].message
    assert 'the chunk there is not recovered: ZstdError' in skipped[0].message


def test_a_flipped_length_bit_costs_that_chunk_only(
    recorded: tuple[bytes, list[Row], list[tuple]], tmp_path: Path
) -> None:
    data, rows, chunks = recorded
    raw = bytearray(data)
    raw[chunks[2][0] + 8] ^= 0x10  # the length's top byte: far past the end of the file
    spoil_records(raw, chunks[2][0])
    got, reader = read(tmp_path / 'bag.mcap', bytes(raw))
    assert got == without_chunk(rows, chunks[2])
    assert any(i.offset == chunks[2][0] for i in reader.issues)


def test_damage_in_the_last_chunk_still_reads_the_summary_declarations(
    recorded: tuple[bytes, list[Row], list[tuple]], tmp_path: Path
) -> None:
    """No chunk after the damage: the scan goes on at the summary section (its Schema and
    Channel records) and ends at the footer, with everything before the chunk read."""
    data, rows, chunks = recorded
    raw = bytearray(data)
    raw[chunks[-1][0] : chunks[-1][0] + 9] = bytes(9)
    spoil_records(raw, chunks[-1][0])
    got, reader = read(tmp_path / 'bag.mcap', bytes(raw))
    assert got == without_chunk(rows, chunks[-1])
    assert any('found by the summary section' in i.message for i in reader.issues)
