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

"""Resume keys and bag names: a finished result is reused only for the same, unchanged bag."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from bagfactory import write_small_bag

from dmil_ros.audit import bags as audit_bags
from dmil_ros.audit import engines, runner
from dmil_ros.audit.bags import bag_names, find_bags
from dmil_ros.audit.errors import AuditError
from dmil_ros.cli import main
from models import build


@pytest.fixture(scope='module')
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp('model') / 'heads.onnx', heads=True)


def _audit(
    model: Path, out: Path, *bags: Path, extra: tuple[str, ...] = (), code: int = 0
) -> dict:
    args = ['audit', *map(str, bags), '--out', str(out), '--model', str(model)]
    assert main([*args, '--clusters', '2', '--workers', '1', '--no-report', *extra]) == code
    return json.loads((out / 'summary.json').read_text())


def _small_bag(tmp_path: Path, frames: int) -> tuple[Path, Path]:
    """A small bag ``tmp_path/bag`` of ``frames`` frames, and the audit's ``--out``."""
    bag = tmp_path / 'bag'
    write_small_bag(bag, frames=frames)
    return bag, tmp_path / 'out'


def _frames(summary: dict) -> dict[str, int]:
    return {b['name']: b['frames'] for b in summary['bags']}


def test_names_keep_dotted_suffixes_and_ignore_order(tmp_path: Path) -> None:
    for name in ('drive.001', 'drive.002', 'a/x', 'b/x'):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / 'solo.mcap').write_bytes(b'')
    dotted = [tmp_path / 'drive.001', tmp_path / 'drive.002', tmp_path / 'solo.mcap']
    assert bag_names(dotted) == ['drive.001', 'drive.002', 'solo']
    clash = [tmp_path / 'a' / 'x', tmp_path / 'b' / 'x']
    names = bag_names(clash)
    assert len(set(names)) == 2
    assert all(n.startswith('x-') for n in names)
    # a bag's name does not depend on the order of the others
    assert bag_names(clash[::-1]) == names[::-1]


def test_resume_with_an_added_bag_keeps_every_bag_its_own_result(
    model: Path, tmp_path: Path
) -> None:
    bags = tmp_path / 'bags'
    write_small_bag(bags / 'drive.001', frames=40)
    write_small_bag(bags / 'drive.002', frames=24)
    out = tmp_path / 'out'
    first = _frames(_audit(model, out, bags))
    assert first == {'drive.001': 40, 'drive.002': 24}
    write_small_bag(bags / 'drive.000', frames=30)
    again = _audit(model, out, bags)
    want = {'drive.000': 30, 'drive.001': 40, 'drive.002': 24}
    assert _frames(again) == want
    assert again['frames']['total'] == sum(want.values())
    assert {b['name']: b['resumed'] for b in again['bags']} == {
        'drive.000': False,
        'drive.001': True,
        'drive.002': True,
    }


def test_resume_ignores_another_bag_of_the_same_name(model: Path, tmp_path: Path) -> None:
    write_small_bag(tmp_path / 'one' / 'hallway', frames=40)
    write_small_bag(tmp_path / 'two' / 'hallway', frames=20)
    out = tmp_path / 'out'
    assert _frames(_audit(model, out, tmp_path / 'one' / 'hallway')) == {'hallway': 40}
    second = _audit(model, out, tmp_path / 'two' / 'hallway')
    assert _frames(second) == {'hallway': 20}
    assert second['bags'][0]['resumed'] is False


def test_resume_redoes_a_bag_whose_files_changed(model: Path, tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    write_small_bag(bag, frames=40)
    storage = next(bag.glob('*.mcap'))
    full = storage.read_bytes()
    storage.write_bytes(full[: len(full) // 2])
    out = tmp_path / 'out'
    cut = _frames(_audit(model, out, bag))['bag']
    assert 0 < cut < 40
    storage.write_bytes(full)  # the complete copy put back
    again = _audit(model, out, bag)
    assert _frames(again) == {'bag': 40}
    assert again['bags'][0]['resumed'] is False


def test_no_resume_drops_the_old_result_of_a_bag_that_now_raises(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag, out = _small_bag(tmp_path, frames=40)
    assert _frames(_audit(model, out, bag)) == {'bag': 40}

    def boom(*_: object) -> None:
        msg = 'worker died'
        raise RuntimeError(msg)

    monkeypatch.setattr(engines, 'audit_bag', boom)
    again = _audit(model, out, bag, extra=('--no-resume',), code=1)  # the bag failed
    assert again['bags'][0]['status'] == 'failed'
    assert again['frames']['total'] == 0
    assert any('worker died' in e['message'] for e in again['errors'])
    shutil.rmtree(out)


def test_dot_names_never_reach_outside_the_bag_folder(model: Path, tmp_path: Path) -> None:
    """A bag file '...mcap' (name '..') or '..mcap' (name '.') used to make the re-run cleanup
    delete --out itself, or every other bag's result."""
    for name in ('...mcap', '..mcap'):
        (tmp_path / name).write_bytes(b'')
    (tmp_path / '.hidden').mkdir()
    assert bag_names([tmp_path / '...mcap', tmp_path / '..mcap', tmp_path / '.hidden']) == [
        'bag-' + audit_bags._path_hash(tmp_path / '...mcap'),
        'bag-' + audit_bags._path_hash(tmp_path / '..mcap'),
        'hidden',
    ]
    write_small_bag(tmp_path / 'src', frames=20)
    (file,) = (tmp_path / 'src').glob('*.mcap')
    shutil.copy(file, tmp_path / '...mcap')
    out = tmp_path / 'out'
    (out / 'bags' / 'other').mkdir(parents=True)
    (out / 'keep.txt').write_text('precious')
    (out / 'bags' / 'other' / 'result.json').write_text('{}')
    summary = _audit(model, out, tmp_path / '...mcap', extra=('--no-resume',))
    assert (out / 'keep.txt').read_text() == 'precious'
    assert (out / 'bags' / 'other' / 'result.json').is_file()
    (name,) = _frames(summary)
    assert (out / 'bags' / name / 'bag.json').is_file()
    assert not (out / 'bag.json').exists()


def test_old_result_removal_refuses_anything_outside_out_bags(tmp_path: Path) -> None:
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    (tmp_path / 'out' / 'bags').mkdir(parents=True)
    link = tmp_path / 'out' / 'bags' / 'x'
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(runner.AuditError, match='not a folder in'):
        runner._remove_old_result(tmp_path / 'out', link)
    assert outside.is_dir()


def test_results_of_an_older_result_version_are_recomputed(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dmil_ros.audit import bagaudit

    bag, out = _small_bag(tmp_path, frames=20)
    _audit(model, out, bag)
    assert _audit(model, out, bag)['bags'][0]['resumed'] is True
    monkeypatch.setattr(bagaudit, 'RESULT_VERSION', bagaudit.RESULT_VERSION + 1)
    assert _audit(model, out, bag)['bags'][0]['resumed'] is False


def test_a_changed_ground_truth_sidecar_is_not_served_from_the_old_result(
    model: Path, tmp_path: Path
) -> None:
    bag, out = _small_bag(tmp_path, frames=20)
    (bag / 'ground_truth.json').write_text(json.dumps({'mix_pid': {'synergy': 0.5}}))
    _audit(model, out, bag)
    (bag / 'ground_truth.json').write_text(json.dumps({'mix_pid': {'synergy': 0.25}}))
    again = _audit(model, out, bag)
    assert not again['bags'][0]['resumed']  # the sidecar is read with the bag
    (bag / 'ground_truth.json').unlink()
    assert not _audit(model, out, bag)['bags'][0]['resumed']
    assert _audit(model, out, bag)['bags'][0]['resumed']  # unchanged since: reused


def test_a_damaged_finished_result_is_audited_again(model: Path, tmp_path: Path) -> None:
    """bag.json says done, but frames.npz is empty or cut short (a disk full, a power cut):
    the bag is audited again instead of the whole audit dying on the file."""
    bag, out = _small_bag(tmp_path, frames=20)
    _audit(model, out, bag)
    result = out / 'bags' / 'bag' / 'frames.npz'
    for damage in (b'', result.read_bytes()[:100]):
        result.write_bytes(damage)
        again = _audit(model, out, bag)
        assert again['bags'][0] | {'resumed': False} == again['bags'][0]  # recomputed
        assert _frames(again) == {'bag': 20}


def test_a_folder_of_bags_with_a_loose_storage_file_is_refused(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / 'mixed'
    write_small_bag(root / 'drive', frames=10)
    shutil.copy(next((root / 'drive').glob('*.mcap')), root / 'stray.mcap')
    args = ['audit', str(root), '--out', str(tmp_path / 'out'), '--model', str(model)]
    assert main(args) == 2  # it used to audit the stray file alone and skip the bag folder
    err = capsys.readouterr().err
    assert "loose storage files ['stray.mcap'] and bag folders ['drive']" in err


def test_a_folder_of_single_file_bags_gives_one_bag_per_file(tmp_path: Path) -> None:
    """Storage files without metadata.yaml are separate recordings unless they are one
    recording's split parts: read as one bag, one drive's frames took the other's labels."""
    root = tmp_path / 'loose'
    for name in ('drive_a', 'drive_b'):
        write_small_bag(tmp_path / name, frames=5)
        root.mkdir(exist_ok=True)
        shutil.copy(next((tmp_path / name).glob('*.mcap')), root / f'{name}.mcap')
    assert find_bags([root]) == [root / 'drive_a.mcap', root / 'drive_b.mcap']
    assert bag_names(find_bags([root])) == ['drive_a', 'drive_b']
    # in a directory of bags too
    fleet = tmp_path / 'fleet'
    fleet.mkdir()
    shutil.move(root, fleet / 'loose')
    assert find_bags([fleet]) == [
        fleet / 'loose' / 'drive_a.mcap',
        fleet / 'loose' / 'drive_b.mcap',
    ]
    # a recorder that died before writing metadata.yaml leaves its split parts: one bag
    died = tmp_path / 'rec'
    died.mkdir()
    for k, name in enumerate(('drive_a', 'drive_b')):
        shutil.copy(next((tmp_path / name).glob('*.mcap')), died / f'rec_{k}.mcap')
    assert find_bags([died]) == [died]
    # split parts beside another recording: ambiguous, refused by name
    shutil.copy(next((tmp_path / 'drive_a').glob('*.mcap')), died / 'other.mcap')
    with pytest.raises(AuditError, match=r"split parts \['rec_0.mcap', 'rec_1.mcap'\]"):
        find_bags([died])


def test_bags_two_levels_down_are_named_not_skipped_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fleet = tmp_path / 'fleet'
    write_small_bag(fleet / 'hall_a', frames=5)
    write_small_bag(fleet / 'robot2' / 'hall_b', frames=5)
    with caplog.at_level('WARNING', logger='dmil_ros'):
        assert find_bags([fleet]) == [fleet / 'hall_a']
    assert any(str(fleet / 'robot2' / 'hall_b') in r.getMessage() for r in caplog.records)


def test_the_dataset_level_results_do_not_depend_on_the_order_of_the_bags(
    model: Path, tmp_path: Path
) -> None:
    """``audit a b`` and ``audit b a``: the same tables and PID (k-means and the LSMI fits
    saw the rows in the order the bags were named in)."""
    for name, frames in (('a', 30), ('b', 50)):
        write_small_bag(tmp_path / name, frames=frames)
    extra = ('--clusters', '3', '--no-resume')
    one = _audit(model, tmp_path / 'ab', tmp_path / 'a', tmp_path / 'b', extra=extra)
    two = _audit(model, tmp_path / 'ba', tmp_path / 'b', tmp_path / 'a', extra=extra)
    for key in ('data_pid', 'model_pid', 'lsmi_mean', 'per_action'):
        assert one[key] == two[key], key
    assert pq.read_table(tmp_path / 'ab' / 'frames.parquet').equals(
        pq.read_table(tmp_path / 'ba' / 'frames.parquet')
    )


def test_a_run_without_report_removes_an_earlier_report(model: Path, tmp_path: Path) -> None:
    """``--no-report`` into a folder of an earlier audit left its report.html beside the new
    summary, describing other bags."""
    bag, out = _small_bag(tmp_path, frames=20)
    out.mkdir()
    (out / 'report.html').write_text('<html>an earlier audit</html>')
    _audit(model, out, bag)
    assert not (out / 'report.html').exists()
    assert (out / 'summary.json').is_file()


def test_one_cluster_is_refused(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bag, out = _small_bag(tmp_path, frames=20)
    args = ['audit', str(bag), '--out', str(out), '--model', str(model), '--clusters', '1']
    assert main(args) == 2
    # in the CLI's words: it has no None (review 19a #10)
    assert '--clusters 1 must be 0 (the bias rule) or >= 2' in capsys.readouterr().err


def test_the_model_path_spelling_does_not_redo_finished_bags(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """models/m.onnx and ./models/m.onnx are one file: one result (review 19a #5)."""
    bag, out = _small_bag(tmp_path, frames=20)
    (tmp_path / 'models').mkdir()
    shutil.copy2(model, tmp_path / 'models' / 'm.onnx')
    monkeypatch.chdir(tmp_path)
    first = _audit(Path('models/m.onnx'), out, bag)
    assert first['bags'][0]['resumed'] is False
    for spelling in ('./models/m.onnx', str(tmp_path / 'models' / 'm.onnx')):
        again = _audit(Path(spelling), out, bag)
        assert again['bags'][0]['resumed'] is True, spelling


def test_a_bag_that_failed_is_audited_again_on_resume(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure whose cause goes away without touching the bag's size or mtime (permissions
    fixed) was served from the stored 'failed' result forever (review 19a #6)."""
    from dmil_ros.bagio import reader

    bag, out = _small_bag(tmp_path, frames=20)

    def denied(path: Path, **_: object) -> None:
        msg = f'storage file(s) in {str(path)!r}: permission denied'
        raise reader.BagReadError(msg)

    with monkeypatch.context() as patch:
        patch.setattr(reader, 'RobustReader', denied)
        failed = _audit(model, out, bag, code=1)
    assert (failed['bags'][0]['status'], failed['bags'][0]['frames']) == ('failed', 0)
    again = _audit(model, out, bag)
    assert again['bags'][0]['resumed'] is False
    assert _frames(again) == {'bag': 20}
    assert _audit(model, out, bag)['bags'][0]['resumed'] is True  # done now: kept


def test_a_mixed_folder_inside_a_fleet_is_refused_too(tmp_path: Path) -> None:
    """Named directly it was refused; found one level down it was audited as its stray file
    alone, and the bag folder inside it was neither audited nor named."""
    fleet = tmp_path / 'fleet'
    write_small_bag(fleet / 'hall', frames=5)
    write_small_bag(fleet / 'mixed' / 'drive', frames=5)
    shutil.copy(next((fleet / 'hall').glob('*.mcap')), fleet / 'mixed' / 'stray.mcap')
    with pytest.raises(AuditError, match=r"loose storage files \['stray.mcap'\]"):
        find_bags([fleet])


def test_resumed_bags_leave_their_cores_to_the_bags_left(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bags = tmp_path / 'bags'
    for name in ('a', 'b'):
        write_small_bag(bags / name, frames=20)
    out = tmp_path / 'out'
    _audit(model, out, bags)
    write_small_bag(bags / 'c', frames=20)
    seen: list[tuple[int, int, int]] = []
    run_process = runner.run_process

    def spy(jobs: list, bag: object, workers: int, progress: object) -> dict:
        seen.append((len(jobs), workers, bag.threads))  # type: ignore[attr-defined]
        return run_process(jobs, bag, workers, progress)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, 'run_process', spy)
    monkeypatch.setattr(runner.os, 'cpu_count', lambda: 4)
    again = _audit(model, out, bags, extra=('--workers', '2'))
    assert [b['resumed'] for b in again['bags']] == [True, True, False]
    assert seen == [(1, 1, 4)]  # one bag left: one worker with all 4 cores, not 2 of 2


def test_ray_is_not_started_when_every_bag_is_resumed(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = pytest.importorskip('ray')
    bag, out = _small_bag(tmp_path, 20)
    _audit(model, out, bag)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError('ray.init called with nothing to audit')

    monkeypatch.setattr(ray, 'init', refuse)
    again = _audit(model, out, bag, extra=('--engine', 'ray'))
    assert [b['resumed'] for b in again['bags']] == [True]


def test_binary_side_files_do_not_cost_the_bag(model: Path, tmp_path: Path) -> None:
    """A ground_truth.json or a stored bag.json that is not UTF-8 text: the sidecar is skipped
    with a warning and the bag audited (it failed the whole bag: review 20b #6), the stored
    result is audited again (it raised)."""
    bag, out = _small_bag(tmp_path, 20)
    (bag / 'ground_truth.json').write_bytes(b'\xd9\xff\x00 not text')
    first = _audit(model, out, bag)
    assert _frames(first) == {'bag': 20}
    assert first['bags'][0]['status'] == 'ok'
    (out / 'bags' / 'bag' / 'bag.json').write_bytes(b'\xd9\xff\x00 not text')
    again = _audit(model, out, bag)
    assert _frames(again) == {'bag': 20}
    assert again['bags'][0]['resumed'] is False
