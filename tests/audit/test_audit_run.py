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

"""End to end: simulator bags through ``dmil-ros audit`` (process pool, resume, damage, report)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from bagfactory import write_small_bag
from rosbags.rosbag2 import Reader

from dmil_ros.actions import COMPONENTS
from dmil_ros.audit.tables import COLUMNS
from dmil_ros.bagio.typestore import typestore
from dmil_ros.cli import main
from dmil_ros.runtime.faults import stamp_ns
from dmil_ros.sim import SimConfig, record_bag
from models import build

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


@pytest.fixture(scope='module')
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('fleet')
    bags = root / 'bags'
    bags.mkdir()
    for seed in (1, 2):
        record_bag(
            SimConfig(frames=160, seed=seed, segment_frames=(20, 40)), bags / f'drive{seed}'
        )
    # a recorder killed mid-drive: no metadata.yaml, the MCAP cut short
    cut = bags / 'drive3_cut'
    shutil.copytree(bags / 'drive1', cut)
    (cut / 'metadata.yaml').unlink()
    storage = next(cut.glob('*.mcap'))
    storage.rename(cut / 'drive3_cut.mcap')
    data = (cut / 'drive3_cut.mcap').read_bytes()
    (cut / 'drive3_cut.mcap').write_bytes(data[: len(data) // 2])
    build(root / 'foreign.onnx')
    build(root / 'heads.onnx', heads=True)
    return root


def _audit(fleet: Path, out: Path, model: str, *extra: str) -> dict:
    args = ['audit', str(fleet / 'bags'), '--out', str(out), '--model', str(fleet / model)]
    assert main([*args, '--clusters', '4', *extra]) == 0
    return json.loads((out / 'summary.json').read_text())


@pytest.fixture(scope='module')
def audited(fleet: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp('out') / 'audit'
    return out, _audit(fleet, out, 'foreign.onnx', '--workers', '1')


def test_outputs_and_schema(audited: tuple[Path, dict]) -> None:
    out, summary = audited
    for name in ('frames.parquet', 'frames.csv', 'summary.json', 'report.html'):
        assert (out / name).is_file(), name
    table = pq.read_table(out / 'frames.parquet')
    assert table.column_names == list(COLUMNS)
    assert summary['model']['unimodal'] == 'masking'
    by_bag = {b['name']: b for b in summary['bags']}
    assert by_bag['drive1']['status'] == 'ok'
    assert by_bag['drive1']['frames'] > 140
    assert summary['frames']['total'] == table.num_rows
    assert summary['frames']['labelled'] == table.num_rows  # every frame has ground truth
    for key in ('data_pid', 'model_pid'):
        value = summary[key]
        assert value is None or set(value) == set(COMPONENTS)
    assert set(summary['per_action']) == {'forward', 'left', 'right', 'stop'}
    gt = summary['ground_truth']
    assert gt is not None
    assert set(gt['pid']) == set(COMPONENTS)
    assert {'drive1', 'drive2'} <= set(gt['sidecars'])
    for sp in summary['spikes']:
        assert sp['start'] <= sp['peak_stamp'] <= sp['end']
    # the foreign model has no heads: calibrated masking fills every model-level term
    readable = np.isin(table.column('bag').to_numpy(zero_copy_only=False), ['drive1', 'drive2'])
    for group in ('lsmi_model', 'broja_model'):
        terms = np.stack([table.column(f'{group}_{c}').to_numpy() for c in COMPONENTS], 1)
        assert np.isfinite(terms[readable]).all(), group
    assert np.isfinite(table.column('gapscore').to_numpy()[readable]).all()


def test_frames_name_their_paired_sweep(fleet: Path, audited: tuple[Path, dict]) -> None:
    out, _ = audited
    table = pq.read_table(out / 'frames.parquet')
    drive1 = table.column('bag').to_numpy(zero_copy_only=False) == 'drive1'
    camera = table.column('stamp').to_numpy()[drive1]
    lidar = table.column('lidar_stamp').to_numpy()[drive1]
    store = typestore()
    with Reader(fleet / 'bags' / 'drive1') as reader:
        conns = [c for c in reader.connections if c.topic == '/lidar/points']
        sweeps = {
            stamp_ns(store.deserialize_cdr(raw, c.msgtype))
            for c, _, raw in reader.messages(connections=conns)
        }
    assert (lidar >= 0).all()  # both sensors throughout: every frame had a sweep
    assert set(lidar.tolist()) <= sweeps
    assert len(set(lidar.tolist())) > len(sweeps) // 2
    assert np.abs(lidar - camera).max() <= 50_000_000  # within the default slop


@pytest.mark.parametrize('batch', ['1', '13'])
def test_masking_profiled_when_the_last_batch_is_full(
    fleet: Path, tmp_path: Path, batch: str
) -> None:
    """A bag shorter than the masking profile whose frame count is a multiple of --batch."""
    bag = tmp_path / 'short'
    write_small_bag(bag, frames=39)  # 39 audited frames: 3 batches of 13
    out = tmp_path / 'out'
    args = ['audit', str(bag), '--out', str(out), '--model', str(fleet / 'foreign.onnx')]
    assert main([*args, '--clusters', '2', '--workers', '1', '--no-report', '--batch', batch]) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames']['total'] == 39
    assert summary['bags'][0]['status'] == 'ok', summary['errors']
    with np.load(out / 'bags' / 'short' / 'frames.npz') as npz:
        assert np.isfinite(npz['p_camera']).all()
        assert np.isfinite(npz['p_lidar']).all()
    # this bag's random images get one predicted action (no model-level split): labels carry it
    table = pq.read_table(out / 'frames.parquet')
    for group in ('lsmi_data', 'broja_data'):
        terms = np.stack([table.column(f'{group}_{c}').to_numpy() for c in COMPONENTS], 1)
        assert np.isfinite(terms).all(), group
    assert summary['data_pid'] is not None


def test_truncated_bag_reports_readable_part_and_error(audited: tuple[Path, dict]) -> None:
    _, summary = audited
    by_bag = {b['name']: b for b in summary['bags']}
    cut = by_bag['drive3_cut']
    assert cut['status'] == 'partial'
    assert 0 < cut['frames'] < by_bag['drive1']['frames']
    assert any('truncated' in e['message'] for e in cut['errors'])
    assert any(e['bag'] == 'drive3_cut' for e in summary['errors'])


def test_workers_give_identical_tables(
    fleet: Path, audited: tuple[Path, dict], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out1, _ = audited
    out2 = tmp_path / 'two'
    summary2 = _audit(fleet, out2, 'foreign.onnx', '--workers', '2', '--no-report')
    # the worker processes log as the command does (level and logger name first)
    salvage = [line for line in capfd.readouterr().err.splitlines() if 'salvaging' in line]
    assert salvage, 'the cut bag was not reported'
    assert all(line.startswith('WARNING dmil_ros.') for line in salvage), salvage
    one = pq.read_table(out1 / 'frames.parquet')
    two = pq.read_table(out2 / 'frames.parquet')
    assert one.equals(two)
    # the summary too, but for timings (wall seconds, worker count)
    assert _without_timing(summary2) == _without_timing(
        json.loads((out1 / 'summary.json').read_text())
    )


def _without_timing(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k != 'timing'}
    out['bags'] = [{k: v for k, v in b.items() if k != 'seconds'} for b in summary['bags']]
    return out


def test_resume_skips_finished_bags(fleet: Path, tmp_path: Path) -> None:
    out = tmp_path / 'resume'
    first = _audit(fleet, out, 'heads.onnx', '--workers', '1', '--no-report')
    assert first['model']['unimodal'] == 'heads'
    marker = out / 'bags' / 'drive2' / 'bag.json'
    before = marker.stat().st_mtime_ns
    # an interrupted run: one bag's result lost, the others kept
    shutil.rmtree(out / 'bags' / 'drive1')
    again = _audit(fleet, out, 'heads.onnx', '--workers', '1', '--no-report')
    assert marker.stat().st_mtime_ns == before
    resumed = {b['name']: b['resumed'] for b in again['bags']}
    assert resumed == {'drive1': False, 'drive2': True, 'drive3_cut': True}
    a = pq.read_table(out / 'frames.parquet')
    assert a.num_rows == first['frames']['total']
    gates = np.stack([a.column(f'gate_{c}').to_numpy() for c in COMPONENTS], 1)
    assert np.allclose(gates.sum(1), 1.0, atol=1e-5)


def test_bad_arguments(fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ['audit', str(fleet / 'bags'), '--out', str(tmp_path / 'x')]
    assert main([*args, '--model', str(tmp_path / 'none.onnx')]) == 2
    # a model the audit cannot run is refused once, up front, naming the file and the reason
    # (it used to fail every bag and exit 0 with an empty table)
    from tests.runtime.contract_models import build_model

    wrong = build_model(tmp_path / 'wrong.onnx', input_shapes={'image': ['B', 3, 32, 32]})
    assert main([*args, '--model', str(wrong)]) == 2
    assert "wrong.onnx': input 'image' has shape" in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()
    model = ['--model', str(fleet / 'foreign.onnx')]
    # checked before any bag runs, each named: a negative frame cap used to read as "no camera
    # messages in the bag", an --out that is a file or a model that is a folder gave tracebacks
    (tmp_path / 'file').write_text('')
    bad = [
        ([*args, *model, '--max-frames', '-5'], 'max_frames=-5 must be an integer >= 0'),
        ([*args, *model, '--out', str(tmp_path / 'file')], 'is a file, not a directory'),
        ([*args, '--model', str(tmp_path)], 'is a directory, not a file'),
    ]
    for argv, named in bad:
        assert main(argv) == 2, argv
        assert named in capsys.readouterr().err, argv
    assert not (tmp_path / 'x').exists()
    assert (
        main(
            [
                'audit',
                str(tmp_path / 'nobag'),
                '--out',
                str(tmp_path / 'x'),
                '--model',
                str(fleet / 'foreign.onnx'),
            ]
        )
        == 2
    )


@pytest.mark.skipif(CHROMIUM is None, reason='Debian chromium not installed')
def test_report_renders_in_headless_chromium(audited: tuple[Path, dict], tmp_path: Path) -> None:
    out, summary = audited
    page = (out / 'report.html').resolve().as_uri()
    text = (out / 'report.html').read_text()
    assert 'http://' not in text.replace('http://www.w3.org/2000/svg', '')
    assert 'https://' not in text
    common = [
        CHROMIUM,
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        f'--user-data-dir={tmp_path / "profile"}',
        '--virtual-time-budget=5000',
    ]
    dom = subprocess.run(
        [*common, '--dump-dom', page], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert 'data-status="ok"' in dom, dom[dom.find('report-status') :][:400]
    assert 'plots drawn' in dom
    shot = tmp_path / 'report.png'
    subprocess.run(
        [*common, '--window-size=1250,1800', f'--screenshot={shot}', page],
        capture_output=True,
        timeout=120,
        check=True,
    )
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None
    assert img.shape[:2] == (1800, 1250)
    # the plots put colour on the page (a blank page is a single grey level)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50
    assert summary['frames']['total'] > 0


@pytest.mark.slow  # about 20 s: a local Ray cluster starts
def test_ray_engine_gives_identical_tables(
    fleet: Path, audited: tuple[Path, dict], tmp_path: Path
) -> None:
    ray = pytest.importorskip('ray')
    out1, _ = audited
    out2 = tmp_path / 'ray'
    try:
        summary = _audit(
            fleet, out2, 'foreign.onnx', '--engine', 'ray', '--workers', '2', '--no-report'
        )
    finally:
        ray.shutdown()
    assert summary['timing']['engine'] == 'ray'
    one = pq.read_table(out1 / 'frames.parquet')
    two = pq.read_table(out2 / 'frames.parquet')
    assert one.equals(two)


def test_report_cards_give_seconds_from_the_bag_start(audited: tuple[Path, dict]) -> None:
    """The cards' titles used epoch seconds (1700000001.60 s) beside timelines in seconds
    from each bag's first frame; both now count from the bag's first frame."""
    out, summary = audited
    text = (out / 'report.html').read_text()
    table = pq.read_table(out / 'frames.parquet')
    bags = table.column('bag').to_numpy(zero_copy_only=False)
    stamps = table.column('stamp').to_numpy()
    assert summary['spikes'], 'the fleet has spikes'
    for sp in summary['spikes'][:3]:
        origin = int(stamps[bags == sp['bag']].min())
        title = (
            f'{sp["bag"]}: {(sp["start"] - origin) * 1e-9:.2f}-{(sp["end"] - origin) * 1e-9:.2f} s'
        )
        assert title in text
    assert f'{stamps.min() * 1e-9:.2f}' not in text  # no epoch seconds in a title
