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

"""Robust rosbag2 reading: everything that can be read, plus a record of what could not.

A bag that was recorded to the end is read with ``rosbags`` (indexed, time ordered; a bag of one
MCAP file without file/message compression through its ``McapReader``, which skips the slow
``metadata.yaml`` parse, with the next chunks inflated on a worker thread:
:mod:`dmil_ros.bagio.prefetch`). Before rosbags sees an MCAP file, its top-level record lengths are
checked against the file size (rosbags allocates them as read), and chunks inflate with a bound
(the declared uncompressed size, at most :data:`MAX_CHUNK_BYTES`) in rosbags and here alike. A
bag whose recorder died (no ``metadata.yaml``, an MCAP file without summary or footer), whose
storage is damaged (a chunk whose CRC fails, a record cut short, a malformed sqlite page), or on
which the indexed reader fails in any way or yields fewer messages than its index lists, is
*salvaged*:

* MCAP: the records are scanned front to back (:mod:`dmil_ros.bagio.mcap`); a bad chunk costs
  only its own messages, a chunk cut short gives its readable head;
* sqlite3: every row that can still be read intact (:mod:`dmil_ros.bagio.sqlite_salvage`).

Storage files are read in recording order (split parts by number: ``_2`` before ``_10``); a part
``metadata.yaml`` lists but that is gone is an issue, and so is a storage file beside the parts
that it does not list (never read: another recording would merge in); file-compressed parts
(``.mcap.zstd``) are read by rosbags but cannot be salvaged. When the indexed read fails midway,
the salvage resumes after exactly the messages already yielded; messages the indexed read lost
silently before that point (a chunk that inflates to garbage: rosbags writes no CRC) are
counted, not recovered.

Each problem becomes a :class:`ReadIssue` in :attr:`RobustReader.issues`; nothing is raised for
damage once the bag has been found. A message whose CDR bytes do not deserialize is counted per
topic in :attr:`RobustReader.skipped` and skipped.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, Literal

from rosbags.rosbag2 import Reader
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.typesys.store import Typestore

from dmil_ros.bagio import prefetch
from dmil_ros.bagio.mcap import (
    MCAP_MAGIC,
    LayoutError,
    McapSalvager,
    bound_rosbags_decompression,
    check_mcap_records,
)
from dmil_ros.bagio.records import BagReadError, RawMessage, ReadIssue
from dmil_ros.bagio.sqlite_salvage import salvage_sqlite, sqlite_topics, wal_file
from dmil_ros.bagio.typestore import typestore as default_typestore

logger = logging.getLogger(__name__)

bound_rosbags_decompression()


def storage_kind(path: Path) -> str | None:
    """``'.mcap'`` / ``'.db3'`` for a storage file, plain or file-compressed; else None."""
    name = path.name
    for kind in ('.mcap', '.db3'):
        if name.endswith(kind) or any(name.endswith(kind + c) for c in ('.zstd', '.lz4')):
            return kind
    return None


def _natural_key(path: Path) -> list[Any]:
    """Split parts in their numeric order: rosbag2 numbers them without padding (_2, _10)."""
    return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', path.name)]


def separate_recordings(folder: Path) -> list[Path] | None:
    """The storage files of a folder without ``metadata.yaml`` when they are separate
    recordings; None when the folder is one bag (it has the metadata, one storage file, or the
    split parts ``<name>_<N>`` a recorder leaves when it dies before writing the metadata).

    The parts share their ``<name>``, the folder's name when recorded: not compared with the
    folder's, which may have been renamed since. Read as one bag, separate recordings would be
    merged by stamp (one drive's frames taking another's labels). Split parts mixed with other
    storage files are refused as ambiguous.
    """
    if not folder.is_dir() or (folder / 'metadata.yaml').is_file():
        return None
    return _separate(folder, _storage_listing(folder))


def _storage_listing(folder: Path) -> list[Path]:
    """A folder's storage files in recording order (split_2 before split_10)."""
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and storage_kind(p)), key=_natural_key
    )


def _separate(folder: Path, files: list[Path]) -> list[Path] | None:
    """:func:`separate_recordings` of ``folder``'s listed storage ``files``."""
    if len(files) < 2:
        return None
    groups: dict[str, list[str]] = {}  # <name> -> the files <name>_<N>.*
    for p in files:
        if named := re.match(r'(.+)_\d+\.', p.name):
            groups.setdefault(named.group(1), []).append(p.name)
    parts = max(groups.values(), key=len, default=[])
    if len(parts) == len(files):
        return None
    if len(parts) > 1:
        others = [p.name for p in files if p.name not in parts]
        msg = (
            f'{str(folder)!r} holds the split parts {parts} of one recording and other storage '
            f'files {others}, and no metadata.yaml: name the bags (or storage files) themselves'
        )
        raise BagReadError(msg)
    return files


def _readable(files: list[Path]) -> list[Path]:
    """``files``, or BagReadError naming those this process may not read: refused when the
    reader is made, before a caller has written anything (an empty output bag was left)."""
    denied = [p.name for p in files if not os.access(p, os.R_OK)]
    if denied:
        msg = f'storage file(s) {denied} in {str(files[0].parent)!r}: permission denied'
        raise BagReadError(msg)
    return files


def listed_files(metadata: str) -> list[str] | None:
    """``relative_file_paths`` from ``metadata.yaml`` text (block or flow list; None: no key).

    A text scan for the forms recorders write (a block list, a flow list on the key's line):
    rosbags' pure-Python parse of the sample bag's metadata costs 0.3 s, this about 0.05 ms,
    and the shortcut read of a one-file bag must stay cheap. Any other form (a flow list over
    several lines, a block list the scan finds empty) is parsed as YAML: misread, it made a
    complete bag's file "not listed" (review 22c, F10).
    """
    key = re.search(r'^[ \t]*relative_file_paths:[ \t]*(.*)$', metadata, re.MULTILINE)
    if key is None:
        return None
    rest = key.group(1).strip()
    if rest.startswith('[') and rest.endswith(']'):
        return [v.strip().strip('\'"') for v in rest[1:-1].split(',') if v.strip()]
    names = []
    for item in metadata[key.end() :].splitlines()[1:]:
        entry = re.match(r'\s*-\s*(.+?)\s*$', item)
        if entry is None:
            break
        names.append(entry.group(1).strip('\'"'))
    return names if names and not rest else _parsed_listing(metadata)


def _parsed_listing(metadata: str) -> list[str]:
    """``relative_file_paths`` by a YAML parse (ruamel, rosbags' own parser); ``[]`` when the
    text is no YAML or the key holds no list, so every storage file counts as unlisted."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ='safe').load(metadata)
    except YAMLError:
        return []
    info = data.get('rosbag2_bagfile_information') if isinstance(data, dict) else None
    paths = info.get('relative_file_paths') if isinstance(info, dict) else None
    return [str(p) for p in paths] if isinstance(paths, list) else []


class RobustReader:
    """Iterate a bag's messages; damage becomes :attr:`issues` instead of an exception.

    ``path`` is a rosbag2 directory, or a single ``.mcap`` / ``.db3`` file. ``topics`` limits the
    topics read (``None``: all). ``warn=False`` keeps the damage out of the log (it is still in
    :attr:`issues`): for a second pass over a bag whose damage the first pass reported.
    Messages come in time order in indexed mode; in salvage mode in storage order (time order
    within each chunk, which is time order for bags recorded live).
    """

    def __init__(
        self,
        path: str | Path,
        topics: Collection[str] | None = None,
        store: Typestore | None = None,
        *,
        warn: bool = True,
    ) -> None:
        self.path = Path(path)
        self.warn = warn
        if not self.path.exists():
            msg = f'bag {str(self.path)!r} does not exist'
            raise BagReadError(msg)
        self.topics = list(topics) if topics is not None else None
        self._store = store  # the default built on first use: listing a bag needs none
        self.issues: list[ReadIssue] = []
        self.skipped: Counter[str] = Counter()
        self.mode: Literal['indexed', 'salvage'] = 'indexed'
        self.count = 0
        self.available: dict[str, str] = {}  # every topic of the bag seen -> its type
        self._files: list[Path] | None = None
        try:  # not a bag at all: BagReadError now, before any output is made
            self._storage_files()
        except OSError as exc:  # a folder that cannot be listed: named, like an unreadable file
            msg = f'bag {str(self.path)!r}: cannot be listed: {exc.strerror or exc}'
            raise BagReadError(msg) from exc

    @property
    def store(self) -> Typestore:
        """The typestore messages are decoded with (the pinned default unless one was given)."""
        if self._store is None:
            self._store = default_typestore()
        return self._store

    @property
    def complete(self) -> bool:
        """True when the whole bag was read without any problem."""
        return not self.issues and not self.skipped

    def _storage_files(self) -> list[Path]:
        """The bag's storage files in recording order (split_2 before split_10).

        Plain (``.mcap``, ``.db3``) and file-compressed (``.mcap.zstd`` ...: ``ros2 bag record
        --compression-mode file``). Where ``metadata.yaml`` lists the files
        (``relative_file_paths``), only those are the bag: a file that it lists but that is gone
        is an issue (a split bag missing a part), and so is a storage file beside them that it
        does not list (another recording copied in: read, it would be merged by stamp), which
        is not read, unless none of the listed files is there (damaged metadata, renamed
        files): then every storage file is read, as in a folder without metadata.yaml; each
        issue recorded once.
        """
        if self.path.is_file():
            if storage_kind(self.path) is None:
                msg = (
                    f'bag {str(self.path)!r}: not a rosbag2 storage file (.mcap or .db3, '
                    'optionally .zstd / .lz4) nor a bag folder'
                )
                raise BagReadError(msg)
            return _readable([self.path])
        if self._files is not None:
            return self._files
        files = _storage_listing(self.path)
        listed = self._listed_files()
        missing = [name for name in listed or [] if not (self.path / name).is_file()]
        if missing:
            text = f'storage file(s) {missing} listed in metadata.yaml are missing'
            self.issues.append(ReadIssue(str(self.path), None, text))
        # the listing decides which files are the bag, unless none of its files is here (the
        # metadata damaged, or the files renamed): then, as without metadata.yaml, every one
        trusted = (self.path / 'metadata.yaml').is_file()
        unlisted = [p.name for p in files if listed is not None and p.name not in listed]
        if unlisted and len(unlisted) < len(files):
            files = [p for p in files if p.name not in unlisted]
            text = (
                f'storage file(s) {unlisted} not listed in metadata.yaml: not read (another '
                "recording's messages would merge with this one's by stamp)"
            )
            self.issues.append(ReadIssue(str(self.path), None, text))
        elif unlisted:
            trusted = False
            text = (
                f'storage file(s) {unlisted} not listed in metadata.yaml: read in place of the '
                'listed ones, none of which is there'
            )
            self.issues.append(ReadIssue(str(self.path), None, text))
        if not files:
            msg = f'bag {str(self.path)!r}: no .mcap or .db3 storage file found'
            raise BagReadError(msg)
        separate = None if trusted else _separate(self.path, files)  # raises on parts mixed in
        if separate is not None:
            why = 'a metadata.yaml that lists none of' if unlisted else 'no metadata.yaml and'
            msg = (
                f'bag {str(self.path)!r}: {why} {len(separate)} storage files '
                f'that are separate recordings ({", ".join(p.name for p in separate)}); read as '
                "one bag, they would merge by stamp (one drive's frames taking another's labels):"
                ' name each file as a bag of its own'
            )
            raise BagReadError(msg)
        self._files = _readable(files)
        return files

    def _listed_files(self) -> list[str] | None:
        """``relative_file_paths`` of ``metadata.yaml`` (None: no such file or key)."""
        try:
            text = (self.path / 'metadata.yaml').read_text(errors='replace')
        except OSError:
            return None
        return listed_files(text)

    def _single_mcap(self) -> Path | None:
        """The bag's one MCAP file when it can be read without rosbag2's metadata layer.

        rosbags' directory ``Reader`` parses ``metadata.yaml`` with pure-Python ruamel (0.34 s of
        a 0.9 s audit of the 6.4 s sample bag); for one MCAP file without file/message
        compression the MCAP summary holds everything the read needs (connections, counts).
        A folder holding one MCAP file and no ``metadata.yaml`` (copied without it) is read the
        same way: the file is self-contained (it went to salvage as damaged).
        """
        if not self.path.is_dir():
            return None
        files = self._storage_files()
        if len(files) != 1 or files[0].suffix != '.mcap':
            return None
        if not (self.path / 'metadata.yaml').is_file():
            return files[0]
        listed = self._listed_files()
        if listed is not None and listed != [files[0].name]:
            return None  # parts missing: rosbags' Reader says so, then salvage reads the rest
        text = (self.path / 'metadata.yaml').read_text(errors='replace')
        mode = re.search(r'^\s*compression_mode:\s*[\'"]?(\w*)', text, re.MULTILINE)
        if mode is None or mode.group(1).lower() not in ('', 'none'):
            return None
        return files[0]

    def _indexed(self) -> Iterator[RawMessage]:
        for file in self._storage_files():  # a single .mcap path, too (review 9, F)
            problem = check_mcap_records(file) if file.suffix == '.mcap' else None
            if problem is not None:
                raise LayoutError(f'{file.name}: {problem}')
            log = wal_file(file)
            if file.suffix == '.db3' and log.is_file() and log.stat().st_size:
                # rosbags opens the file immutable: the log's commits would be missed silently
                msg = f'{file.name}: write-ahead log {log.name} not checkpointed (recorder died?)'
                raise LayoutError(msg)
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
            source = prefetch.messages(reader, conns) if single else reader.messages(conns)
            for conn, stamp, data in source:
                got += 1
                yield RawMessage(conn.topic, conn.msgtype, stamp, bytes(data))
            if got < expected:  # e.g. a chunk that inflates to garbage (rosbags writes no CRC)
                msg = f'yielded {got} of the {expected} messages the bag index lists'
                raise LayoutError(msg)
        finally:
            reader.close()

    def _salvage(self) -> Iterator[RawMessage]:
        self.mode = 'salvage'
        for file in self._storage_files():
            try:
                yield from self._salvage_file(file)
            except Exception as exc:  # noqa: PERF203 - a salvage bug costs its file, not the bag
                text = f'{file.name}: salvage failed: {type(exc).__name__}: {exc}'
                self.issues.append(ReadIssue(str(file), None, text))
                if self.warn:
                    logger.warning('bag %s: %s', self.path, text)

    def _salvage_file(self, file: Path) -> Iterator[RawMessage]:
        kind = storage_kind(file)
        if file.suffix not in ('.mcap', '.db3'):
            text = f'{file.name}: a file-compressed {kind} file cannot be salvaged'
            self.issues.append(ReadIssue(str(file), None, text))
            return
        if kind == '.db3':
            yield from salvage_sqlite(file, self.topics, self.issues)
            self.available.update(sqlite_topics(file))
            return
        salvager = McapSalvager(file, self.topics, self.issues)
        yield from salvager.messages()
        for topic, msgtype in salvager.channels.values():
            self.available.setdefault(topic, msgtype)

    def __iter__(self) -> Iterator[RawMessage]:
        """Raw messages; falls back to salvage when the indexed reader fails.

        The salvage skips what the indexed read already yielded: every message stamped before
        the last one yielded, and at that last stamp the very messages yielded (several topics
        share a stamp), so nothing is lost or repeated at the switch.
        """
        last: int | None = None
        # (topic, data) yielded at ``last``: a list, not a Counter (hashing every message's
        # bytes cost 8 ms of a 170 ms replay of the sample bag)
        at_last: list[tuple[str, bytes]] = []
        try:
            for message in self._indexed():
                if message.timestamp != last:
                    last = message.timestamp
                    at_last = []
                at_last.append((message.topic, message.data))
                self.count += 1
                yield message
            return
        except BagReadError:
            raise  # not a bag at all: nothing to salvage
        except Exception as exc:
            # rosbags raises ReaderError, but damage also surfaces as TypeError, OverflowError,
            # struct.error, ZstdError, apsw.CorruptError, MemoryError...; all mean "salvage"
            where = 'while reading' if last is not None else 'on open'
            text = f'indexed reader failed {where}: {type(exc).__name__}: {exc}'
            self.issues.append(ReadIssue(str(self.path), None, f'{self.path}: {text}'))
            if self.warn:
                logger.warning('bag %s: %s; salvaging what is readable', self.path, text)
        for message in self._salvage():
            if last is not None and message.timestamp < last:
                continue
            if message.timestamp == last and (message.topic, message.data) in at_last:
                at_last.remove((message.topic, message.data))
                continue
            self.count += 1
            yield message

    def decoded(self) -> Iterator[tuple[RawMessage, Any]]:
        """``(raw, message object)``; a message whose CDR fails is counted and skipped."""
        for raw in self:
            try:
                obj = self.store.deserialize_cdr(raw.data, raw.msgtype)
            except Exception as exc:  # any CDR failure means one bad message
                if self.warn and not self.skipped[raw.topic]:
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


def storage_files(path: str | Path) -> list[Path]:
    """The storage files :class:`RobustReader` reads for the bag ``path`` (a folder: those its
    ``metadata.yaml`` lists that exist, else every one; a storage file: itself), without reading
    a message; BagReadError when ``path`` is no bag."""
    return RobustReader(path, warn=False)._storage_files()


def recording(path: str | Path) -> frozenset[Path]:
    """The resolved storage files the bag ``path`` is read from, however it is named (a folder,
    its storage file, a link): two names of one recording share them. Its resolved path when it
    is no bag or cannot be listed (its read names the problem)."""
    try:
        return frozenset(f.resolve() for f in storage_files(path))
    except (BagReadError, OSError):
        return frozenset({Path(path).resolve()})


__all__ = [
    'MCAP_MAGIC',
    'BagReadError',
    'RawMessage',
    'ReadIssue',
    'RobustReader',
    'recording',
    'separate_recordings',
    'storage_files',
]
