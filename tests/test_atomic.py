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


"""dmil_ros.atomic: whole-or-nothing writes, durable before the rename, stale temporaries."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dmil_ros import atomic
from dmil_ros.atomic import (
    STALE_TEMPORARY_S,
    atomic_write,
    atomic_write_text,
    remove_stale_temporaries,
)


def test_a_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / 'summary.json'
    path.write_text('old')
    atomic_write_text(path, 'new ü')
    assert path.read_text(encoding='utf-8') == 'new ü'
    assert [p.name for p in tmp_path.iterdir()] == ['summary.json']  # no temporary left


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / 'frames.npz'
    path.write_bytes(b'old')

    def half(f: object) -> None:
        f.write(b'torn')  # type: ignore[attr-defined]
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(path, half)
    assert path.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['frames.npz']


def test_the_bytes_reach_the_disk_before_the_rename_and_the_rename_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    fsync, replace = os.fsync, Path.replace

    def spy_fsync(fd: int) -> None:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        events.append('fsync directory' if is_dir else 'fsync file')
        fsync(fd)

    def spy_replace(self: Path, target: Path) -> Path:
        events.append('rename')
        return replace(self, target)

    monkeypatch.setattr(atomic.os, 'fsync', spy_fsync)
    monkeypatch.setattr(Path, 'replace', spy_replace)
    atomic_write_text(tmp_path / 'bag.json', '{}')
    assert events == ['fsync file', 'rename', 'fsync directory']


def test_a_file_system_without_fsync_still_gets_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(fd: int) -> None:
        raise OSError(22, 'Invalid argument')  # EINVAL, as on some FUSE/network mounts

    monkeypatch.setattr(atomic.os, 'fsync', unsupported)
    atomic_write_text(tmp_path / 'report.html', '<html></html>')
    assert (tmp_path / 'report.html').read_text() == '<html></html>'


def test_only_stale_temporaries_of_atomic_write_are_removed(tmp_path: Path) -> None:
    names = ['e.npz.4242.0a1b2c3d.tmp', 'e.json.7.deadbeef.tmp', 'e.npz.99.0badcafe.tmp',
             'notes.tmp', 'e.npz']  # fmt: skip
    for name in names:
        (tmp_path / name).write_bytes(b'x')
    old = (tmp_path / names[0]).stat().st_mtime - STALE_TEMPORARY_S - 60
    for name in (names[0], names[1], names[3]):
        os.utime(tmp_path / name, (old, old))
    assert remove_stale_temporaries(tmp_path) == 2
    # a fresh temporary may be a live writer's; other files are not the cache's to remove
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])
