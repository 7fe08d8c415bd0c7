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

"""MCAP record layout, no inflation: record fields, the layout check rosbags needs, chunk
records, and where the records of a damaged file are.

A top-level record header whose length is damaged (zeroed, a flipped bit) hides where the next
record starts, and the salvage's front-to-back scan used to stop there: every later chunk was
lost although only one header was hurt (review 22c, F2). The next start comes from the
summary's ChunkIndex records when the footer and summary still read (a recording that was
closed), else from a forward scan for an offset that parses as a chunk record whose header adds
up to its length (a recorder that died leaves no summary). A false match of that scan needs a
known compression name and two length fields that agree byte for byte: not met by chance.

The damaged chunk's compressed records are usually intact: :func:`chunk_span` locates them by
the chunk's ChunkIndex record (every header field but the CRC), else by the chunk's own fields
when they are a chunk's and end where the next records start (only its opcode or length was
hurt); the salvage inflates them, and :func:`chunk_contents` accepts them only whole.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple
from zlib import crc32

MCAP_MAGIC = b'\x89MCAP0\r\n'
OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_CHUNK_INDEX = 2, 3, 4, 5, 6, 8
_RECORD = struct.Struct('<BQ')  # opcode, body length
_U64 = struct.Struct('<Q')
_MSG_HEAD = struct.Struct('<HIQQ')  # channel id, sequence, log time, publish time
_CHUNK_FIXED = struct.Struct('<QQQII')  # start, end, uncompressed size, crc, name length
_INDEX_HEAD = struct.Struct('<QQQQI')  # start, end, chunk offset, chunk length, map length
_FOOTER = 20  # summary_start u64, summary_offset_start u64, summary_crc u32
_COMPRESSIONS = (b'', b'zstd', b'lz4')
_WINDOW = 1 << 20  # bytes searched per step of the forward scan
_CHUNK_BYTE = bytes([OP_CHUNK])
# a chunk record's bytes before its records field (which ends it), less the compression name
_CHUNK_DATA = _RECORD.size + _CHUNK_FIXED.size + 8
_SHORTEST = {OP_SCHEMA: 2, OP_CHANNEL: 4, OP_MESSAGE: _MSG_HEAD.size}  # records a chunk holds

Buffer = memoryview


class LayoutError(Exception):
    """An MCAP file whose record layout rosbags must not be handed (internal)."""


class TruncatedError(Exception):
    """A record runs past the end of the data (internal to the MCAP scanner)."""


def reason(exc: Exception) -> str:
    """What an exception met reading a record says, for an issue."""
    text = str(exc) or 'record cut short'
    if not isinstance(exc, TruncatedError | ValueError):
        text = f'{type(exc).__name__}: {text}'  # e.g. ZstdError from a corrupt chunk
    return text


def take(buf: Buffer, pos: int, size: int) -> tuple[Buffer, int]:
    """The ``size`` bytes at ``pos`` and the offset after them (TruncatedError: fewer left)."""
    if pos + size > len(buf):
        raise TruncatedError
    return buf[pos : pos + size], pos + size


def string_at(buf: Buffer, pos: int) -> tuple[str, int]:
    """The MCAP string (u32 length, UTF-8) at ``pos`` and the offset after it."""
    raw, pos = take(buf, pos, 4)
    (size,) = struct.unpack('<I', raw)
    raw, pos = take(buf, pos, size)
    return bytes(raw).decode('utf-8', 'replace'), pos


def check_mcap_records(path: Path) -> str | None:
    """Why rosbags must not open ``path`` (None: the top-level record layout is sound).

    rosbags allocates a record's length as read from the file (``read_sized``: a damaged length
    of 2**62 means a MemoryError or gigabytes); so every top-level record (opcode u8, length u64)
    is walked with seeks first and its length checked against the bytes left in the file, and the
    footer's summary offsets must point at record starts. Cost: one 9-byte read per record.
    """
    size = path.stat().st_size
    starts: set[int] = set()
    with path.open('rb') as f:
        if f.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
            return 'not an MCAP file (bad magic)'
        pos = len(MCAP_MAGIC)
        while True:
            head = f.read(9)
            if len(head) < 9:
                return f'record header at offset {pos} cut short: no footer'
            op = head[0]
            (length,) = _U64.unpack(head[1:])
            if length > size - len(MCAP_MAGIC) - pos - 9:
                return (
                    f'record opcode 0x{op:02x} at offset {pos} claims {length} bytes, more than '
                    f'the {size - len(MCAP_MAGIC) - pos - 9} left before the closing magic'
                )
            starts.add(pos)
            if op == OP_FOOTER:
                if length < 16:
                    return f'footer at offset {pos} too short ({length} bytes)'
                summary, offsets = struct.unpack('<QQ', f.read(16))
                for name, at in (('summary_start', summary), ('summary_offset_start', offsets)):
                    if at and at not in starts:
                        return f'footer {name} {at} is not a record start'
                return None
            pos += 9 + length
            f.seek(pos)


def chunk_body(record: bytes) -> memoryview | None:
    """The body of ``record`` when it is exactly one chunk record (opcode, length, body)."""
    op, length = _RECORD.unpack_from(record)
    if op != OP_CHUNK or _RECORD.size + length != len(record):
        return None
    return memoryview(record)[_RECORD.size :]


def chunk_messages(
    inner: bytes, channels: dict[int, Any], start: int, end: int
) -> list[tuple[int, Any, bytes]]:
    """``(log time, connection, data)`` of a chunk's messages on ``channels``, by log time.

    Stamps outside the chunk's ``[start, end]`` are left out, as rosbags does.
    """
    out: list[tuple[int, Any, bytes]] = []
    pos, size = 0, len(inner)
    while pos < size:
        op, length = _RECORD.unpack_from(inner, pos)
        pos += _RECORD.size
        if pos + length > size:
            msg = f'chunk record at {pos - _RECORD.size} overruns the chunk'
            raise ValueError(msg)
        if op == OP_MESSAGE:
            if length < _MSG_HEAD.size:
                msg = f'message record at {pos - _RECORD.size} is {length} bytes long'
                raise ValueError(msg)
            channel, _, log_time, _ = _MSG_HEAD.unpack_from(inner, pos)
            conn = channels.get(channel)
            if conn is not None and start <= log_time <= end:
                out.append((log_time, conn, inner[pos + _MSG_HEAD.size : pos + length]))
        pos += length
    out.sort(key=itemgetter(0))  # stable: storage order at equal stamps
    return out


class IndexedChunk(NamedTuple):
    """A chunk as its ChunkIndex record in the summary lists it."""

    start: int  # offset of the chunk record
    length: int  # of the whole record, opcode and length included
    first: int  # log time range of its messages
    last: int
    compression: bytes
    compressed: int  # bytes of its records field
    size: int  # what they inflate to


class Summary(NamedTuple):
    """What the summary section says about the chunks."""

    start: int  # offset of the summary section
    starts: list[int]  # every chunk start a ChunkIndex record lists, sorted
    chunks: dict[int, IndexedChunk]  # start -> its ChunkIndex record, where it reads whole (none
    # when the footer's summary CRC, if any, does not match)


class ChunkSpan(NamedTuple):
    """Where a chunk's compressed records lie, what they inflate to, and by whose word."""

    begin: int  # file offsets of the records field
    end: int
    compression: str
    size: int
    crc: int  # the uncompressed CRC the chunk's header holds (0: none)
    first: int
    last: int
    source: str


def _indexed(buf: Buffer, body: int, length: int) -> IndexedChunk | None:
    """The ChunkIndex record whose body starts at ``body`` (None: it does not read whole)."""
    if length < _INDEX_HEAD.size + 8 + 4 + 16:
        return None
    first, last, start, size, mapped = _INDEX_HEAD.unpack_from(buf, body)
    at = body + _INDEX_HEAD.size + mapped + 8  # past the message index offsets and length
    if at + 4 > body + length:
        return None
    (name,) = struct.unpack_from('<I', buf, at)
    if at + 4 + name + 16 > body + length:
        return None
    csize, usize = struct.unpack_from('<QQ', buf, at + 4 + name)
    return IndexedChunk(start, size, first, last, bytes(buf[at + 4 : at + 4 + name]), csize, usize)


def summary_index(buf: Buffer) -> Summary | None:
    """The chunks the summary's ChunkIndex records list; None when the footer or the summary
    section cannot be read."""
    end = len(buf) - len(MCAP_MAGIC)
    footer = end - _RECORD.size - _FOOTER
    if footer < len(MCAP_MAGIC) or bytes(buf[end:]) != MCAP_MAGIC:
        return None
    op, length = _RECORD.unpack_from(buf, footer)
    if op != OP_FOOTER or length != _FOOTER:
        return None
    summary, _, crc = struct.unpack_from('<QQI', buf, footer + _RECORD.size)
    if not len(MCAP_MAGIC) <= summary < footer:
        return None
    starts, chunks = [], {}
    pos = summary
    while pos < footer:
        if footer - pos < _RECORD.size:
            return None
        op, length = _RECORD.unpack_from(buf, pos)
        body = pos + _RECORD.size
        if length > footer - body:
            return None  # the summary is damaged too: the forward scan decides
        if op == OP_CHUNK_INDEX and length >= 32:
            (start,) = struct.unpack_from('<Q', buf, body + 16)
            starts.append(start)
            entry = _indexed(buf, body, length)
            if entry is not None and entry.start == start:
                chunks[start] = entry
        pos = body + length
    if crc and crc32(buf[summary : footer + _RECORD.size + 16]) != crc:
        chunks = {}  # the offsets still guide the resync (each is checked there), no more
    return Summary(summary, sorted(starts), chunks)


def _fields(buf: Buffer, body: int, max_size: int) -> tuple[int, ...] | None:
    """``(first, last, size, crc, name length, records length)`` of the chunk fields at
    ``body`` when they are those of a chunk (first <= last, a known compression, an
    uncompressed size up to ``max_size``); else None."""
    if body < 0 or body + _CHUNK_FIXED.size > len(buf):
        return None
    first, last, size, crc, name = _CHUNK_FIXED.unpack_from(buf, body)
    at = body + _CHUNK_FIXED.size
    if first > last or size > max_size or name > 4 or at + name + 8 > len(buf):
        return None
    if bytes(buf[at : at + name]) not in _COMPRESSIONS:
        return None
    (records,) = struct.unpack_from('<Q', buf, at + name)
    return first, last, size, crc, name, records


def chunk_adds_up(buf: Buffer, pos: int, length: int) -> bool:
    """True when the fields of the chunk record at ``pos`` (a compression name of at most 4
    bytes, the records length) add up to its ``length``."""
    body = pos + _RECORD.size
    if body + _CHUNK_FIXED.size > len(buf):
        return False
    (name,) = struct.unpack_from('<I', buf, body + _CHUNK_FIXED.size - 4)
    if name > 4 or body + _CHUNK_FIXED.size + name + 8 > len(buf):
        return False
    (records,) = _U64.unpack_from(buf, body + _CHUNK_FIXED.size + name)
    return bool(_CHUNK_FIXED.size + name + 8 + records == length)


def plausible_chunk(buf: Buffer, pos: int, max_size: int, *, opcode: bool = True) -> bool:
    """True when a chunk record starts at ``pos``: its opcode (unless ``opcode`` is false: a
    chunk whose opcode is damaged), a length inside the file, a known compression, an
    uncompressed size up to ``max_size``, and a records length that adds up to the record's
    length."""
    if pos < 0 or pos + _RECORD.size > len(buf):
        return False
    op, length = _RECORD.unpack_from(buf, pos)
    body = pos + _RECORD.size
    if (opcode and op != OP_CHUNK) or length > len(buf) - body:
        return False
    return chunk_adds_up(buf, pos, length) and _fields(buf, body, max_size) is not None


def _whole_records(buf: Buffer, pos: int, limit: int) -> bool:
    """True when the bytes from ``pos`` to ``limit`` are whole records (nonzero opcodes)."""
    while pos < limit:
        if limit - pos < _RECORD.size:
            return False
        op, length = _RECORD.unpack_from(buf, pos)
        if op == 0 or length > limit - pos - _RECORD.size:
            return False
        pos += _RECORD.size + length
    return True


def chunk_span(
    buf: Buffer, at: int, summary: Summary | None, limit: int | None, max_size: int
) -> ChunkSpan | str | None:
    """The records of the chunk at ``at``, whose opcode or length is damaged (the rest of its
    header may be, too), or why they cannot be located safely; None: no chunk there as far as
    can be told.

    1. The summary's ChunkIndex record of ``at``: its lengths must add up (the records field
       ends the chunk record) and the chunk must end before the summary.
    2. Else, with ``limit`` (where the next top-level records start), the chunk's own fields:
       those of a chunk, describing a record that ends at ``limit`` or is followed up to
       ``limit`` by whole records (its message indexes). Nothing else is guessed.
    """
    entry = summary.chunks.get(at) if summary is not None else None
    if entry is not None and summary is not None:
        kind, data = entry.compression, _CHUNK_DATA + len(entry.compression)
        if kind not in _COMPRESSIONS or entry.first > entry.last or entry.size > max_size:
            return f'its chunk index entry is not that of a chunk ({kind!r}, {entry.size} bytes)'
        if data + entry.compressed != entry.length or at + entry.length > summary.start:
            return 'the lengths of its chunk index entry do not add up'
        (crc,) = struct.unpack_from('<I', buf, at + 33)
        end, how = at + entry.length, "the summary's chunk index"
        begin = end - entry.compressed
        return ChunkSpan(begin, end, kind.decode(), entry.size, crc, entry.first, entry.last, how)
    fields = _fields(buf, at + _RECORD.size, max_size) if limit is not None else None
    if fields is None or limit is None:
        return 'its fields are not those of a chunk' if buf[at] == OP_CHUNK else None
    first, last, size, crc, name_length, records = fields
    begin = at + _CHUNK_DATA + name_length
    if begin + records > limit or not _whole_records(buf, begin + records, limit):
        return f'its own fields describe a record that runs past {limit} or stops short of it'
    name = bytes(buf[begin - 8 - name_length : begin - 8]).decode()
    return ChunkSpan(begin, begin + records, name, size, crc, first, last, 'its own fields')


def chunk_contents(
    inner: Buffer, first: int, last: int, channels: Collection[int]
) -> tuple[list[tuple[int, Buffer]], list[tuple[int, int, Buffer]]]:
    """The Schema and Channel records ``(opcode, body)`` and the messages ``(channel, log
    time, data)`` of a recovered chunk's inflated records; ValueError unless each record is one
    of those, whole, and each message is on a channel of ``channels`` (or declared before it in
    the chunk), stamped within ``first``-``last``."""
    known = set(channels)
    declared: list[tuple[int, Buffer]] = []
    found: list[tuple[int, int, Buffer]] = []
    pos = 0
    while pos < len(inner):
        if len(inner) - pos < _RECORD.size:
            msg = f'its records end in {len(inner) - pos} bytes, no record header'
            raise ValueError(msg)
        op, length = _RECORD.unpack_from(inner, pos)
        body = inner[pos + _RECORD.size : pos + _RECORD.size + length]
        least = _SHORTEST.get(op)
        if least is None or len(body) != length or length < least:
            msg = (
                f'its record at byte {pos} (opcode 0x{op:02x}, {length} bytes) is no whole '
                'Schema, Channel or Message record'
            )
            raise ValueError(msg)
        if op == OP_MESSAGE:
            channel, _, stamp, _ = _MSG_HEAD.unpack_from(body)
            if channel not in known or not first <= stamp <= last:
                msg = (
                    f'its message at byte {pos} is on channel {channel}, stamped {stamp}: not '
                    f'a known channel within {first}-{last}'
                )
                raise ValueError(msg)
            found.append((channel, stamp, body[_MSG_HEAD.size :]))
        else:
            if op == OP_CHANNEL:
                known.add(struct.unpack_from('<H', body)[0])
            declared.append((op, body))
        pos += _RECORD.size + length
    return declared, found


def time_note(
    offset: int, body: Buffer, stamps: Sequence[int], entry: IndexedChunk | None
) -> str | None:
    """What is damaged when the time range of the chunk record ``body`` at ``offset`` does not
    cover its messages' log times ``stamps`` or differs from ``entry``, its ChunkIndex record
    (None: nothing)."""
    first, last = struct.unpack_from('<QQ', body)
    covered = not stamps or (first <= min(stamps) and max(stamps) <= last)
    if covered and (entry is None or (entry.first, entry.last) == (first, last)):
        return None
    seen = f'stamped {min(stamps)}-{max(stamps)}' if stamps else 'none'
    listed = f" (the summary's chunk index: {entry.first}-{entry.last})" if entry else ''
    return (
        f'chunk at offset {offset}: its header gives the time range {first}-{last}{listed}, '
        f'its messages are {seen}: a time field or a stamp is damaged; messages kept'
    )


def skip_note(buf: Buffer, offset: int, limit: int, how: str) -> str:
    """What an issue says of the damaged top-level header at ``offset``, skipped up to
    ``limit`` (found by ``how``)."""
    op, size = _RECORD.unpack_from(buf, offset)
    left = len(buf) - offset - _RECORD.size
    fits = op == OP_CHUNK and size <= left  # but its chunk fields do not add up to it
    claim = 'not what its chunk fields add up to' if fits else f'{left} left'
    return (
        f'record opcode 0x{op:02x} at offset {offset} claims {size} bytes ({claim}): bytes '
        f'{offset}-{limit} skipped, read on at the next chunk (found by {how})'
    )


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


def next_start(
    buf: Buffer, after: int, max_size: int, summary: Summary | None
) -> tuple[int, str] | None:
    """The first offset past ``after`` where the top-level records go on (the next chunk, or
    the summary section after the last one), and how it was found; None: nowhere.
    ``summary``: :func:`summary_index` of ``buf``."""
    if summary is not None and summary.starts:
        at = _first_chunk(buf, summary.starts, after, max_size)
        how = "the summary's chunk index"
    else:  # no summary, or one without chunk indexes
        at, how = _scan_forward(buf, after, max_size), 'a forward scan for a chunk record'
    if at is not None:
        return at, how
    if summary is not None and summary.start > after:  # no chunk after the damage
        return summary.start, 'the summary section'
    return None


__all__ = [
    'MCAP_MAGIC',
    'ChunkSpan',
    'IndexedChunk',
    'LayoutError',
    'Summary',
    'TruncatedError',
    'check_mcap_records',
    'chunk_adds_up',
    'chunk_body',
    'chunk_contents',
    'chunk_messages',
    'chunk_span',
    'next_start',
    'plausible_chunk',
    'reason',
    'skip_note',
    'string_at',
    'summary_index',
    'take',
    'time_note',
]
