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

"""MCAP at the byte level: bounded chunk inflation and a front-to-back salvage.

Format (https://mcap.dev/spec): magic, then ``opcode u8, length u64, body`` records. The salvage
scans the records in order; each chunk is decompressed and CRC-checked on its own, so a bad chunk
costs only its own messages; a top-level record whose header is damaged (a length past the end
of the file, opcode 0) is skipped up to the next chunk (:mod:`dmil_ros.bagio.mcap_layout`); a
chunk cut short (a recorder killed mid-write) gives the messages of its readable head,
compressed or not; the scan stops at the first record cut short with nothing after it.

A chunk whose header is damaged keeps its messages where its compressed records can be located
and checked (:meth:`McapSalvager._recover`): all or none, and an issue names the damage either
way. A time range that does not cover the messages is named, the messages kept (it takes no
part in decoding them); a CRC that does not match is never overruled.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from collections.abc import Collection, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any
from zlib import crc32  # releases the GIL on large buffers (the read-ahead thread)

from dmil_ros.bagio.mcap_layout import (
    MCAP_MAGIC,
    ChunkSpan,
    LayoutError,
    Summary,
    TruncatedError,
    check_mcap_records,
    chunk_adds_up,
    chunk_body,
    chunk_contents,
    chunk_messages,
    chunk_span,
    next_start,
    plausible_chunk,
    reason,
    skip_note,
    string_at,
    summary_index,
    take,
    time_note,
)
from dmil_ros.bagio.records import RawMessage, ReadIssue

zstandard: Any
try:  # optional: zstd with the GIL released (without it, backports.zstd, as rosbags)
    import zstandard
except ImportError:  # pragma: no cover - exercised where zstandard is not installed
    zstandard = None

_OP_HEADER, _OP_FOOTER, _OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 1, 2, 3, 4, 5, 6
_OP_PARTIAL_CHUNK = 0x100  # internal: the readable head of a chunk cut short
_OP_SKIPPED = 0x101  # internal: from a damaged top-level header to where the records go on
_U16 = struct.Struct('<H')
_U64 = struct.Struct('<Q')
_MSG_HEAD = struct.Struct('<HIQQ')  # channel id, sequence, log time, publish time
_CHUNK_HEAD = struct.Struct('<QQQI')  # start, end, uncompressed size, crc


MAX_CHUNK_BYTES = 256 << 20
"""Largest uncompressed MCAP chunk accepted (rosbags writes chunks of about 1 MB)."""


def _decompressor(compression: str) -> Any:
    """A streaming decompressor for an MCAP chunk's ``compression``."""
    if compression == 'zstd':
        from backports import zstd

        return zstd.ZstdDecompressor()
    if compression == 'lz4':
        from lz4.frame import LZ4FrameDecompressor  # type: ignore[import-untyped]

        return LZ4FrameDecompressor()
    msg = f'compression {compression!r} not supported'
    raise ValueError(msg)


def decompress_bounded(data: bytes, compression: str, size: int) -> bytes:
    """A chunk's bytes, inflated to at most ``size`` + 1 bytes (a zstd/lz4 bomb is not expanded).

    ``size`` is the chunk's declared uncompressed size; a size over :data:`MAX_CHUNK_BYTES` is
    refused before anything is allocated, and output past ``size`` is an error, not a buffer.
    With python-zstandard installed, a zstd frame that declares exactly ``size`` bytes is
    decoded in one call with the GIL released (so :mod:`dmil_ros.bagio.prefetch` can inflate on
    a second core); anything else (no declared size, several frames, damage) takes the bounded
    streaming decoder, which decides.
    """
    if size > MAX_CHUNK_BYTES:
        msg = f'chunk declares {size} uncompressed bytes (limit {MAX_CHUNK_BYTES})'
        raise ValueError(msg)
    if compression == '':
        return data
    if compression == 'zstd' and zstandard is not None:
        try:
            if zstandard.frame_content_size(data) == size:
                out = zstandard.ZstdDecompressor().decompress(data, allow_extra_data=False)
                if len(out) == size:
                    return bytes(out)
        except zstandard.ZstdError:
            pass
    dec = _decompressor(compression)
    out = bytes(dec.decompress(data, max_length=size + 1))
    if len(out) > size:
        msg = f'chunk inflates past its declared {size} bytes'
        raise ValueError(msg)
    if not dec.eof:  # the stream stopped early or is damaged (the full decoder would raise)
        msg = f'chunk stream does not end after {len(out)} bytes (declared {size})'
        raise ValueError(msg)
    return out


def chunk_records(body: memoryview) -> bytes:
    """A chunk record's body (after opcode and length) -> its records, inflated and checked.

    A size or CRC mismatch raises ValueError; a body cut short, the scanner's truncation error.
    """
    _, _, usize, crc = _CHUNK_HEAD.unpack(body[: _CHUNK_HEAD.size])
    compression, pos = string_at(body, _CHUNK_HEAD.size)
    raw, pos = take(body, pos, 8)
    (csize,) = _U64.unpack(raw)
    data, _ = take(body, pos, csize)
    return _inflated(bytes(data), compression, usize, crc)


def _inflated(data: bytes, compression: str, size: int, crc: int) -> bytes:
    """``data`` inflated to exactly ``size`` bytes of the CRC ``crc`` (0: none), else
    ValueError (a CRC mismatch: the data or the CRC is damaged, nothing tells which)."""
    inner = decompress_bounded(data, compression, size)
    if len(inner) != size:
        msg = f'chunk decompressed to {len(inner)} bytes, header says {size}'
        raise ValueError(msg)
    if crc and (computed := crc32(inner)) != crc:
        msg = f'chunk CRC mismatch (0x{computed:08x} computed, 0x{crc:08x} declared)'
        raise ValueError(msg)
    return inner


_RECORD = struct.Struct('<BQ')  # opcode, body length


def decompress_prefix(data: bytes, compression: str, size: int) -> bytes:
    """What a compressed stream cut short decodes to (at most ``size`` bytes, no end required)."""
    if size > MAX_CHUNK_BYTES:
        msg = f'chunk declares {size} uncompressed bytes (limit {MAX_CHUNK_BYTES})'
        raise ValueError(msg)
    return bytes(_decompressor(compression).decompress(data, max_length=size))


def bound_rosbags_decompression() -> None:
    """Make rosbags' MCAP reader inflate chunks with the bound above, too.

    ``rosbags.rosbag2.storage_mcap.decompress`` looks its decompressor up in the module table
    ``DECOMPRESSORS`` (``(data, declared size) -> bytes``) on every chunk and then compares the
    length with the declared size; the stock entries inflate the whole stream first (a 16 kB
    file reached about 1 GB). The bounded entries return at most ``size + 1`` bytes, so rosbags'
    own size check then rejects a bomb (ValueError / ReaderError -> salvage).
    """
    from rosbags.rosbag2 import storage_mcap

    table = getattr(storage_mcap, 'DECOMPRESSORS', None)
    if isinstance(table, dict):
        for name in ('zstd', 'lz4'):
            if name in table:
                table[name] = lambda data, size, name=name: decompress_bounded(data, name, size)


class McapSalvager:
    """Front-to-back scan of one (possibly damaged) MCAP file."""

    def __init__(self, path: Path, topics: Collection[str] | None, issues: list[ReadIssue]):
        self.path = path
        self.topics = set(topics) if topics else None
        self.issues = issues
        self.schemas: dict[int, str] = {}
        self.channels: dict[int, tuple[str, str]] = {}  # id -> (topic, msgtype)
        self.unknown_channel = 0  # messages whose channel record was never read
        self._resumes: dict[int, tuple[int, str] | None] = {}  # damaged offset -> next start
        self._buf = memoryview(b'')  # the file, while it is scanned

    def _issue(self, offset: int | None, message: str) -> None:
        self.issues.append(ReadIssue(str(self.path), offset, message))

    def _records(
        self, buf: memoryview, pos: int, base: int, in_chunk: bool, *, report: bool = True
    ) -> Iterator[tuple[int, memoryview, int]]:
        """Yield ``(opcode, body, file_offset)`` until the data ends or is cut short (noted in
        ``issues`` unless ``report`` is false); a damaged top-level header, as ``_OP_SKIPPED``
        with the bytes up to where the records go on (:meth:`_scan` reports it)."""
        note = self._issue if report else lambda offset, message: None
        end = len(buf)
        while pos < end:
            start = pos
            if end - pos < 9:
                note(base + start, f'record header cut short ({end - pos} bytes left)')
                return
            op = buf[pos]
            (size,) = _U64.unpack(buf[pos + 1 : pos + 9])
            pos += 9
            # opcode 0 is reserved: a zeroed header, whose length 0 would misalign what follows;
            # so would a chunk length its fields do not add up to
            if not in_chunk and (
                size > end - pos
                or op == 0
                or (op == _OP_CHUNK and not chunk_adds_up(buf, start, size))
            ):
                resume = self._resume(buf, base + start)
                if resume is not None:
                    yield _OP_SKIPPED, buf[start : resume[0] - base], base + start
                    pos = resume[0] - base
                    continue
            if size > end - pos:
                where = 'chunk' if in_chunk else 'file'
                note(
                    base + start,
                    f'record opcode 0x{op:02x} of {size} bytes runs past the end of the {where}'
                    f' ({end - pos} bytes left): truncated',
                )
                if op == _OP_CHUNK and not in_chunk:
                    yield _OP_PARTIAL_CHUNK, buf[pos:end], base + start
                return
            yield op, buf[pos : pos + size], base + start
            pos += size

    @cached_property
    def _index(self) -> Summary | None:
        """The summary's chunk index (read when first needed; None: no usable one)."""
        return summary_index(self._buf)

    def _resume(self, buf: memoryview, offset: int) -> tuple[int, str] | None:
        """Where the top-level records go on after the damaged header at ``offset`` (the
        declarations pass and the scan meet each damage: looked up once)."""
        if offset not in self._resumes:
            self._resumes[offset] = next_start(buf, offset, MAX_CHUNK_BYTES, self._index)
        return self._resumes[offset]

    def _message(self, body: memoryview, stamps: list[int] | None = None) -> RawMessage | None:
        if len(body) < _MSG_HEAD.size:
            raise TruncatedError
        channel, _, log_time, _ = _MSG_HEAD.unpack(body[: _MSG_HEAD.size])
        if stamps is not None:
            stamps.append(log_time)
        entry = self.channels.get(channel)
        if entry is None:
            self.unknown_channel += 1
            return None
        topic, msgtype = entry
        if self.topics is not None and topic not in self.topics:
            return None
        return RawMessage(topic, msgtype, log_time, bytes(body[_MSG_HEAD.size :]))

    def _meta(self, op: int, body: memoryview) -> None:
        if op == _OP_SCHEMA:
            (sid,) = _U16.unpack(body[:2])
            name, _ = string_at(body, 2)
            self.schemas[sid] = name
        elif op == _OP_CHANNEL:
            cid, sid = struct.unpack('<HH', body[:4])
            topic, _ = string_at(body, 4)
            self.channels[cid] = (topic, self.schemas.get(sid, ''))

    def _chunk(self, body: memoryview, offset: int) -> list[RawMessage]:
        """A chunk record's messages. Where its fields do not decode (a damaged size,
        compression or CRC field, or damaged data), the chunk's ChunkIndex record in the
        summary, if any, has the last word (:meth:`_recover`)."""
        try:
            inner = chunk_records(body)
        except Exception as exc:
            if self._index is None or offset not in self._index.chunks:
                raise
            damage = f'record opcode 0x{_OP_CHUNK:02x} at offset {offset}: {reason(exc)}'
            return self._recover(offset, None, damage)
        stamps: list[int] = []
        out = self._chunk_messages(memoryview(inner), offset, stamps)
        index = self._index
        note = time_note(offset, body, stamps, index.chunks.get(offset) if index else None)
        if note is not None:  # kept: the range takes no part in decoding them
            self._issue(offset, note)
        return out

    def _recover(self, offset: int, limit: int | None, damage: str) -> list[RawMessage]:
        """The messages of the chunk at ``offset``, whose header is damaged, all or none; one
        issue names the ``damage`` and what became of them.

        1. Locate its records (:func:`~dmil_ros.bagio.mcap_layout.chunk_span`): by its
           ChunkIndex record, else by its own fields, up to ``limit``.
        2. Inflate and read them (:meth:`_verified`).
        """
        span = chunk_span(self._buf, offset, self._index, limit, MAX_CHUNK_BYTES)
        if span is None:  # no chunk there, as far as can be told
            self._issue(offset, damage)
            return []
        try:
            if isinstance(span, str):
                raise ValueError(span)
            messages, count = self._verified(span)
        except Exception as exc:
            self._issue(offset, f'{damage}; the chunk there is not recovered: {reason(exc)}')
            return []
        crc = 'its CRC matches' if span.crc else 'no CRC to check'
        self._issue(
            offset,
            f'{damage}; the chunk there is recovered: its {count} messages, located by '
            f'{span.source} (bytes {span.begin}-{span.end}), inflate to the {span.size} bytes '
            f'given, {crc}, and every record reads',
        )
        return messages

    def _verified(self, span: ChunkSpan) -> tuple[list[RawMessage], int]:
        """The messages (on ``topics``) of the chunk records ``span`` locates and how many it
        holds; ValueError unless they inflate to the size given, match the header's CRC if it
        is nonzero, and read as a chunk's (:func:`~dmil_ros.bagio.mcap_layout.chunk_contents`:
        every message on a known channel, within the time range; declarations kept only then)."""
        records = bytes(self._buf[span.begin : span.end])
        inner = _inflated(records, span.compression, span.size, span.crc)
        declared, found = chunk_contents(memoryview(inner), span.first, span.last, self.channels)
        saved = dict(self.schemas), dict(self.channels)
        try:
            for op, body in declared:
                self._meta(op, body)
        except Exception:
            self.schemas, self.channels = saved
            raise
        out = [
            RawMessage(*self.channels[channel], stamp, bytes(data))
            for channel, stamp, data in found
            if self.topics is None or self.channels[channel][0] in self.topics
        ]
        out.sort(key=lambda m: m.timestamp)
        return out, len(found)

    def _chunk_messages(
        self, records: memoryview, offset: int, stamps: list[int] | None = None
    ) -> list[RawMessage]:
        """The readable messages of a chunk's records, in log-time order (schemas and channels
        met on the way are registered; every message's log time appended to ``stamps``)."""
        out = []
        for op, rec, _ in self._records(records, 0, offset, in_chunk=True):
            if op == _OP_MESSAGE:
                message = self._message(rec, stamps)
                if message is not None:
                    out.append(message)
            else:
                self._meta(op, rec)
        out.sort(key=lambda m: m.timestamp)
        return out

    def _partial_chunk(self, body: memoryview, offset: int) -> list[RawMessage]:
        """Messages from the head of a chunk cut short (a recorder killed mid-write).

        A compressed chunk's stream is decoded as far as it goes (zstd and lz4 decode block by
        block, so a stream cut short still gives its complete blocks); the records are then read
        up to the first one cut short. No CRC can be checked: it covers the whole chunk.
        """
        _, _, usize, _ = _CHUNK_HEAD.unpack(bytes(take(body, 0, _CHUNK_HEAD.size)[0]))
        compression, pos = string_at(body, _CHUNK_HEAD.size)
        pos += 8  # the compressed size: the stream runs to the end of what is left
        if not compression:
            return self._chunk_messages(body[pos:], offset)
        inner = decompress_prefix(bytes(body[pos:]), compression, usize)
        self._issue(
            offset,
            f'chunk cut short: its {compression} stream decoded to {len(inner)} of {usize} bytes',
        )
        return self._chunk_messages(memoryview(inner), offset)

    def messages(self) -> Iterator[RawMessage]:
        """The readable messages, file order; damage is noted in ``issues`` as it is met."""
        with self.path.open('rb') as f:
            if f.read(len(MCAP_MAGIC)) != MCAP_MAGIC:  # an empty file, too (mmap refuses those)
                self._issue(0, 'not an MCAP file (bad magic)')
                return
            # mapped, not read: a multi-GB bag whose recorder died costs page cache, not memory
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._buf = memoryview(mapped)
            yield from self._scan(self._buf)
        finally:
            self._buf = memoryview(b'')
            if self.unknown_channel:
                self._issue(
                    None,
                    f'{self.unknown_channel} messages on channels whose record was never read: '
                    'skipped',
                )
            with contextlib.suppress(BufferError):  # a view held by a traceback: GC unmaps it
                mapped.close()

    def _declarations(self, buf: memoryview) -> None:
        """Register the top-level Schema and Channel records first (the summary section at the
        end repeats every one), so a damaged chunk that held a channel's first declaration
        costs that chunk's messages only, not every later message of the channel."""
        # the scan that follows reports every damaged record, these ones included
        for op, body, at in self._records(buf, len(MCAP_MAGIC), 0, in_chunk=False, report=False):
            if op in (_OP_SCHEMA, _OP_CHANNEL) and not plausible_chunk(
                buf, at, MAX_CHUNK_BYTES, opcode=False
            ):  # not a chunk whose opcode is damaged
                with contextlib.suppress(Exception):
                    self._meta(op, body)

    def _scan(self, buf: memoryview) -> Iterator[RawMessage]:
        self._declarations(buf)
        for op, body, offset in self._records(buf, len(MCAP_MAGIC), 0, in_chunk=False):
            try:
                if op == _OP_CHUNK:
                    yield from self._chunk(body, offset)
                elif op == _OP_SKIPPED:  # the chunk there may be read yet
                    resumed = self._resumes[offset]  # where _records resumed after it
                    limit, how = resumed if resumed is not None else (offset + len(body), '')
                    yield from self._recover(offset, limit, skip_note(buf, offset, limit, how))
                elif op == _OP_PARTIAL_CHUNK:
                    yield from self._partial_chunk(body, offset)
                elif plausible_chunk(buf, offset, MAX_CHUNK_BYTES, opcode=False):
                    damage = (
                        f'record opcode 0x{op:02x} at offset {offset} has the fields of a chunk '
                        'that add up to its length: its opcode is damaged'
                    )
                    yield from self._recover(offset, offset + _RECORD.size + len(body), damage)
                elif op == _OP_MESSAGE:
                    message = self._message(body)
                    if message is not None:
                        yield message
                elif op == _OP_FOOTER:
                    return
                else:
                    self._meta(op, body)
            except Exception as exc:  # noqa: PERF203 - one bad record, whatever the cause
                self._issue(offset, f'record opcode 0x{op:02x} skipped: {reason(exc)}')


__all__ = [
    'MAX_CHUNK_BYTES',
    'MCAP_MAGIC',
    'LayoutError',
    'McapSalvager',
    'bound_rosbags_decompression',
    'check_mcap_records',
    'chunk_body',
    'chunk_messages',
    'chunk_records',
    'decompress_bounded',
    'decompress_prefix',
]
