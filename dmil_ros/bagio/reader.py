"""Robust rosbag2 reading: everything that can be read, plus a record of what could not.

A bag that was recorded to the end is read with ``rosbags`` (indexed, time ordered; a bag of one
MCAP file without file/message compression through its ``McapReader``, which skips the slow
``metadata.yaml`` parse). Before rosbags sees an MCAP file, its top-level record lengths are
checked against the file size (rosbags allocates them as read), and chunks inflate with a bound
(the declared uncompressed size, at most :data:`MAX_CHUNK_BYTES`) in rosbags and here alike. A
bag whose recorder died (no ``metadata.yaml``, an MCAP file without summary or footer), whose
storage is damaged (a chunk whose CRC fails, a record cut short, a malformed sqlite page), or on
which the indexed reader fails in any way or yields fewer messages than its index lists, is
*salvaged*:

* MCAP: the records are scanned front to back (format: magic, then ``opcode u8, length u64,
  body`` records; https://mcap.dev/spec); each chunk is decompressed and CRC-checked on its own, so
  a bad chunk costs only its own messages; the scan stops at the first record cut short.
* sqlite3: the ``messages`` table is read in time order until the database reports damage.

Each problem becomes a :class:`ReadIssue` in :attr:`RobustReader.issues`; nothing is raised for
damage once the bag has been found. A message whose CDR bytes do not deserialize is counted per
topic in :attr:`RobustReader.skipped` and skipped.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import struct
from binascii import crc32
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rosbags.rosbag2 import Reader
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.typesys.store import Typestore

from dmil_ros.bagio.typestore import typestore as default_typestore
from dmil_ros.errors import DmilError

logger = logging.getLogger(__name__)

MCAP_MAGIC = b'\x89MCAP0\r\n'
_OP_HEADER, _OP_FOOTER, _OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 1, 2, 3, 4, 5, 6
_OP_PARTIAL_CHUNK = 0x100  # internal: the readable head of a chunk cut short
_U16 = struct.Struct('<H')
_U32 = struct.Struct('<I')
_U64 = struct.Struct('<Q')
_MSG_HEAD = struct.Struct('<HIQQ')  # channel id, sequence, log time, publish time
_CHUNK_HEAD = struct.Struct('<QQQI')  # start, end, uncompressed size, crc


class BagReadError(DmilError):
    """The path is not a bag at all (nothing could be read from it)."""


@dataclass(frozen=True)
class RawMessage:
    """One message as stored: CDR bytes, not yet deserialized."""

    topic: str
    msgtype: str
    timestamp: int  # log time, ns
    data: bytes


@dataclass(frozen=True)
class ReadIssue:
    """Something in the bag that could not be read."""

    file: str
    offset: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {'file': self.file, 'offset': self.offset, 'message': self.message}


class _LayoutError(Exception):
    """An MCAP file whose record layout rosbags must not be handed (internal)."""


class _TruncatedError(Exception):
    """A record runs past the end of the data (internal to the MCAP scanner)."""


def _take(buf: memoryview, pos: int, size: int) -> tuple[memoryview, int]:
    if pos + size > len(buf):
        raise _TruncatedError
    return buf[pos : pos + size], pos + size


def _string(buf: memoryview, pos: int) -> tuple[str, int]:
    raw, pos = _take(buf, pos, 4)
    (size,) = _U32.unpack(raw)
    raw, pos = _take(buf, pos, size)
    return bytes(raw).decode('utf-8', 'replace'), pos


MAX_CHUNK_BYTES = 256 << 20
"""Largest uncompressed MCAP chunk accepted (rosbags writes chunks of about 1 MB)."""


def _decompress(data: bytes, compression: str, size: int) -> bytes:
    """A chunk's bytes, inflated to at most ``size`` + 1 bytes (a zstd/lz4 bomb is not expanded).

    ``size`` is the chunk's declared uncompressed size; a size over :data:`MAX_CHUNK_BYTES` is
    refused before anything is allocated, and output past ``size`` is an error, not a buffer.
    """
    if size > MAX_CHUNK_BYTES:
        msg = f'chunk declares {size} uncompressed bytes (limit {MAX_CHUNK_BYTES})'
        raise ValueError(msg)
    if compression == '':
        return data
    if compression == 'zstd':
        from backports import zstd

        dec: Any = zstd.ZstdDecompressor()
    elif compression == 'lz4':
        from lz4.frame import LZ4FrameDecompressor  # type: ignore[import-untyped]

        dec = LZ4FrameDecompressor()
    else:
        msg = f'compression {compression!r} not supported'
        raise ValueError(msg)
    out = bytes(dec.decompress(data, max_length=size + 1))
    if len(out) > size:
        msg = f'chunk inflates past its declared {size} bytes'
        raise ValueError(msg)
    if not dec.eof:  # the stream stopped early or is damaged (the full decoder would raise)
        msg = f'chunk stream does not end after {len(out)} bytes (declared {size})'
        raise ValueError(msg)
    return out


def _bound_rosbags_decompression() -> None:
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
                table[name] = lambda data, size, name=name: _decompress(data, name, size)


_bound_rosbags_decompression()


def _check_mcap_records(path: Path) -> str | None:
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
                    f'the {size - pos - 9} left in the file'
                )
            starts.add(pos)
            if op == _OP_FOOTER:
                if length < 16:
                    return f'footer at offset {pos} too short ({length} bytes)'
                summary, offsets = struct.unpack('<QQ', f.read(16))
                for name, at in (('summary_start', summary), ('summary_offset_start', offsets)):
                    if at and at not in starts:
                        return f'footer {name} {at} is not a record start'
                return None
            pos += 9 + length
            f.seek(pos)


class _McapSalvager:
    """Front-to-back scan of one (possibly damaged) MCAP file."""

    def __init__(self, path: Path, topics: Collection[str] | None, issues: list[ReadIssue]):
        self.path = path
        self.topics = set(topics) if topics else None
        self.issues = issues
        self.schemas: dict[int, str] = {}
        self.channels: dict[int, tuple[str, str]] = {}  # id -> (topic, msgtype)

    def _issue(self, offset: int | None, message: str) -> None:
        self.issues.append(ReadIssue(str(self.path), offset, message))

    def _records(
        self, buf: memoryview, pos: int, base: int, in_chunk: bool
    ) -> Iterator[tuple[int, memoryview, int]]:
        """Yield ``(opcode, body, file_offset)`` until the data ends or is cut short."""
        end = len(buf)
        while pos < end:
            start = pos
            if end - pos < 9:
                self._issue(base + start, f'record header cut short ({end - pos} bytes left)')
                return
            op = buf[pos]
            (size,) = _U64.unpack(buf[pos + 1 : pos + 9])
            pos += 9
            if size > end - pos:
                where = 'chunk' if in_chunk else 'file'
                self._issue(
                    base + start,
                    f'record opcode 0x{op:02x} of {size} bytes runs past the end of the {where}'
                    f' ({end - pos} bytes left): truncated',
                )
                if op == _OP_CHUNK and not in_chunk:
                    yield _OP_PARTIAL_CHUNK, buf[pos:end], base + start
                return
            yield op, buf[pos : pos + size], base + start
            pos += size

    def _message(self, body: memoryview) -> RawMessage | None:
        if len(body) < _MSG_HEAD.size:
            raise _TruncatedError
        channel, _, log_time, _ = _MSG_HEAD.unpack(body[: _MSG_HEAD.size])
        entry = self.channels.get(channel)
        if entry is None:
            return None
        topic, msgtype = entry
        if self.topics is not None and topic not in self.topics:
            return None
        return RawMessage(topic, msgtype, log_time, bytes(body[_MSG_HEAD.size :]))

    def _meta(self, op: int, body: memoryview) -> None:
        if op == _OP_SCHEMA:
            (sid,) = _U16.unpack(body[:2])
            name, _ = _string(body, 2)
            self.schemas[sid] = name
        elif op == _OP_CHANNEL:
            cid, sid = struct.unpack('<HH', body[:4])
            topic, _ = _string(body, 4)
            self.channels[cid] = (topic, self.schemas.get(sid, ''))

    def _chunk(self, body: memoryview, offset: int) -> list[RawMessage]:
        _, _, usize, crc = _CHUNK_HEAD.unpack(body[: _CHUNK_HEAD.size])
        compression, pos = _string(body, _CHUNK_HEAD.size)
        raw, pos = _take(body, pos, 8)
        (csize,) = _U64.unpack(raw)
        data, _ = _take(body, pos, csize)
        inner = _decompress(bytes(data), compression, usize)
        if len(inner) != usize:
            msg = f'chunk decompressed to {len(inner)} bytes, header says {usize}'
            raise ValueError(msg)
        if crc and crc32(inner) != crc:
            msg = 'chunk CRC mismatch'
            raise ValueError(msg)
        return self._chunk_messages(memoryview(inner), offset)

    def _chunk_messages(self, records: memoryview, offset: int) -> list[RawMessage]:
        """The readable messages of a chunk's records, in log-time order (schemas and channels
        met on the way are registered)."""
        out = []
        for op, rec, _ in self._records(records, 0, offset, in_chunk=True):
            if op == _OP_MESSAGE:
                message = self._message(rec)
                if message is not None:
                    out.append(message)
            else:
                self._meta(op, rec)
        out.sort(key=lambda m: m.timestamp)
        return out

    def _partial_chunk(self, body: memoryview, offset: int) -> list[RawMessage]:
        """Messages from the head of an uncompressed chunk cut short (a recorder killed)."""
        compression, pos = _string(body, _CHUNK_HEAD.size)
        if compression:
            return []  # a compressed stream cut short cannot be decoded
        pos += 8
        return self._chunk_messages(body[pos:], offset)

    def messages(self) -> Iterator[RawMessage]:
        data = self.path.read_bytes()
        if not data.startswith(MCAP_MAGIC):
            self._issue(0, 'not an MCAP file (bad magic)')
            return
        buf = memoryview(data)
        for op, body, offset in self._records(buf, len(MCAP_MAGIC), 0, in_chunk=False):
            try:
                if op == _OP_CHUNK:
                    yield from self._chunk(body, offset)
                elif op == _OP_PARTIAL_CHUNK:
                    yield from self._partial_chunk(body, offset)
                elif op == _OP_MESSAGE:
                    message = self._message(body)
                    if message is not None:
                        yield message
                elif op == _OP_FOOTER:
                    return
                else:
                    self._meta(op, body)
            except Exception as exc:  # noqa: PERF203 - one bad record, whatever the cause
                text = str(exc) or 'record cut short'
                if not isinstance(exc, _TruncatedError | ValueError):
                    text = f'{type(exc).__name__}: {text}'  # e.g. ZstdError from a corrupt chunk
                self._issue(offset, f'record opcode 0x{op:02x} skipped: {text}')


def _salvage_sqlite(
    path: Path, topics: Collection[str] | None, issues: list[ReadIssue]
) -> Iterator[RawMessage]:
    wanted = set(topics) if topics else None
    try:
        con = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    except sqlite3.Error as exc:
        issues.append(ReadIssue(str(path), None, f'sqlite: {exc}'))
        return
    con.text_factory = bytes  # damaged text need not be UTF-8: decoded below, row by row
    try:
        names = {}
        for tid, name, msgtype in con.execute('SELECT id, name, type FROM topics'):
            try:
                names[tid] = (name.decode(), msgtype.decode())
            except (AttributeError, UnicodeDecodeError):  # noqa: PERF203 - NULL, number, bad UTF-8
                issues.append(ReadIssue(str(path), None, f'sqlite: topic row {tid!r} skipped'))
        cursor = con.execute('SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp')
        for tid, stamp, blob in cursor:
            entry = names.get(tid)
            if entry is None or (wanted is not None and entry[0] not in wanted):
                continue
            if not isinstance(stamp, int) or not isinstance(blob, bytes):
                # a damaged row can hold NULL, text or a float where the schema says otherwise
                issues.append(
                    ReadIssue(
                        str(path),
                        None,
                        f'sqlite: topic {entry[0]!r}: message row skipped (timestamp '
                        f'{type(stamp).__name__}, data {type(blob).__name__})',
                    )
                )
                continue
            yield RawMessage(entry[0], entry[1], stamp, blob)
    except sqlite3.Error as exc:
        issues.append(ReadIssue(str(path), None, f'sqlite: {exc}'))
    finally:
        con.close()


class RobustReader:
    """Iterate a bag's messages; damage becomes :attr:`issues` instead of an exception.

    ``path`` is a rosbag2 directory, or a single ``.mcap`` / ``.db3`` file. ``topics`` limits the
    topics read (``None``: all). Messages come in time order in indexed mode; in salvage mode in
    storage order (time order within each chunk, which is time order for bags recorded live).
    """

    def __init__(
        self,
        path: str | Path,
        topics: Collection[str] | None = None,
        store: Typestore | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            msg = f'bag {str(self.path)!r} does not exist'
            raise BagReadError(msg)
        self.topics = list(topics) if topics is not None else None
        self.store = store if store is not None else default_typestore()
        self.issues: list[ReadIssue] = []
        self.skipped: Counter[str] = Counter()
        self.mode: Literal['indexed', 'salvage'] = 'indexed'
        self.count = 0
        self.available: dict[str, str] = {}  # every topic of the bag -> type (indexed mode)

    @property
    def complete(self) -> bool:
        """True when the whole bag was read without any problem."""
        return not self.issues and not self.skipped

    def _storage_files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        files = sorted(self.path.glob('*.mcap')) + sorted(self.path.glob('*.db3'))
        if not files:
            msg = f'bag {str(self.path)!r}: no .mcap or .db3 storage file found'
            raise BagReadError(msg)
        return files

    def _single_mcap(self) -> Path | None:
        """The bag's one MCAP file when it can be read without rosbag2's metadata layer.

        rosbags' directory ``Reader`` parses ``metadata.yaml`` with pure-Python ruamel (0.34 s of
        a 0.9 s audit of the 6.4 s sample bag); for one MCAP file without file/message
        compression the MCAP summary holds everything the read needs (connections, counts).
        """
        if not self.path.is_dir() or not (self.path / 'metadata.yaml').is_file():
            return None
        files = self._storage_files()
        if len(files) != 1 or files[0].suffix != '.mcap':
            return None
        text = (self.path / 'metadata.yaml').read_text(errors='replace')
        mode = re.search(r'^\s*compression_mode:\s*[\'"]?(\w*)', text, re.MULTILINE)
        if mode is None or mode.group(1).lower() not in ('', 'none'):
            return None
        return files[0]

    def _indexed(self) -> Iterator[RawMessage]:
        for file in self._storage_files():  # a single .mcap path, too (review 9, F)
            problem = _check_mcap_records(file) if file.suffix == '.mcap' else None
            if problem is not None:
                raise _LayoutError(f'{file.name}: {problem}')
        single = self._single_mcap()
        reader: Any = McapReader(single) if single is not None else Reader(self.path)
        reader.open()
        try:
            self.available = {c.topic: c.msgtype for c in reader.connections}
            conns = [
                c for c in reader.connections if self.topics is None or c.topic in self.topics
            ]
            expected = sum(int(getattr(c, 'msgcount', 0) or 0) for c in conns)
            got = 0
            for conn, stamp, data in reader.messages(conns):
                got += 1
                yield RawMessage(conn.topic, conn.msgtype, stamp, bytes(data))
            if got < expected:  # e.g. a chunk that inflates to garbage (rosbags writes no CRC)
                msg = f'yielded {got} of the {expected} messages the bag index lists'
                raise _LayoutError(msg)
        finally:
            reader.close()

    def _salvage(self, after: int | None) -> Iterator[RawMessage]:
        self.mode = 'salvage'
        for file in self._storage_files():
            if file.suffix == '.db3':
                source = _salvage_sqlite(file, self.topics, self.issues)
            else:
                source = _McapSalvager(file, self.topics, self.issues).messages()
            for message in source:
                if after is not None and message.timestamp <= after:
                    continue
                yield message

    def __iter__(self) -> Iterator[RawMessage]:
        """Raw messages; falls back to salvage when the indexed reader fails."""
        last: int | None = None
        try:
            for message in self._indexed():
                last = message.timestamp
                self.count += 1
                yield message
            return
        except Exception as exc:
            # rosbags raises ReaderError, but damage also surfaces as TypeError, OverflowError,
            # struct.error, ZstdError, apsw.CorruptError, MemoryError...; all mean "salvage"
            where = 'while reading' if last is not None else 'on open'
            text = f'indexed reader failed {where}: {type(exc).__name__}: {exc}'
            self.issues.append(ReadIssue(str(self.path), None, f'{self.path}: {text}'))
            logger.warning('bag %s: %s; salvaging what is readable', self.path, text)
        for message in self._salvage(last):
            self.count += 1
            yield message

    def decoded(self) -> Iterator[tuple[RawMessage, Any]]:
        """``(raw, message object)``; a message whose CDR fails is counted and skipped."""
        for raw in self:
            try:
                obj = self.store.deserialize_cdr(raw.data, raw.msgtype)
            except Exception as exc:  # any CDR failure means one bad message
                if not self.skipped[raw.topic]:
                    logger.warning(
                        'topic %r: message at %d not decodable: %s', raw.topic, raw.timestamp, exc
                    )
                self.skipped[raw.topic] += 1
                continue
            yield raw, obj

    def report(self) -> dict[str, Any]:
        """JSON-ready account of the read: mode, counts, issues, skipped messages per topic."""
        return {
            'path': str(self.path),
            'mode': self.mode,
            'messages': self.count,
            'complete': self.complete,
            'issues': [i.as_dict() for i in self.issues],
            'skipped': dict(self.skipped),
        }


__all__ = ['BagReadError', 'RawMessage', 'ReadIssue', 'RobustReader']
