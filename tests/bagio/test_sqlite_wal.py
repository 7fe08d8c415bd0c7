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

"""sqlite3 bags in WAL mode (rosbag2's ``resilient`` preset; review 22c, F1).

A recorder killed under that preset leaves ``x.db3`` plus the committed but never checkpointed
``x.db3-wal`` (and ``x.db3-shm``). Made here by copying the files of a database that is still
open after a commit, which is exactly what a killed writer leaves. The salvage must read the
log's messages, raise nothing on close, and leave the bag folder byte for byte as it was.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from dmil_ros.bagio import reader
from dmil_ros.bagio.reader import ReadIssue, RobustReader
from dmil_ros.bagio.sqlite_salvage import salvage_sqlite
from dmil_ros.sim import SimConfig, record_bag

Key = tuple[str, int]


@pytest.fixture(scope='module')
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Key, bytes]]:
    """An intact simulator .db3 (rollback mode) and ``(topic, stamp) -> data``."""
    out = tmp_path_factory.mktemp('wal') / 'bag'
    record_bag(SimConfig(frames=20, seed=3), out, storage='sqlite3')
    db = next(out.glob('*.db3'))
    con = sqlite3.connect(db)
    rows = con.execute(
        'SELECT t.name, m.timestamp, m.data FROM messages m JOIN topics t ON t.id = m.topic_id'
    ).fetchall()
    con.close()
    return db, {(t, s): d for t, s, d in rows}


def killed_recorder(db: Path, folder: Path) -> Path:
    """``folder/<name>.db3`` whose later half of messages lies in an uncheckpointed log."""
    work = folder.parent / f'{folder.name}-writer'
    work.mkdir()
    live = work / f'{folder.name}.db3'
    shutil.copyfile(db, live)
    con = sqlite3.connect(live)
    lo, hi = con.execute('SELECT min(timestamp), max(timestamp) FROM messages').fetchone()
    mid = (lo + hi) // 2
    later = con.execute(
        'SELECT id, topic_id, timestamp, data FROM messages WHERE timestamp >= ?', (mid,)
    ).fetchall()
    con.execute('DELETE FROM messages WHERE timestamp >= ?', (mid,))
    con.commit()
    con.execute('VACUUM')
    con.execute('PRAGMA journal_mode=WAL')
    con.execute('PRAGMA wal_autocheckpoint=0')
    con.executemany('INSERT INTO messages VALUES (?, ?, ?, ?)', later)
    con.commit()
    folder.mkdir()
    for part in work.iterdir():  # the writer still open: what a killed recorder leaves
        shutil.copyfile(part, folder / part.name)
    con.close()
    return folder / live.name


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_killed_wal_recorder_is_read_whole_and_its_folder_left_alone(
    source: tuple[Path, dict[Key, bytes]], tmp_path: Path
) -> None:
    db, truth = source
    path = killed_recorder(db, tmp_path / 'crashed')
    assert {p.name for p in path.parent.iterdir()} == {
        'crashed.db3',
        'crashed.db3-wal',
        'crashed.db3-shm',
    }
    before = snapshot(path.parent)
    issues: list[ReadIssue] = []
    got = list(salvage_sqlite(path, None, issues))  # closing raised IOError before the fix
    assert issues == []
    assert {(m.topic, m.timestamp): m.data for m in got} == truth
    assert len(got) == len(truth)
    assert snapshot(path.parent) == before


def test_clean_wal_mode_file_without_log_writes_nothing(
    source: tuple[Path, dict[Key, bytes]], tmp_path: Path
) -> None:
    db, truth = source
    folder = tmp_path / 'clean'
    folder.mkdir()
    path = folder / 'clean.db3'
    shutil.copyfile(db, path)
    con = sqlite3.connect(path)
    con.execute('PRAGMA journal_mode=WAL')
    con.close()  # the last connection: checkpointed, log removed
    assert [p.name for p in folder.iterdir()] == ['clean.db3']
    before = snapshot(folder)
    issues: list[ReadIssue] = []
    got = list(salvage_sqlite(path, None, issues))
    assert issues == []
    assert len(got) == len(truth)
    assert snapshot(folder) == before  # no -wal, no -shm created beside the bag


def test_reader_reads_a_wal_bag_through_its_log(
    source: tuple[Path, dict[Key, bytes]], tmp_path: Path
) -> None:
    """The bag folder as the recorder left it (no metadata.yaml), through RobustReader, which
    the audit and ``dmil-ros replay`` use (replay died with a traceback before the fix)."""
    db, truth = source
    path = killed_recorder(db, tmp_path / 'crashed')
    bag = RobustReader(path.parent, warn=False)
    got = list(bag)
    assert len(got) == len(truth)
    assert bag.mode == 'salvage'
    assert all('salvage failed' not in i.message for i in bag.issues)


def test_indexed_read_does_not_skip_an_uncheckpointed_log(
    source: tuple[Path, dict[Key, bytes]], tmp_path: Path
) -> None:
    """With the recording's metadata.yaml beside it, rosbags (immutable: no log) would read the
    main file's messages alone; the log sends the bag to the salvage, which reads them all."""
    db, truth = source
    path = killed_recorder(db, tmp_path / 'bag')
    shutil.copyfile(db.parent / 'metadata.yaml', path.parent / 'metadata.yaml')
    text = (path.parent / 'metadata.yaml').read_text().replace(db.name, path.name)
    (path.parent / 'metadata.yaml').write_text(text)
    bag = RobustReader(path.parent, warn=False)
    got = list(bag)
    assert len(got) == len(truth)
    assert any('write-ahead log bag.db3-wal' in i.message for i in bag.issues)


def test_a_failing_salvage_is_an_issue_naming_its_file(
    source: tuple[Path, dict[Key, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a salvage raises costs that file's messages, recorded against the file; the
    bag's other files are still read."""
    db, _ = source
    folder = tmp_path / 'split'
    folder.mkdir()
    for name in ('split_0.db3', 'split_1.db3'):
        shutil.copyfile(db, folder / name)
    real = reader.salvage_sqlite

    def broken(path: Path, topics: object, issues: list[ReadIssue]) -> object:
        if path.name == 'split_0.db3':
            raise OSError('disk I/O error')
        return real(path, topics, issues)  # type: ignore[arg-type]

    monkeypatch.setattr(reader, 'salvage_sqlite', broken)
    bag = RobustReader(folder, warn=False)
    got = list(bag)
    assert got
    failed = [i for i in bag.issues if 'salvage failed' in i.message]
    assert len(failed) == 1
    assert failed[0].file == str(folder / 'split_0.db3')
    assert 'split_0.db3' in failed[0].message
    assert 'disk I/O error' in failed[0].message
