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

"""Indexed MCAP reading with the next chunks inflated on a second core.

Reading the 6.3 s sample bag spends most of its time in zstd (13 MB of noisy sensor data); the
replay and the audit spend the rest of theirs on the messages. ``python-zstandard`` releases
the GIL while it decompresses (``backports.zstd``, which rosbags uses, does not), so a worker
thread reads, inflates and CRC-checks chunk k + 1 while the caller works through chunk k
(benchmarks/bench_runtime.py prints the replay with and without it).

The messages, their order and their bytes are those of rosbags' ``McapReader.messages``
(tests/bagio/test_prefetch.py): rosbags merges the chunks by (log time, chunk offset) after
sorting each chunk's messages by log time; when the chunks follow each other in time (a bag
recorded live), that merge is the chunks one after the other, which is what is read here.
Chunks that overlap in time, or an MCAP file without chunk index, go to rosbags' merge instead.
Damage surfaces as an exception, as from rosbags, and the :class:`RobustReader` salvages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any, BinaryIO

from dmil_ros.bagio import mcap

AHEAD = 2
"""Chunks inflated ahead of the one being read (memory: about AHEAD + 1 chunks)."""


def sequential(chunks: list[Any]) -> bool:
    """True when reading ``chunks`` one after the other equals rosbags' merge of them.

    ``chunks``: rosbags ``ChunkInfo`` records in file order (``chunk_start_offset``). Each
    chunk must start at or after the end of the one before (at a shared stamp, the merge puts
    the earlier chunk's messages first, as reading in file order does).
    """
    return all(b.message_start_time >= a.message_end_time for a, b in pairwise(chunks))


class ChunkLoader:
    """Reads, inflates and CRC-checks one chunk record (on the worker thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None

    def __call__(self, chunk: Any) -> bytes:
        if self._file is None:
            self._file = self.path.open('rb')
        self._file.seek(chunk.chunk_start_offset)
        record = self._file.read(chunk.chunk_length)
        if len(record) != chunk.chunk_length:
            msg = f'chunk at {chunk.chunk_start_offset}: file ends inside it'
            raise ValueError(msg)
        body = mcap.chunk_body(record)
        if body is None:
            msg = f'chunk at {chunk.chunk_start_offset}: the index does not point at a chunk'
            raise ValueError(msg)
        # inflated and CRC-checked here, on the worker (zlib.crc32 releases the GIL, too)
        return mcap.chunk_records(body)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def messages(reader: Any, connections: Collection[Any]) -> Iterator[tuple[Any, int, bytes]]:
    """``(connection, log time, data)`` as ``reader.messages(connections)`` yields them.

    ``reader``: an open rosbags ``McapReader``. Chunks are read ahead on a worker thread when
    python-zstandard is installed and they follow each other in time; otherwise rosbags reads.
    """
    channels = {c.id: c for c in connections}
    chunks = [
        c
        for c in reader.chunks
        if any(c.channel_count.get(cid, 0) for cid in channels)  # as rosbags filters them
    ]
    chunks.sort(key=lambda c: c.chunk_start_offset)
    if mcap.zstandard is None or not chunks or not sequential(chunks):
        yield from reader.messages(connections)
        return
    loader = ChunkLoader(Path(reader.path))
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='mcap-inflate')
    try:
        todo = iter(chunks)
        pending: deque[tuple[Any, Future[bytes]]] = deque()
        for chunk in todo:
            pending.append((chunk, pool.submit(loader, chunk)))
            if len(pending) > AHEAD:
                break
        while pending:
            chunk, future = pending.popleft()
            inner = future.result()
            following = next(todo, None)
            if following is not None:
                pending.append((following, pool.submit(loader, following)))
            for log_time, conn, data in mcap.chunk_messages(
                inner, channels, chunk.message_start_time, chunk.message_end_time
            ):
                yield conn, log_time, data
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        loader.close()


__all__ = ['AHEAD', 'ChunkLoader', 'messages', 'sequential']
