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

"""Where the top-level records of a damaged MCAP file start again after a bad one.

A top-level record header whose length is damaged (zeroed, a flipped bit) hides where the next
record starts, and the salvage's front-to-back scan used to stop there: every later chunk was
lost although only one header was hurt (review 22c, F2). The next start comes from the
summary's ChunkIndex records when the footer and summary still read (a recording that was
closed), else from a forward scan for an offset that parses as a chunk record whose header adds
up to its length (a recorder that died leaves no summary). A false match of that scan needs a
known compression name and two length fields that agree byte for byte: not met by chance.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

MCAP_MAGIC = b'\x89MCAP0\r\n'
OP_FOOTER, OP_CHUNK, OP_CHUNK_INDEX = 2, 6, 8
_RECORD = struct.Struct('<BQ')  # opcode, body length
_CHUNK_FIXED = struct.Struct('<QQQII')  # start, end, uncompressed size, crc, name length
_FOOTER = 20  # summary_start u64, summary_offset_start u64, summary_crc u32
_COMPRESSIONS = (b'', b'zstd', b'lz4')
_WINDOW = 1 << 20  # bytes searched per step of the forward scan
_CHUNK_BYTE = bytes([OP_CHUNK])

Buffer = memoryview


def summary_index(buf: Buffer) -> tuple[list[int], int] | None:
    """The chunk start offsets the summary's ChunkIndex records list, and where the summary
    starts; None when the footer or the summary section cannot be read."""
    end = len(buf) - len(MCAP_MAGIC)
    footer = end - _RECORD.size - _FOOTER
    if footer < len(MCAP_MAGIC) or bytes(buf[end:]) != MCAP_MAGIC:
        return None
    op, length = _RECORD.unpack_from(buf, footer)
    if op != OP_FOOTER or length != _FOOTER:
        return None
    (summary,) = struct.unpack_from('<Q', buf, footer + _RECORD.size)
    if not len(MCAP_MAGIC) <= summary < footer:
        return None
    starts = []
    pos = summary
    while pos < footer:
        if footer - pos < _RECORD.size:
            return None
        op, length = _RECORD.unpack_from(buf, pos)
        body = pos + _RECORD.size
        if length > footer - body:
            return None  # the summary is damaged too: the forward scan decides
        if op == OP_CHUNK_INDEX and length >= 32:
            _, _, start, _ = struct.unpack_from('<QQQQ', buf, body)
            starts.append(start)
        pos = body + length
    return sorted(starts), summary


def plausible_chunk(buf: Buffer, pos: int, max_size: int) -> bool:
    """True when a chunk record starts at ``pos``: its opcode, a length inside the file, a
    known compression, an uncompressed size up to ``max_size``, and a records length that adds
    up to the record's length."""
    if pos < 0 or pos + _RECORD.size + _CHUNK_FIXED.size > len(buf):
        return False
    op, length = _RECORD.unpack_from(buf, pos)
    body = pos + _RECORD.size
    if op != OP_CHUNK or length > len(buf) - body:
        return False
    first, last, size, _, name = _CHUNK_FIXED.unpack_from(buf, body)
    at = body + _CHUNK_FIXED.size
    if first > last or size > max_size or name > 4 or at + name + 8 > len(buf):
        return False
    if bytes(buf[at : at + name]) not in _COMPRESSIONS:
        return False
    (records,) = struct.unpack_from('<Q', buf, at + name)
    return bool(_CHUNK_FIXED.size + name + 8 + records == length)


def _scan_forward(buf: Buffer, after: int, max_size: int) -> int | None:
    pos = after + 1
    while pos < len(buf):
        window = bytes(buf[pos : pos + _WINDOW])
        hit = window.find(_CHUNK_BYTE)
        while hit >= 0:
            if plausible_chunk(buf, pos + hit, max_size):
                return pos + hit
            hit = window.find(_CHUNK_BYTE, hit + 1)
        pos += len(window)
    return None


def _first_chunk(buf: Buffer, starts: Sequence[int], after: int, max_size: int) -> int | None:
    return next((s for s in starts if s > after and plausible_chunk(buf, s, max_size)), None)


def next_start(buf: Buffer, after: int, max_size: int) -> tuple[int, str] | None:
    """The first offset past ``after`` where the top-level records go on (the next chunk, or
    the summary section after the last one), and how it was found; None: nowhere."""
    index = summary_index(buf)
    starts, summary = index if index is not None else ([], None)
    if starts:
        at, how = _first_chunk(buf, starts, after, max_size), "the summary's chunk index"
    else:  # no summary, or one without chunk indexes
        at, how = _scan_forward(buf, after, max_size), 'a forward scan for a chunk record'
    if at is not None:
        return at, how
    if summary is not None and summary > after:  # no chunk after the damage
        return summary, 'the summary section'
    return None


__all__ = ['MCAP_MAGIC', 'next_start', 'plausible_chunk', 'summary_index']
