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

"""The runtime install (``bash scripts/setup.sh``, no torch) runs every job but training.

torch comes only with the ``train`` extra. Here an importable ``torch`` package that raises
ModuleNotFoundError shadows the real one (PYTHONPATH, so spawned audit workers see it too), and
the README's jobs run in fresh interpreters: the replay, a simulation, the audit of the sample bag
through the shipped model (data-level LSMI and BROJA-local terms refitted), and the sample-level
estimators with external class probabilities, as a library. train and export stop with a message
naming the missing module and the extra that brings it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BAG = ROOT / 'bags' / 'hallway_demo'
MODEL = ROOT / 'models' / 'dmil_hallway.onnx'

pytestmark = pytest.mark.skipif(
    not (BAG.is_dir() and MODEL.is_file()), reason='sample bag or shipped model not present'
)


@pytest.fixture(scope='module')
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    shadow = tmp_path_factory.mktemp('no_torch')
    (shadow / 'torch').mkdir()
    (shadow / 'torch' / '__init__.py').write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
    )
    path = os.pathsep.join(p for p in (str(shadow), os.environ.get('PYTHONPATH', '')) if p)
    return {**os.environ, 'PYTHONPATH': path}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        check=False,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_torch_is_really_gone(env: dict[str, str]) -> None:
    res = _run(env, '-c', 'import torch')
    assert res.returncode != 0
    assert "No module named 'torch'" in res.stderr


def test_replay_simulate_and_audit_run_without_torch(env: dict[str, str], tmp_path: Path) -> None:
    replay = _run(env, '-m', 'dmil_ros', 'replay', str(BAG), '--out', str(tmp_path / 'replay'))
    assert replay.returncode == 0, replay.stderr[-2000:]
    sim = tmp_path / 'sim'
    res = _run(env, '-m', 'dmil_ros', 'simulate', '--out', str(sim), '--frames', '40',
               '--no-progress')  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    out = tmp_path / 'audit'
    res = _run(env, '-m', 'dmil_ros', 'audit', str(BAG), '--out', str(out), '--workers', '1')
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['lsmi_mean']['source']['data'] == 'lsmi refit on the audit frames'
    data = summary['lsmi_mean']['data']
    assert all(isinstance(data[k], float) for k in ('redundancy', 'unique_lidar', 'synergy'))
    assert set(summary['data_pid']) == {'redundancy', 'unique_camera', 'unique_lidar', 'synergy'}
    assert (out / 'report.html').is_file()


def test_the_sample_level_estimators_need_no_torch_with_external_heads(
    env: dict[str, str],
) -> None:
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from dmil_ros.pid import LSMI, BROJALocal
        from dmil_ros.pid.tasks import make_task

        task = make_task('XOR')
        s = task.sample(1500, seed=0)
        probs = dict(zip(('probs_1', 'probs_2', 'probs_12'), task.posteriors(s)))
        lsmi = LSMI(n_components=2).fit(s.features_1, s.features_2, s.labels, **probs)
        pw = lsmi.pointwise(s.features_1, s.features_2, s.labels, **probs)
        broja = BROJALocal(n_clusters=4).fit(s.features_1, s.features_2, s.labels)
        bw = broja.pointwise(s.features_1, s.features_2, s.labels)
        assert 'torch' not in sys.modules
        print(float(pw.synergy_shifted.mean()), float(bw.synergy.mean()))
        """
    )
    res = _run(env, '-c', script)
    assert res.returncode == 0, res.stderr[-2000:]
    lsmi_s, broja_s = (float(v) for v in res.stdout.split())
    assert lsmi_s == pytest.approx(1.0, abs=0.1)  # XOR: one bit of synergy
    assert broja_s == pytest.approx(1.0, abs=0.05)


def test_train_and_export_name_the_missing_extra(env: dict[str, str], tmp_path: Path) -> None:
    for args in (
        ('train', '--bags', str(BAG), '--out', str(tmp_path / 'run')),
        ('export', str(tmp_path / 'run'), '--out', str(tmp_path / 'model.onnx')),
    ):
        res = _run(env, '-m', 'dmil_ros', *args)
        assert res.returncode == 2, res.stderr[-2000:]
        assert f"{args[0]}: needs 'torch'" in res.stderr
        assert 'train extra' in res.stderr
        assert 'Traceback' not in res.stderr
