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

"""A chunk whose header is damaged gives back its messages, exactly, where that can be checked.

The salvage resynchronised after a damaged chunk header (test_mcap_resync.py) but lost the
chunk's own messages, although its compressed records were intact. They are recovered now, by
the summary's ChunkIndex record of the chunk or (no summary) by the chunk's own fields where
only its opcode or length is hurt, and only when they inflate to the size given, match a
nonzero CRC, and read as a chunk's records. Every read here is compared with the read of the
undamaged bag: same topics, types, stamps and bytes; the damage is an issue either way.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rosbags.rosbag2 import CompressionFormat, CompressionMode
from rosbags.rosbag2.storage_mcap import McapReader

from dmil_ros.bagio import RawMessage, RobustReader, mcap, typestore
from tests.bagio.test_reader_salvage import STRING, write_bag_at

Row = tuple[int, str, str, bytes]  # log time, topic, type, CDR


@dataclass(frozen=True)
class Chunk:
    start: int  # offset of the chunk record
    first: int  # log time range of its messages
    last: int


@dataclass(frozen=True)
class Bag:
    data: bytes
    chunks: list[Chunk]  # in file order
    truth: list[Row]  # the undamaged bag, as RobustReader reads it

    def damaged(self, *damage: Callable[[bytearray], object], summary: bool = True) -> bytes:
        """The bag's bytes with ``damage`` done, cut before the summary unless ``summary``."""
        raw = bytearray(self.data)
        for hurt in damage:
            hurt(raw)
        (summary_start,) = struct.unpack_from('<Q', self.data, len(self.data) - 8 - 20)
        return bytes(raw if summary else raw[:summary_start])

    def without(self, k: int) -> list[Row]:
        return [r for r in self.truth if not self.chunks[k].first <= r[0] <= self.chunks[k].last]


def rows(reader: RobustReader) -> list[Row]:
    return [(m.timestamp, m.topic, m.msgtype, m.data) for m in reader]


def write(folder: Path, compression: str, crc: bool) -> Bag:
    """220 messages of 20 kB of letters on /a and /b: five chunks of about 1 MB (CRC 0, as
    rosbags writes them, unless ``crc``: then each chunk's CRC is filled in)."""
    store = typestore()
    written = []
    for i in range(220):
        text = ''.join(random.Random(i).choices('ABCDEFGH', k=20_000))
        data = bytes(store.serialize_cdr(store.types[STRING](data=text), STRING))
        written.append((10**18 + i, '/a' if i % 3 else '/b', data))
    zstd = {'set_compression': (CompressionMode.STORAGE, CompressionFormat.ZSTD)}
    write_bag_at(folder, written, **(zstd if compression == 'zstd' else {}))
    file = folder / f'{folder.name}.mcap'
    reader = McapReader(file)
    reader.open()
    index = sorted(reader.chunks, key=lambda c: c.chunk_start_offset)
    reader.close()
    data = bytearray(file.read_bytes())
    for c in index if crc else []:
        record = bytes(data[c.chunk_start_offset : c.chunk_start_offset + c.chunk_length])
        body = mcap.chunk_body(record)
        assert body is not None
        inner = mcap.chunk_records(body)
        struct.pack_into('<I', data, c.chunk_start_offset + 33, zlib.crc32(inner))
    file.write_bytes(bytes(data))
    chunks = [Chunk(c.chunk_start_offset, c.message_start_time, c.message_end_time) for c in index]
    assert len(chunks) == 5
    truth = rows(RobustReader(file))
    assert len(truth) == 220
    return Bag(bytes(data), chunks, truth)


@pytest.fixture(scope='module')
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bag]:
    root = tmp_path_factory.mktemp('recovery')
    return {
        'zstd': write(root / 'zstd', 'zstd', crc=False),
        'none': write(root / 'none', '', crc=False),
        'crc': write(root / 'crc', 'zstd', crc=True),
    }


def read(
    path: Path, data: bytes, topics: list[str] | None = None
) -> tuple[list[Row], RobustReader]:
    path.write_bytes(data)
    reader = RobustReader(path, topics)
    return rows(reader), reader


def issue_at(reader: RobustReader, path: Path, offset: int) -> str:
    """The message of the one issue at ``offset``, which names the file."""
    (issue,) = [i for i in reader.issues if i.offset == offset]
    assert issue.file == str(path)
    return issue.message


def zero_header(at: int) -> Callable[[bytearray], object]:
    """The chunk record's opcode and length zeroed."""
    return lambda raw: raw.__setitem__(slice(at, at + 9), bytes(9))


def xor(at: int, mask: int) -> Callable[[bytearray], object]:
    return lambda raw: raw.__setitem__(at, raw[at] ^ mask)


def salvage_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The indexed read fails at once (rosbags reads some damaged headers through the chunk
    index itself): the salvage reads the whole file."""

    def failing(self: RobustReader) -> Iterator[RawMessage]:
        raise OSError('indexed read disabled by the test')

    monkeypatch.setattr(RobustReader, '_indexed', failing)


HEADER_DAMAGE = {
    'zeroed': zero_header,
    'length past the end': lambda at: xor(at + 8, 0x10),
    'length 16 bytes off': lambda at: xor(at + 1, 0x10),  # inside the file: misaligned only
    'opcode unknown': lambda at: xor(at, 0x10),  # 0x16: skipped without a word
    'opcode footer': lambda at: xor(at, 0x04),  # 0x02: ended the scan
}


@pytest.mark.parametrize('summary', [True, False])
@pytest.mark.parametrize('damage', list(HEADER_DAMAGE))
def test_a_chunk_whose_record_header_is_damaged_is_read_whole(
    bags: dict[str, Bag],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
    summary: bool,
) -> None:
    """By the summary's chunk index, or without it (a recorder that died) by the chunk's own
    fields, which add up to a record that ends where the next records start."""
    salvage_only(monkeypatch)
    bag = bags['zstd']
    at = bag.chunks[1].start
    path = tmp_path / 'bag.mcap'
    got, reader = read(path, bag.damaged(HEADER_DAMAGE[damage](at), summary=summary))
    assert reader.mode == 'salvage'
    assert got == bag.truth
    text = issue_at(reader, path, at)
    how = "the summary's chunk index" if summary else 'its own fields'
    assert f'the chunk there is recovered: its 53 messages, located by {how}' in text
    assert 'no CRC to check' in text


def test_a_first_chunk_recovered_brings_its_channel_declarations(
    bags: dict[str, Bag], tmp_path: Path
) -> None:
    """No summary and the first chunk's header zeroed: the chunk declares both channels, so
    every message of the bag was lost ('never read'); the recovered chunk declares them."""
    bag = bags['zstd']
    at = bag.chunks[0].start
    path = tmp_path / 'bag.mcap'
    data = bag.damaged(zero_header(at), summary=False)
    got, reader = read(path, data)
    assert reader.mode == 'salvage'
    assert got == bag.truth
    assert 'the chunk there is recovered' in issue_at(reader, path, at)
    assert not any('never read' in i.message for i in reader.issues)
    got, _ = read(path, data, ['/b'])
    assert got == [r for r in bag.truth if r[1] == '/b']


@pytest.mark.parametrize('summary', [True, False])
@pytest.mark.parametrize('field', ['uncompressed size', 'compression', 'name length', 'size'])
def test_damaged_chunk_fields_are_taken_from_the_chunk_index_only(
    bags: dict[str, Bag], tmp_path: Path, field: str, summary: bool
) -> None:
    """Chunk 1's header field damaged, its record header intact: the chunk index gives every
    field; without it, nothing is guessed (chunk 1 is lost, and named). Chunk 3's zeroed
    record header is recovered either way."""
    bag = bags['zstd']
    at, other = bag.chunks[1].start, bag.chunks[3].start
    spoil = {
        'uncompressed size': xor(at + 9 + 16 + 1, 0x01),
        'compression': xor(at + 9 + 32 + 3, 0x01),  # 'zstd' -> 'zste'
        'name length': xor(at + 9 + 28, 0x08),
        'size': xor(at + 9 + 36 + 1, 0x01),  # the compressed size
    }[field]
    path = tmp_path / 'bag.mcap'
    got, reader = read(path, bag.damaged(spoil, zero_header(other), summary=summary))
    assert reader.mode == 'salvage'
    assert got == (bag.truth if summary else bag.without(1))
    text = issue_at(reader, path, at)
    if summary:
        assert "recovered: its 53 messages, located by the summary's chunk index" in text
    else:
        assert 'skipped' in text
        assert 'the chunk there is recovered' not in text
    assert 'the chunk there is recovered' in issue_at(reader, path, other)


@pytest.mark.parametrize('summary', [True, False])
def test_a_nonzero_crc_decides(bags: dict[str, Bag], tmp_path: Path, summary: bool) -> None:
    """Chunks with CRCs: chunk 1's zeroed record header is recovered, its CRC checked; chunk 3,
    whose CRC field is damaged too, is not (the data or the CRC is damaged: nothing tells
    which)."""
    bag = bags['crc']
    at, other = bag.chunks[1].start, bag.chunks[3].start
    damage = (zero_header(at), zero_header(other), xor(other + 9 + 24, 0x01))
    path = tmp_path / 'bag.mcap'
    got, reader = read(path, bag.damaged(*damage, summary=summary))
    assert reader.mode == 'salvage'
    assert got == bag.without(3)
    assert 'recovered: its 53 messages' in issue_at(reader, path, at)
    assert 'its CRC matches' in issue_at(reader, path, at)
    assert 'not recovered: chunk CRC mismatch' in issue_at(reader, path, other)


@pytest.mark.parametrize('summary', [True, False])
@pytest.mark.parametrize('record', ['stamp', 'channel'])
def test_an_uncompressed_chunk_is_recovered_whole_or_not_at_all(
    bags: dict[str, Bag], tmp_path: Path, record: str, summary: bool
) -> None:
    """Uncompressed chunks (no stream to fail): chunk 1's zeroed record header is recovered;
    chunk 3, whose first message is also stamped outside the chunk's time range or sent on a
    channel never declared, is not: none of its messages is yielded."""
    bag = bags['none']
    at, other = bag.chunks[1].start, bag.chunks[3].start
    message = other + 49 + 9  # its records field (no compression name), a message record
    spoil = {
        'stamp': lambda raw: struct.pack_into('<Q', raw, message + 6, 5),
        'channel': lambda raw: struct.pack_into('<H', raw, message, 999),
    }[record]
    path = tmp_path / 'bag.mcap'
    damage = (zero_header(at), zero_header(other), spoil)
    got, reader = read(path, bag.damaged(*damage, summary=summary))
    assert reader.mode == 'salvage'
    assert got == bag.without(3)
    assert 'the chunk there is recovered' in issue_at(reader, path, at)
    text = issue_at(reader, path, other)
    assert 'the chunk there is not recovered: its message at byte 0 is on channel' in text
    assert ('stamped 5:' if record == 'stamp' else 'on channel 999,') in text


@pytest.mark.parametrize('summary', [True, False])
def test_a_damaged_time_range_is_named_and_its_messages_kept(
    bags: dict[str, Bag], tmp_path: Path, summary: bool
) -> None:
    """Chunk 1's message_end_time has a flipped bit: it takes no part in decoding, so the
    messages are kept, and the issue names it (chunk 3's zeroed header makes rosbags fail)."""
    bag = bags['zstd']
    at, other = bag.chunks[1].start, bag.chunks[3].start
    path = tmp_path / 'bag.mcap'
    damage = (xor(at + 9 + 8 + 7, 0x01), zero_header(other))
    got, reader = read(path, bag.damaged(*damage, summary=summary))
    assert reader.mode == 'salvage'
    assert got == bag.truth
    text = issue_at(reader, path, at)
    assert 'a time field or a stamp is damaged; messages kept' in text
    first, last = bag.chunks[1].first, bag.chunks[1].last
    assert f'its messages are stamped {first}-{last}' in text
    assert 'the chunk there is recovered' in issue_at(reader, path, other)
