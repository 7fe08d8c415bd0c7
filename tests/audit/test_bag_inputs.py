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

"""Which bags an audit reads, and what their resume key covers (review 22c: F1, F3, F8)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from bagfactory import write_small_bag

from dmil_ros.audit.bags import bag_key, find_bags, storage_files
from dmil_ros.audit.errors import AuditError
from dmil_ros.cli import main
from models import build


@pytest.fixture(scope='module')
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp('model') / 'heads.onnx', heads=True)


@pytest.fixture(scope='module')
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('bags') / 'drive'
    write_small_bag(path, frames=8)
    return path


def test_a_folder_and_its_own_storage_file_are_refused_naming_both(bag: Path) -> None:
    with pytest.raises(AuditError) as err:
        find_bags([bag, bag / 'drive.mcap'])
    text = str(err.value)
    assert repr(str(bag)) in text
    assert repr(str(bag / 'drive.mcap')) in text
    assert "['drive.mcap']" in text


def test_a_link_to_a_bag_in_a_directory_of_bags_is_refused(bag: Path, tmp_path: Path) -> None:
    fleet = tmp_path / 'fleet'
    fleet.mkdir()
    (fleet / 'a').symlink_to(bag, target_is_directory=True)
    (fleet / 'b').symlink_to(bag, target_is_directory=True)
    with pytest.raises(AuditError, match='are one recording'):
        find_bags([fleet])
    assert len(find_bags([fleet / 'a'])) == 1


def test_one_recording_named_twice_stops_the_cli_before_any_output(
    model: Path, bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / 'out'
    args = ['audit', str(bag), str(bag / 'drive.mcap'), '--out', str(out)]
    assert main([*args, '--model', str(model), '--workers', '1', '--no-report']) == 2
    assert 'are one recording' in capsys.readouterr().err
    assert not out.exists()


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``folder`` without search permission, as for a user other than its owner (the tests
    may run as root, whom chmod does not stop)."""
    real_stat, real_iterdir = Path.stat, Path.iterdir

    def stat(self: Path, **kwargs: Any) -> os.stat_result:
        if self.parent == folder:
            raise PermissionError(13, 'Permission denied', str(self))
        return real_stat(self, **kwargs)

    def iterdir(self: Path) -> Any:
        if self == folder:
            raise PermissionError(13, 'Permission denied', str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, 'stat', stat)
    monkeypatch.setattr(Path, 'iterdir', iterdir)


def test_an_unlistable_bag_folder_fails_alone(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = tmp_path / 'fleet'
    for name in ('p1', 'p2', 'p3'):
        write_small_bag(fleet / name, frames=8)
    out = tmp_path / 'out'
    _deny(monkeypatch, fleet / 'p2')
    args = ['audit', str(fleet), '--out', str(out), '--model', str(model)]
    assert main([*args, '--workers', '1', '--no-report', '--clusters', '2']) == 1
    summary = json.loads((out / 'summary.json').read_text())
    status = {b['name']: (b['status'], b['frames']) for b in summary['bags']}
    assert status == {'p1': ('ok', 8), 'p2': ('failed', 0), 'p3': ('ok', 8)}
    (failed,) = [b for b in summary['bags'] if b['name'] == 'p2']
    message = failed['errors'][0]['message']
    assert str(fleet / 'p2') in message
    assert 'cannot be listed: Permission denied' in message


def test_the_resume_key_covers_a_db3_write_ahead_log(tmp_path: Path) -> None:
    """WAL commits change ``x.db3-wal``, not the .db3's size or mtime: a result must not be
    reused after the log has grown."""
    folder = tmp_path / 'bag'
    folder.mkdir()
    (folder / 'bag.db3').write_bytes(b'db')
    log = folder / 'bag.db3-wal'
    log.write_bytes(b'log')
    assert log in storage_files(folder)
    assert storage_files(folder / 'bag.db3') == [folder / 'bag.db3', log]
    keys = [bag_key(folder, 'o'), bag_key(folder / 'bag.db3', 'o')]
    log.write_bytes(b'a longer log')
    assert [bag_key(folder, 'o'), bag_key(folder / 'bag.db3', 'o')] != keys
    assert bag_key(folder, 'o') != keys[0]
    assert bag_key(folder / 'bag.db3', 'o') != keys[1]
