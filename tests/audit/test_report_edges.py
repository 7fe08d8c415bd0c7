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

"""The report in edge cases (review 22c: F5, F6): values summary.json stores as null, and
audits with nothing to draw, must render a page whose own load-time check says ok."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from bagfactory import audit_cli, write_small_bag

from dmil_ros.audit.report import render_report
from models import build

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


def empty_plots(html: str) -> list[str]:
    """The ids of the ``svg.plot`` elements with no mark of non-empty extent: what the report's
    script flags (it measures getBBox; here a rect's size, the spread of a polygon's points)."""
    empty = []
    for svg in re.findall(r'<svg class="plot".*?</svg>', html, re.DOTALL):
        root = ET.fromstring(svg)
        drawn = 0
        for mark in root.iter():
            if 'mark' not in (mark.get('class') or '').split():
                continue
            for shape in mark.iter():
                tag = shape.tag.rsplit('}', 1)[-1]
                if tag == 'rect':
                    drawn += float(shape.get('width', 0)) > 0 or float(shape.get('height', 0)) > 0
                elif tag == 'polygon':
                    pts = [
                        tuple(map(float, p.split(','))) for p in shape.get('points', '').split()
                    ]
                    drawn += len({p[0] for p in pts}) > 1 or len({p[1] for p in pts}) > 1
        if not drawn:
            empty.append(root.get('id', '?'))
    return empty


@pytest.fixture(scope='module')
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp('models')
    return build(root / 'foreign.onnx'), build(root / 'heads.onnx', heads=True)


@pytest.fixture(scope='module')
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('bags') / 'drive'
    write_small_bag(path, frames=20)
    return path


def _chromium_status(page: Path, profile: Path) -> str:
    dom = subprocess.run(
        [CHROMIUM or 'chromium', '--headless', '--no-sandbox', '--disable-gpu',
         '--no-first-run', f'--user-data-dir={profile}', '--virtual-time-budget=3000',
         '--dump-dom', page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    found = re.search(r'<div id="report-status">([^<]*)</div>', dom)
    return found.group(1) if found else dom[:300]


@pytest.mark.parametrize(
    ('case', 'extra'),
    [('one frame, no gates', ('--max-frames', '1')), ('no gates, unfitted terms', ())],
)
def test_a_model_without_gates_draws_no_empty_plot(
    models: tuple[Path, Path], bag: Path, tmp_path: Path, case: str, extra: tuple[str, ...]
) -> None:
    foreign, _ = models
    out = tmp_path / 'out'
    assert audit_cli(foreign, out, bag, extra=extra) == 0, case
    html = (out / 'report.html').read_text()
    assert empty_plots(html) == [], case
    assert 'No finite values to draw' in html


def test_no_frame_at_all_draws_no_empty_plot(models: tuple[Path, Path], tmp_path: Path) -> None:
    _, heads = models
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'empty.mcap').write_bytes(b'')
    out = tmp_path / 'out'
    assert audit_cli(heads, out, empty) == 1  # the bag gave nothing: failed, summary written
    html = (out / 'report.html').read_text()
    assert empty_plots(html) == []
    assert 'No audited frames to draw' in html
    assert 'No finite values to draw (0 frames)' in html
    assert 'No frame with a finite GapScore' in html


@pytest.mark.skipif(CHROMIUM is None, reason='Debian chromium not installed')
def test_a_one_frame_report_says_ok_in_headless_chromium(
    models: tuple[Path, Path], bag: Path, tmp_path: Path
) -> None:
    foreign, _ = models
    out = tmp_path / 'out'
    assert audit_cli(foreign, out, bag, extra=('--max-frames', '1')) == 0
    status = _chromium_status(out / 'report.html', tmp_path / 'profile')
    assert status.startswith('ok:'), status


def test_nulls_in_the_summary_do_not_break_the_report(
    models: tuple[Path, Path], bag: Path, tmp_path: Path
) -> None:
    """NaN is stored as null: a spike's peak, a PID atom, and a sidecar ground truth that is
    no PID at all (a resumed result of an earlier run keeps what its sidecar said)."""
    _, heads = models
    out = tmp_path / 'out'
    assert audit_cli(heads, out, bag, extra=('--no-report',)) == 0
    summary = json.loads((out / 'summary.json').read_text())
    table = pq.read_table(out / 'frames.parquet')
    stamps = table.column('stamp').to_pylist()
    summary['spikes'] = [
        {'bag': 'drive', 'start': stamps[2], 'end': stamps[6], 'peak': None,
         'peak_stamp': stamps[4], 'frames': 5, 'mean': None}
    ]  # fmt: skip
    summary['data_pid'] = dict.fromkeys(('redundancy', 'unique_camera', 'unique_lidar'), 0.1)
    summary['data_pid']['synergy'] = None
    for gt in ('n/a', [0.5, 0, 0, 0], {'redundancy': None}):
        summary['ground_truth'] = {'pid': gt}
        html = render_report(summary, table, {})
        assert 'peak synergy</th><td>– bits' in html
        assert empty_plots(html) == []


def test_a_sidecar_pid_that_is_not_finite_is_ignored_with_an_error_entry(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    _, heads = models
    bag = tmp_path / 'drive'
    write_small_bag(bag, frames=20)  # no frame-level ground truth: the sidecar's would be used
    out = tmp_path / 'out'
    nan = '{"mix_pid": {"redundancy": NaN, "unique_camera": 0, "unique_lidar": 0, "synergy": 0}}'
    for text in (nan, '{"mix_pid": "n/a", "mix_pid_given_family": [1, 2]}'):
        (bag / 'ground_truth.json').write_text(text)
        assert audit_cli(heads, out, bag) == 0, text  # the report stage raised
        summary = json.loads((out / 'summary.json').read_text())
        assert summary['ground_truth']['pid'] is None
        messages = [e['message'] for e in summary['bags'][0]['errors']]
        assert any('ground_truth.json' in m and 'mix_pid ' in m for m in messages), messages
        assert (out / 'report.html').is_file()
