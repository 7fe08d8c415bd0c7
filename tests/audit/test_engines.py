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

"""The audit's engines: what a worker is sent, and what a worker's word is worth."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import dying_worker
import pytest
from bagfactory import write_small_bag

from dmil_ros.audit import engines
from dmil_ros.cli import main
from models import build


@pytest.fixture(scope='module')
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp('model') / 'heads.onnx', heads=True)


class _Ref:
    """An object reference: hashable, as Ray's are."""

    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args


class _FakeRay(types.ModuleType):
    """Just enough of ``ray`` for engines.run_ray: remote calls run here, their args kept."""

    def __init__(self) -> None:
        super().__init__('ray')
        self.calls: list[tuple[Any, ...]] = []

    def is_initialized(self) -> bool:
        return True

    def remote(self, **_options: Any) -> Any:
        def wrap(fn: Any) -> Any:
            return types.SimpleNamespace(remote=lambda *args: _Ref(fn, args))

        return wrap

    def wait(self, refs: list[Any], num_returns: int) -> tuple[list[Any], list[Any]]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: _Ref) -> Any:
        self.calls.append(ref.args)
        return ref.fn(*ref.args)


def test_ray_workers_get_absolute_paths(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a worker on another node starts elsewhere: relative paths would name other files there
    write_small_bag(tmp_path / 'bags' / 'small', frames=20)
    (tmp_path / 'model.onnx').write_bytes(model.read_bytes())
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, 'ray', fake)
    monkeypatch.chdir(tmp_path)
    args = ['audit', 'bags/small', '--out', 'out', '--model', 'model.onnx', '--engine', 'ray']
    assert main([*args, '--clusters', '2', '--workers', '1', '--no-report']) == 0
    ((path, name, options, out_dir, _key),) = fake.calls
    here = tmp_path.resolve()  # the runner resolves symbolic links too (/tmp on macOS)
    assert path == str(here / 'bags' / 'small')
    assert out_dir == str(here / 'out' / 'bags' / name)
    assert options['model'] == str(here / 'model.onnx')
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert summary['bags'][0]['status'] == 'ok'
    assert summary['model']['path'] == 'model.onnx'  # as the user wrote it


def test_a_worker_that_leaves_no_result_fails_the_bag(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a worker whose write went nowhere (a full disk behind a lying mount, a bug) said 'ok':
    # the summary listed the bag as audited while none of its frames was in the tables
    write_small_bag(tmp_path / 'bag', frames=20)

    def claims_success(path: str, name: str, *_args: Any) -> dict[str, Any]:
        return {'name': name, 'path': path, 'status': 'ok', 'frames': 20, 'errors': []}

    monkeypatch.setattr(engines, '_work', claims_success)
    args = ['audit', str(tmp_path / 'bag'), '--out', str(tmp_path / 'out'), '--model', str(model)]
    assert main([*args, '--clusters', '2', '--workers', '1', '--no-report']) == 1
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    (entry,) = summary['bags']
    assert (entry['status'], entry['frames']) == ('failed', 0)
    (error,) = summary['errors']
    assert (
        "no result on disk after the audit of this bag (the worker reported 'ok')"
        in error['message']
    )


def test_a_worker_that_dies_fails_only_its_own_bag(tmp_path: Path) -> None:
    """A killed worker process (the OOM killer) used to break the shared pool: every bag not
    finished yet failed with BrokenProcessPool and the culprit went unnamed."""
    names = ['a', 'boom', 'c', 'd', 'e']
    jobs = [(tmp_path / n, n, tmp_path / 'out' / n, 'key') for n in names]
    done: list[str] = []
    accounts = engines.run_process(
        jobs, engines.BagOptions(model='unused.onnx'), 2, done.append, work=dying_worker.work
    )
    assert sorted(done) == sorted(names)
    assert accounts['boom']['status'] == 'failed'
    assert 'worker process died' in accounts['boom']['errors'][0]['message']
    for name in ('a', 'c', 'd', 'e'):
        assert accounts[name]['status'] == 'ok', accounts[name]
    # the slot whose worker died got a fresh one: three worker processes served the bags
    assert len({accounts[n]['pid'] for n in ('a', 'c', 'd', 'e')}) <= 3


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != 'Z'


@pytest.mark.skipif(not Path('/proc/self/stat').exists(), reason='needs /proc (Linux)')
def test_sigterm_stops_the_workers_too(model: Path, tmp_path: Path) -> None:
    """SIGTERM to ``audit --workers 2`` (timeout, systemd, a CI cancel) left its worker
    processes running their bags without a parent; now it stops them, as Ctrl-C does."""
    for k in range(4):
        write_small_bag(tmp_path / 'bags' / f'b{k}', frames=400)
    args = ['audit', str(tmp_path / 'bags'), '--out', str(tmp_path / 'out'), '--model', str(model)]
    proc = subprocess.Popen(
        [sys.executable, '-m', 'dmil_ros.cli', *args, '--workers', '2', '--no-report'],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        children = Path(f'/proc/{proc.pid}/task/{proc.pid}/children')
        pids = [int(p) for p in children.read_text().split()] if children.exists() else []
        workers = [
            p
            for p in pids
            if 'spawn_main' in Path(f'/proc/{p}/cmdline').read_bytes().decode(errors='replace')
        ]
    try:
        assert len(workers) >= 2, 'no worker processes started'
        proc.send_signal(signal.SIGTERM)
        # (orphaned workers would hold stderr open: communicate would time out)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert 'interrupted' in err
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_alive, workers)), 'worker processes outlived the audit'
    finally:  # nothing left behind when the test fails
        for pid in [proc.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _spawned_children(pid: int) -> list[int]:
    children = Path(f'/proc/{pid}/task/{pid}/children')
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [
        p
        for p in pids
        if 'spawn_main' in Path(f'/proc/{p}/cmdline').read_bytes().decode(errors='replace')
    ]


@pytest.mark.skipif(not Path('/proc/self/stat').exists(), reason='needs /proc (Linux)')
def test_workers_exit_when_the_audit_is_killed(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer) gives the audit no chance to stop its workers: they ran on as
    orphans, finished their bags and idled forever (review 22c, F9)."""
    driver = (
        'import sys; from pathlib import Path\n'
        f'sys.path.insert(0, {str(Path(__file__).parent)!r})\n'
        'import dying_worker\n'
        'from dmil_ros.audit import engines\n'
        "jobs = [(Path(n), n, Path(n), 'key') for n in ('a', 'b')]\n"
        "engines.run_process(jobs, engines.BagOptions(model='m.onnx'), 2, print, "
        'work=dying_worker.sleepy)\n'
    )
    proc = subprocess.Popen([sys.executable, '-c', driver], stdout=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            workers = _spawned_children(proc.pid)
        assert len(workers) == 2, 'no worker processes started'
        time.sleep(1.0)  # past the pool initializer, into the bag's work
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_alive, workers)), 'worker processes outlived the killed audit'
    finally:
        for pid in [proc.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
