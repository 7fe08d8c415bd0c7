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

"""End to end: dmil-ros train -> export -> evaluate on a small simulator bag; model cards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch

from dmil_ros.cli import main
from dmil_ros.sim import SimConfig, record_bag
from dmil_ros.train.card import metrics_table
from dmil_ros.train.dataset import Arrays
from tests.train.toy import small_model, toy_arrays


@pytest.fixture(scope='module')
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('bags') / 'drive'
    record_bag(SimConfig(frames=200, seed=16), path)  # a seed whose drive has all 4 actions
    return path


def test_train_export_evaluate(
    bag: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / 'train.json'
    config.write_text(json.dumps({
        'model': small_model(8),
        'schedule': {'stage1_epochs': 1, 'stage2_epochs': 1, 'stage3_epochs': 1,
                     'baseline_epochs': 1, 'batch_size': 32, 'threads': 1},
        # 0.5 s blocks: every action keeps >= 2 training frames for the PID fit (with 2 s
        # blocks the validation block holds 40 of the 41 'stop' frames)
        'data': {'block_seconds': 0.5},
    }))  # fmt: skip
    cache = tmp_path / 'cache'
    run = tmp_path / 'run'
    monkeypatch.chdir(bag.parent)  # the bag named relative to the training's directory ...
    rc = main(['train', '--bags', bag.name, '--out', str(run), '--config', str(config),
               '--cache', str(cache), '--no-progress'])  # fmt: skip
    assert rc == 0
    monkeypatch.chdir(tmp_path)  # ... and exported from another: the PID heads still fitted
    assert 'reading drive' not in capfd.readouterr().err  # --no-progress: no bar at all
    summary = json.loads((run / 'summary.json').read_text())
    assert summary['train_frames'] + summary['val_frames'] >= 195
    model = tmp_path / 'models' / 'tiny.onnx'
    report = tmp_path / 'reports' / 'new' / 'export.json'  # folders made, not refused
    rc = main(['export', str(run), '--out', str(model), '--cache', str(cache),
               '--pid-frames', '190', '--report', str(report)])  # fmt: skip
    assert rc == 0
    assert json.loads(report.read_text())['bytes'] == model.stat().st_size
    # the PID heads are fitted on the run's training frames, its validation blocks left out
    # (review 19b #9: all 190 of the bag's frames, validation included, were used)
    assert summary['train_frames'] < 190
    meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    pid = json.loads(meta['dmil_ros.training'])['pid']
    assert (pid['fit_frames'], pid['fit_on']) == (summary['train_frames'], 'training frames')
    assert 'over 64 training frames;' in model.with_suffix('.md').read_text()
    names = [o.name for o in onnx.load(str(model)).graph.output]
    assert names[-2:] == ['pid_lsmi', 'pid_broja']
    assert 'gates' in names
    card = model.with_suffix('.md').read_text()
    assert '## Limits' in card
    assert '| tiny |' in card
    assert "project's simulator" in card  # the bag carries the simulator's ground truth
    assert 'control flow left: none.' in card  # the PID heads' If nodes were taken out
    # another checkpoint: the run's metrics are model.pt's, so neither card nor metadata has them
    other = tmp_path / 'models' / 'stage1.onnx'
    rc = main(['export', str(run), '--out', str(other), '--cache', str(cache),
               '--pid-frames', '190', '--checkpoint', 'stage1_best.pt'])  # fmt: skip
    assert rc == 0
    assert '| stage1 |' not in other.with_suffix('.md').read_text()
    assert 'the checkpoint `stage1_best.pt`' in other.with_suffix('.md').read_text()
    assert "project's simulator" in other.with_suffix('.md').read_text()  # limits kept
    meta = {p.key: p.value for p in onnx.load(str(other)).metadata_props}
    training = json.loads(meta['dmil_ros.training'])
    assert training['checkpoint'] == 'stage1_best.pt'
    assert 'val' not in training
    # the training bags moved away: refused by name unless the heads are left out on purpose
    data = json.loads((run / 'data.json').read_text())
    assert data['bags'] == [str(bag)]  # absolute
    data['bags'] = [str(tmp_path / 'moved')]
    (run / 'data.json').write_text(json.dumps(data))
    gone = tmp_path / 'models' / 'gone.onnx'
    assert main(['export', str(run), '--out', str(gone)]) == 2
    assert (
        f"training bags ['{tmp_path / 'moved'}'] (data.json) not found" in capfd.readouterr().err
    )
    # without the heads the check runs on random inputs, and the card says so (review 19b #9)
    assert main(['export', str(run), '--out', str(gone), '--no-pid']) == 0
    assert 'over 8 random inputs;' in gone.with_suffix('.md').read_text()
    result = tmp_path / 'eval.json'
    rc = main(['evaluate', '--model', str(model), str(bag), '--json', str(result),
               '--cache', str(cache)])  # fmt: skip
    assert rc == 0
    doc = json.loads(result.read_text())
    m = doc['models']['tiny']
    assert set(m['per_family']) == {'R', 'U_camera', 'U_lidar', 'S'}
    assert 0 <= m['accuracy'] <= 1
    assert m['gate_family_agreement'] is not None
    # every pair of a simulator bag has a family, except those spanning two scene segments
    # (and those whose sweep's scene is not known: none in an unedited bag)
    two, unconfirmed = m['pairs_two_scenes'], m['pairs_unconfirmed_scene']
    assert unconfirmed == 0
    assert sum(m['frames_per_family'].values()) + two == m['frames']


def test_train_reports_bad_config(bag: Path, tmp_path: Path) -> None:
    config = tmp_path / 'bad.json'
    config.write_text(json.dumps({'loss': {'alhpa': 1.0}}))
    rc = main(['train', '--bags', str(bag), '--out', str(tmp_path / 'r'), '--config', str(config)])
    assert rc == 2


def test_metrics_table_has_one_row_per_model() -> None:
    table = metrics_table({
        'a': {'accuracy': 0.5, 'per_family': {'R': 1.0}, 'synergy_indicator': None},
        'b': {'accuracy': 0.25, 'per_family': {}, 'gate_family_agreement': 0.7},
    })  # fmt: skip
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith('| a | 50.0 | 100.0 | - |')
    assert lines[3].endswith('| 70.0 |')
    assert all(line.count('|') == lines[0].count('|') for line in lines)


def test_model_names_are_unique_when_stems_clash() -> None:
    from dmil_ros.train.evaluate_cli import model_names

    paths = [Path('a/m.onnx'), Path('b/m.onnx'), Path('x/a/m.onnx'), Path('c.onnx')]
    paths.append(Path('c.onnx'))
    names = model_names(paths)
    assert len(set(names)) == len(paths)
    assert names[1] == 'b/m'
    assert names[3].startswith('c')
    assert model_names([Path('a/m.onnx'), Path('b/n.onnx')]) == ['m', 'n']


def test_train_refuses_to_replace_an_earlier_run_unasked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An earlier run's model is kept unless --overwrite (or --resume) says otherwise; the check
    comes before any bag is read (this bag does not even exist)."""
    run = tmp_path / 'run'
    (run / 'tb').mkdir(parents=True)
    (run / 'model.pt').write_bytes(b'weights')
    (run / 'tb' / 'events.out.tfevents.1').write_bytes(b'')
    args = ['train', '--bags', str(tmp_path / 'nobag'), '--out', str(run)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert 'holds an earlier run (model.pt, tb/events.out.tfevents.1)' in err
    assert (run / 'model.pt').read_bytes() == b'weights'
    assert main([*args, '--resume', '--overwrite']) == 2
    assert 'choose one' in capsys.readouterr().err
    assert main([*args, '--overwrite']) == 2  # past the guard: now the missing bag is named
    assert 'nobag' in capsys.readouterr().err
    (tmp_path / 'file').write_text('')
    assert main(['train', '--bags', str(tmp_path / 'nobag'), '--out', str(tmp_path / 'file')]) == 2
    assert 'is a file, not a directory' in capsys.readouterr().err


def test_train_refuses_validation_on_training_bags_and_a_resume_on_other_bags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both before any bag is read (these do not exist) and before the run's files are
    touched: a refused resume used to rewrite config.json and data.json all the same."""
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    args = ['train', '--bags', a, b, '--val-bags', b, '--out', str(tmp_path / 'new')]
    assert main(args) == 2
    assert f"--val-bags ['{b}'] are also --bags" in capsys.readouterr().err
    run = tmp_path / 'run'
    run.mkdir()
    recorded = {'bags': [a], 'val_bags': [], 'stats': []}
    (run / 'data.json').write_text(json.dumps(recorded))
    (run / 'config.json').write_text('{"kept": true}')
    assert main(['train', '--bags', b, '--out', str(run), '--resume']) == 2
    assert f"the run was trained on --bags ['{a}'] --val-bags []" in capsys.readouterr().err
    assert json.loads((run / 'data.json').read_text()) == recorded
    assert (run / 'config.json').read_text() == '{"kept": true}'


def test_train_refuses_a_recording_given_twice_however_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Compared by the storage files read, not the paths typed, before any bag is read (these
    hold no messages): `--bags A A` made two copies whose time blocks interleave, and
    `--bags A --val-bags A/a.mcap` passed; either way validation scored training frames
    (review 19b #3)."""
    bags = {}
    for name in ('a', 'b'):
        folder = tmp_path / name
        folder.mkdir()
        (folder / f'{name}.mcap').write_bytes(b'')
        (folder / 'metadata.yaml').write_text(f'relative_file_paths:\n  - {name}.mcap\n')
        bags[name] = str(folder)
    (tmp_path / 'link').symlink_to(tmp_path / 'a')
    a, b, a_file, link = bags['a'], bags['b'], f'{bags["a"]}/a.mcap', str(tmp_path / 'link')
    out = ['--out', str(tmp_path / 'run')]
    cases = [
        (['--bags', a, b, a], f"--bags '{a}' and '{a}' are one recording (both read ['a.mcap'])"),
        (['--bags', a, link], f"--bags '{a}' and '{link}' are one recording"),
        (['--bags', a_file, b, a], f"--bags '{a_file}' and '{a}' are one recording"),
        (['--bags', b, '--val-bags', a, a_file], f"--val-bags '{a}' and '{a_file}' are one"),
        (['--bags', a, '--val-bags', a_file], f"--val-bags ['{a_file}'] are also --bags"),
        (['--bags', link, '--val-bags', b, a], f"--val-bags ['{a}'] are also --bags"),
    ]
    for args, named in cases:
        assert main(['train', *args, *out]) == 2, args
        assert named in capsys.readouterr().err, args
    assert not (tmp_path / 'run').exists()
    from dmil_ros.train.rundir import check_bags

    check_bags(tmp_path / 'run', [Path(a)], [Path(b)], resume=False)  # two recordings: fine


def test_run_files_that_are_not_json_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged summary.json (export) or data.json (export, train --resume) is one line
    naming the file, not a JSONDecodeError / AttributeError traceback (review 19b #8)."""
    from dmil_ros.model import build_model
    from dmil_ros.train.checkpoint import save_checkpoint
    from dmil_ros.train.config import TrainConfig

    run = tmp_path / 'run'
    run.mkdir()
    config = TrainConfig.from_dict({'model': small_model(4)})
    save_checkpoint(run / 'model.pt', build_model(config.model), config, {'stage': 3})
    export = ['export', str(run), '--out', str(tmp_path / 'm.onnx'), '--no-pid']
    for text in ('{not json', '[1, 2]', '\udcff'):
        (run / 'summary.json').write_text(text, errors='surrogateescape')
        assert main(export) == 2, text
        err = capsys.readouterr().err
        assert f"run '{run}': summary.json" in err, text
        assert 'Traceback' not in err
    (run / 'summary.json').write_text('{"kind": "dmil"}')
    resume = ['train', '--bags', str(tmp_path / 'nobag'), '--out', str(run), '--resume']
    for text in ('{not json', '[1, 2]', '{"bags": "a"}', '{"bags": [1]}'):
        (run / 'data.json').write_text(text)
        assert main(export) == 2, text
        assert f"run '{run}': data.json" in capsys.readouterr().err, text
        assert main(resume) == 2, text
        assert f"run '{run}': data.json" in capsys.readouterr().err, text
    assert not (tmp_path / 'm.onnx').exists()


def test_evaluate_checks_every_model_and_path_before_reading_bags(
    bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second model of the wrong input shape, or a --json that is a directory, is named in
    one line before the (here missing) bags are read; it used to be an ORT traceback after
    every bag was decoded."""
    from tests.runtime.contract_models import build_model

    good = build_model(tmp_path / 'good.onnx')
    wrong = build_model(tmp_path / 'wrong.onnx', input_shapes={'lidar': ['B', 2, 16, 90]})
    nobag = str(tmp_path / 'nobag')
    assert main(['evaluate', '--model', str(good), '--model', str(wrong), nobag]) == 2
    assert "wrong.onnx': input 'lidar' has shape" in capsys.readouterr().err
    assert main(['evaluate', '--model', str(good), nobag, '--json', str(tmp_path)]) == 2
    assert 'is a directory, not a file' in capsys.readouterr().err
    assert main(['evaluate', '--model', str(tmp_path), nobag]) == 2
    assert '--model' in capsys.readouterr().err


def test_export_checks_its_paths_and_card_inputs_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each is named in one line before the checkpoint is even read (this run does not exist);
    a bad --eval-json used to fail after the .onnx was written, leaving it without its card."""
    (tmp_path / 'bad.json').write_text('{"bags": ')
    (tmp_path / 'other.json').write_text('{"accuracy": 1}')
    run, out = str(tmp_path / 'norun'), str(tmp_path / 'm.onnx')
    cases = [
        (['--out', str(tmp_path)], 'is a directory, not a file'),
        (['--out', out, '--pid-frames', '-1'], '--pid-frames -1 must be >= 1'),
        (['--out', out, '--eval-json', str(tmp_path / 'none.json')], 'no such file'),
        (['--out', out, '--eval-json', str(tmp_path / 'bad.json')], 'not JSON'),
        (['--out', out, '--eval-json', str(tmp_path / 'other.json')], 'dmil-ros evaluate'),
        (['--out', out, '--report', str(tmp_path)], '--report'),
    ]
    for extra, named in cases:
        assert main(['export', run, *extra]) == 2, extra
        assert named in capsys.readouterr().err, extra
    assert not (tmp_path / 'm.onnx').exists()


def test_the_card_describes_the_model_it_was_written_for() -> None:
    """Sizes, validation bags and label topic from the run, not the shipped model's; the
    simulator's limits only for a model whose bags carry its ground truth."""
    from dmil_ros.train.card import render_card
    from dmil_ros.train.config import TrainConfig

    config = TrainConfig().to_dict()
    config['preprocess'].update(image_width=40, image_height=32, beams=32, azimuth_bins=90)
    config['data'].update(label_source='cmd_vel', cmd_vel_topic='/robot/cmd_vel')
    report = {'outputs': ['probs'], 'max_abs_diff_probabilities': 0.0, 'max_scaled_diff': 0.0,
              'batch': 4, 'bytes': 10}  # fmt: skip
    real = {'bags': ['monday'], 'val_bags': ['tuesday'], 'simulator_truth': False}
    card = render_card('mine', config, real, report)
    assert 'Inputs `image` (B,3,32,40) and `lidar` (B,2,32,90)' in card
    assert 'validation = the bags tuesday' in card
    assert 'Labels: `cmd_vel` (/robot/cmd_vel)' in card
    assert "project's simulator" not in card
    assert '2-core' not in card


def _joint_config(path: Path, epochs: int, seed: int = 0) -> Path:
    path.write_text(json.dumps({
        'model': {**small_model(4), 'kind': 'joint'},
        'schedule': {'baseline_epochs': epochs, 'batch_size': 32, 'threads': 1, 'seed': seed},
        'data': {'block_seconds': 0.5},
    }))  # fmt: skip
    return path


def test_an_interrupted_run_resumes_on_its_own_config(
    bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C mid-run exits 130 with last.pt kept and the TensorBoard writer closed (left open,
    it once aborted the process with exit 134); `--resume` without --config then continues on
    the run's config.json (it was refused as 'a different config' after decoding every bag),
    and a --config or --model that differs from it is refused before any bag is read, saying
    what differs and how to go on (review 20b #4, #5)."""
    pytest.importorskip('torch.utils.tensorboard')
    from torch.utils.tensorboard import SummaryWriter

    from dmil_ros.train import data, trainer

    config, run, cache = _joint_config(tmp_path / 'c.json', 2), tmp_path / 'run', tmp_path / 'c'
    common = ['train', '--bags', str(bag), '--out', str(run), '--cache', str(cache),
              '--no-progress']  # fmt: skip
    writers: list[SummaryWriter] = []
    close = trainer._Logger.close

    def closing(self: Any) -> None:
        writers.append(self.tb)
        close(self)

    monkeypatch.setattr(trainer._Logger, 'close', closing)
    epochs = {'n': 0}
    original = trainer._metrics

    def interrupted(*args: Any) -> Any:
        epochs['n'] += 1
        if epochs['n'] == 2:  # the second epoch, after the first one's last.pt
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(trainer, '_metrics', interrupted)
    assert main([*common, '--config', str(config)]) == 130
    assert [w.all_writers for w in writers] == [None]  # closed
    assert (run / 'last.pt').is_file()
    assert not (run / 'summary.json').exists()
    monkeypatch.setattr(trainer, '_metrics', original)
    read: list[list[Path]] = []
    load_bags = data.load_bags

    def reading(bags: list[Path], *args: Any, **kwargs: Any) -> Any:
        read.append(bags)
        return load_bags(bags, *args, **kwargs)

    monkeypatch.setattr(data, 'load_bags', reading)
    other = _joint_config(tmp_path / 'other.json', 2, seed=1)
    for extra, named in [
        (['--config', str(other)], f"--config '{other}' differs"),
        (['--model', 'dmil'], '--model dmil differs'),
        (['--config', str(other), '--model', 'ensemble'], 'omit --config and --model'),
    ]:
        assert main([*common, '--resume', *extra]) == 2, extra
        err = capsys.readouterr().err
        assert named in err, extra
        assert f"started with ('{run / 'config.json'}')" in err, extra
    assert 'schedule.seed (0 -> 1)' in err
    assert read == []  # refused before any bag was read
    assert main([*common, '--resume']) == 0
    assert "training with the run's config" in capsys.readouterr().err
    assert json.loads((run / 'summary.json').read_text())['kind'] == 'joint'
    assert main([*common, '--resume', '--config', str(run / 'config.json')]) == 0


def test_binary_files_given_as_text_are_named_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that is not UTF-8 text as --config, the run's config.json, --eval-json or --notes,
    or as a model's training-config metadata, is one line naming it, exit 2 (it was a
    UnicodeDecodeError / JSONDecodeError traceback; review 20b #6)."""
    from tests.runtime.contract_models import build_model

    binary = tmp_path / 'binary'
    binary.write_bytes(b'\x89PNG\r\n\x1a\n\xd9\xff\x00')
    nobag = str(tmp_path / 'nobag')
    train = ['train', '--bags', nobag, '--out']
    assert main([*train, str(tmp_path / 'r'), '--config', str(binary)]) == 2
    assert f"config '{binary}': not a JSON text file" in capsys.readouterr().err
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'config.json').write_bytes(binary.read_bytes())
    assert main([*train, str(run), '--resume']) == 2
    assert f"config '{run / 'config.json'}': not a JSON text file" in capsys.readouterr().err
    out = str(tmp_path / 'm.onnx')
    for option in ('--eval-json', '--notes'):
        assert main(['export', str(tmp_path / 'norun'), '--out', out, option, str(binary)]) == 2
        assert f"{option} '{binary}': not a text file" in capsys.readouterr().err
    good = build_model(tmp_path / 'good.onnx')
    bad = build_model(tmp_path / 'bad.onnx', metadata={'dmil_ros.config': '{broken'})
    assert main(['evaluate', '--model', str(good), '--model', str(bad), nobag]) == 2
    assert f"model '{bad}': metadata dmil_ros.config is not a training config" in (
        capsys.readouterr().err
    )


def _run_dir(path: Path, kind: str = 'dmil', *, diverged: bool = False) -> Path:
    """A run directory: an untrained model.pt (NaN weights when ``diverged``), its
    summary.json and config.json (no data.json)."""
    from dmil_ros.model import build_model
    from dmil_ros.train.checkpoint import save_checkpoint
    from dmil_ros.train.config import TrainConfig

    path.mkdir(parents=True)
    config = TrainConfig.from_dict({'model': {**small_model(4), 'kind': kind}})
    torch.manual_seed(0)
    model = build_model(config.model)
    if diverged:
        with torch.no_grad():
            model.camera_encoder.fc[0].bias.fill_(float('nan'))
    save_checkpoint(path / 'model.pt', model, config, {'stage': 3})
    (path / 'summary.json').write_text(json.dumps({'kind': kind}))
    (path / 'config.json').write_text(config.to_json())
    return path


def test_export_without_frames_to_fit_the_pid_heads_on_stops_unless_no_pid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No data.json and no --bags: the model shipped without pid_lsmi / pid_broja (no synergy
    alarm) and exit 0, where the README says the export stops (review 22a #1)."""
    run, out = _run_dir(tmp_path / 'run'), tmp_path / 'm.onnx'
    assert main(['export', str(run), '--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert 'no bags to fit the PID heads (pid_lsmi, pid_broja' in err
    assert "neither --bags nor the run's data.json names any" in err
    assert 'or export without the heads (--no-pid)' in err
    assert not out.exists()
    assert main(['export', str(run), '--out', str(out), '--no-pid']) == 0
    assert 'No PID heads' in out.with_suffix('.md').read_text()


def test_export_of_a_diverged_checkpoint_is_refused_in_one_line(
    bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """NaN weights failed in the PID fit's SVD with a numpy traceback; the export's own
    'not finite' error was reached with --no-pid only (review 22a #2)."""
    run, out = _run_dir(tmp_path / 'run', diverged=True), tmp_path / 'm.onnx'
    args = ['export', str(run), '--out', str(out), '--bags', str(bag), '--cache', str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"export '{out}': torch output(s) ['probs', " in err
    assert 'not finite on the 200 PID fitting frames (a diverged checkpoint?)' in err
    assert 'Traceback' not in err
    assert not out.exists()


def test_export_refuses_a_checkpoint_another_run_trained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One outside RUN, or one in RUN whose config is not the run's: the metadata and card
    mixed that model (kind joint) with RUN's training (kind dmil, 3 stages; review 22a #4)."""
    run, other = _run_dir(tmp_path / 'run'), _run_dir(tmp_path / 'other', 'joint')
    shutil.copy(other / 'model.pt', run / 'copied.pt')
    out = tmp_path / 'm.onnx'
    export = ['export', str(run), '--out', str(out), '--no-pid']
    for name in ('../other/model.pt', str(other / 'model.pt')):
        assert main([*export, '--checkpoint', name]) == 2, name
        err = capsys.readouterr().err
        assert f"--checkpoint '{name}': '{other / 'model.pt'}' lies outside the run" in err
    assert main([*export, '--checkpoint', 'copied.pt']) == 2
    err = capsys.readouterr().err
    assert "--checkpoint 'copied.pt': its config differs from the run's" in err
    assert "model.kind ('dmil' -> 'joint')" in err
    assert "(kind joint, the run's dmil)" in err
    assert not out.exists()
    assert main([*export, '--checkpoint', str(run / 'model.pt')]) == 0  # in RUN, however named
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta['dmil_ros.training'])['checkpoint'] == 'model.pt'
    (run / 'config.json').unlink()  # a run without one: its summary's kind
    assert main([*export, '--overwrite', '--checkpoint', 'copied.pt']) == 2
    assert "a joint model, but the run '" in capsys.readouterr().err


def test_export_replaces_a_model_or_its_card_only_with_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--out models/dmil_hallway.onnx` replaced the shipped model and its card without a
    word, where every other writer refuses (review 22d #8)."""
    run = _run_dir(tmp_path / 'run')
    out = tmp_path / 'm.onnx'
    export = ['export', str(run), '--out', str(out), '--no-pid']
    assert main(export) == 0
    model, card = out.read_bytes(), out.with_suffix('.md').read_text()
    out.write_bytes(b'shipped')
    assert main(export) == 2
    err = capsys.readouterr().err
    assert f"export: ['{out}', '{out.with_suffix('.md')}'] already exist" in err
    assert out.read_bytes() == b'shipped'
    out.unlink()  # the card alone is enough to refuse
    assert main(export) == 2
    assert not out.exists()
    assert main([*export, '--overwrite']) == 0
    assert out.read_bytes() == model
    assert out.with_suffix('.md').read_text() == card


def _toy_bags(monkeypatch: pytest.MonkeyPatch, frames: dict[str, int]) -> None:
    """``load_bags`` yields ``frames[name]`` toy frames for the bag ``name`` (no bag read)."""
    from dmil_ros.train import data

    def load(bags: list[Path], *args: Any, **kwargs: Any) -> tuple[Arrays, list[Any]]:
        parts = [toy_arrays(frames[Path(b).name], i) for i, b in enumerate(bags)]
        stats = [data.BagStats(str(b), pairs=len(a)) for b, a in zip(bags, parts, strict=True)]
        return Arrays.concat(parts), stats

    monkeypatch.setattr(data, 'load_bags', load)


def test_a_refused_overwrite_leaves_the_earlier_runs_files_as_they_were(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schedule without an epoch and too few frames were refused by the trainer, after
    config.json and data.json had been replaced under the earlier run's model.pt; an export
    then fitted that model's PID heads on the refused command's bags (review 22a #3)."""
    run = tmp_path / 'run'
    run.mkdir()
    kept = {'config.json': '{"kept": 1}', 'data.json': '{"kept": 2}', 'model.pt': 'weights'}
    for name, text in kept.items():
        (run / name).write_text(text)
    _toy_bags(monkeypatch, {'one': 1, 'eight': 8})
    zero = tmp_path / 'zero.json'
    zero.write_text(json.dumps({'schedule': {'stage1_epochs': 0, 'stage2_epochs': 0,
                                             'stage3_epochs': 0}}))  # fmt: skip
    common = ['train', '--out', str(run), '--overwrite', '--no-progress', '--no-cache']
    one, eight = str(tmp_path / 'one'), str(tmp_path / 'eight')
    assert main([*common, '--bags', eight, '--val-bags', one, '--config', str(zero)]) == 2
    assert 'every stage of the schedule has 0 epochs' in capsys.readouterr().err
    assert main([*common, '--bags', one, '--val-bags', eight]) == 2
    assert '1 training / 8 validation frames' in capsys.readouterr().err
    assert {name: (run / name).read_text() for name in kept} == kept


def test_resume_refuses_another_recording_at_the_runs_bag_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bag re-recorded at the same path: --resume compared paths only and went on with
    other frames and another validation split (review 22a #5)."""
    bag = tmp_path / 'drive'
    record_bag(SimConfig(frames=60, seed=7), bag)
    run = tmp_path / 'run'
    common = ['train', '--bags', str(bag), '--out', str(run), '--no-progress', '--cache',
              str(tmp_path / 'cache')]  # fmt: skip
    assert main([*common, '--config', str(_joint_config(tmp_path / 'c.json', 1))]) == 0
    assert main([*common, '--resume']) == 0  # the same recording (from the cache): goes on
    capsys.readouterr()
    data = (run / 'data.json').read_text()
    shutil.rmtree(bag)
    record_bag(SimConfig(frames=60, seed=8), bag)  # another drive at the same path
    assert main([*common, '--resume']) == 2
    err = capsys.readouterr().err
    assert f"bag '{bag}' is not the recording the run was trained on (data.json: " in err
    assert 'pairs digest' in err
    assert (run / 'data.json').read_text() == data
