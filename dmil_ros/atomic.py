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


"""Whole-or-nothing file writes, shared by the trainer's cache and the audit's outputs.

:func:`atomic_write` writes into a temporary file named for the call (process id + random token),
flushes it to the disk (fsync), renames it over the target and then syncs the directory, so a
crash or a power cut leaves the old file or the new one, never a torn one, and a file written
after another (the audit's ``bag.json`` completion marker after its ``frames.npz``) is never on
disk without it. A temporary left by a killed process is removed by
:func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` whole or not at all: ``write(f)`` fills a temporary, renamed over ``path``.

    The temporary is named for this call, so writers sharing a directory (trainings decoding
    one bag into a shared cache at once) each replace the entry whole, the last one winning.
    The file is created with the usual permissions (umask), so a shared cache stays readable.
    """
    tmp = path.with_name(f'{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp')
    try:
        with tmp.open('xb') as f:
            write(f)
            f.flush()
            _fsync(f.fileno())
        tmp.replace(path)
    except OSError as exc:
        if exc.filename != str(tmp):
            raise
        # the file the caller asked for, not the temporary (same errno, so the same subclass)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """:func:`atomic_write` of ``data``."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode('utf-8'))


def _fsync(fd: int) -> None:
    """``os.fsync``, except on a file system that does not support it (the write stands)."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.ENOSYS):
            raise


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where it cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows, or no read permission on the directory
        return
    try:
        _fsync(fd)
    finally:
        os.close(fd)


_TEMPORARY = re.compile(r'\.\d+\.[0-9a-f]{8}\.tmp$')  # atomic_write's: <name>.<pid>.<token>.tmp
STALE_TEMPORARY_S = 86_400.0
"""Age past which a temporary of :func:`atomic_write` is taken for a dead writer's leftover
(a live one writes a file in seconds)."""


def remove_stale_temporaries(directory: Path, max_age_s: float = STALE_TEMPORARY_S) -> int:
    """Remove :func:`atomic_write` temporaries older than ``max_age_s`` in ``directory`` (left
    by a process killed mid-write); returns how many. Other files are never touched."""
    removed = 0
    now = time.time()
    try:
        candidates = [p for p in directory.iterdir() if _TEMPORARY.search(p.name)]
    except OSError:
        return 0
    for path in candidates:
        removed += _remove_if_older(path, now - max_age_s)
    return removed


def _remove_if_older(path: Path, cutoff: float) -> bool:
    try:
        if path.stat().st_mtime >= cutoff:
            return False
        path.unlink()
    except OSError:  # gone meanwhile, or not ours to remove
        return False
    return True


__all__ = [
    'STALE_TEMPORARY_S',
    'atomic_write',
    'atomic_write_bytes',
    'atomic_write_text',
    'remove_stale_temporaries',
]
