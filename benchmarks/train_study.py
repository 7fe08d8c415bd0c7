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

"""Rare-synergy study: DMIL against joint fusion and the late ensemble over training seeds.

Run through ``python benchmarks/bench_train.py --study OUT [--seeds 0 1 2] [--jobs 2]
[--test-seeds 103 104]``.

Why: on the balanced simulator mix (25% S frames, the shipped models) joint fusion learns the
S family's XOR, and DMIL and joint tie at 100% on single-scene held-out S pairs, so the issue's
"DMIL >= 3 points above both on S" cannot show. Synergistic scenes are rare on a robot; this
study trains on a 5% S mix, where whether a model learns the XOR depends on the model and the
seed, and reports every seed, the mean per model and each target per seed and on the means.

The DMIL configuration (``pair_encoder_grad`` 1) was chosen in an earlier probe that printed
held-out accuracy on seeds 101 and 102 next to validation; the default held-out seeds here,
103 and 104, were never looked at while choosing.

1. simulate (current simulator, fixed seeds): training bags ``rare_s1..4`` (6000 frames each,
   mix R/U_camera/U_lidar = 0.317/0.317/0.316, S = 0.05), validation bags ``val_s51/52``
   (2000 frames, 25% mix: the only basis for epoch selection) and held-out bags
   ``test_s<seed>`` (2000 frames, 25% mix);
2. train, for each seed (``schedule.seed``), ``dmil`` with ``config/train_hallway_pair_grad.json``
   and ``joint`` / ``ensemble`` with ``config/train_hallway.json`` (one thread each, ``--jobs``
   runs at once), through the ``dmil-ros train`` command; a run whose ``model.pt`` exists is
   kept (an interrupted study resumes);
3. evaluate each run's ``model.pt`` on the held-out bags with the metrics ``dmil-ros evaluate``
   prints: per-family accuracy on pairs whose camera frame and sweep saw one scene (a pair
   spanning a scene boundary has no family; see ``dmil_ros.train.data``), synergy indicator,
   gate = family agreement;
4. print per-seed rows, the mean per model, and issue 6's accuracy, synergy-indicator and gate
   targets per seed and on the means.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RARE_MIX = 'R=0.317,U_camera=0.317,U_lidar=0.316,S=0.05'
EVEN_MIX = 'R=0.25,U_camera=0.25,U_lidar=0.25,S=0.25'
TRAIN_BAGS = {
    **{f'rare_s{s}': (s, 6000, RARE_MIX) for s in (1, 2, 3, 4)},
    **{f'val_s{s}': (s, 2000, EVEN_MIX) for s in (51, 52)},
}
CONFIGS = {
    'dmil': 'config/train_hallway_pair_grad.json',
    'joint': 'config/train_hallway.json',
    'ensemble': 'config/train_hallway.json',
}
FAMS = ('R', 'U_camera', 'U_lidar', 'S')


def _cli(*args: str) -> list[str]:
    return [sys.executable, '-m', 'dmil_ros.cli', *args]


def simulate(out: Path, jobs: int, test_seeds: list[int]) -> None:
    plan = {**TRAIN_BAGS, **{f'test_s{s}': (s, 2000, EVEN_MIX) for s in test_seeds}}
    # the sidecar is written last: a bag without it was interrupted and is recorded again
    todo = [name for name in plan if not (out / 'bags' / name / 'ground_truth.json').exists()]
    (out / 'bags').mkdir(parents=True, exist_ok=True)

    def one(name: str) -> None:
        seed, frames, mix = plan[name]
        path = out / 'bags' / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        cmd = _cli('simulate', '--out', str(path), '--frames', str(frames),
                   '--seed', str(seed), '--mix', mix)  # fmt: skip
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            msg = f'simulate {name}: exit {done.returncode}\n{done.stderr[-2000:]}'
            raise RuntimeError(msg)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, todo))
    print(f'simulated {len(todo)} bags in {time.perf_counter() - t0:.0f} s', flush=True)


def train_all(out: Path, seeds: list[int], jobs: int) -> list[tuple[str, int, Path]]:
    bags = [str(out / 'bags' / f'rare_s{s}') for s in (1, 2, 3, 4)]
    val = [str(out / 'bags' / f'val_s{s}') for s in (51, 52)]
    runs = [(k, seed, out / 'runs' / f'{k}_seed{seed}') for seed in seeds for k in CONFIGS]
    (out / 'runs').mkdir(parents=True, exist_ok=True)

    def one(run: tuple[str, int, Path]) -> None:
        kind, seed, path = run
        if (path / 'model.pt').exists():
            return
        cfg = json.loads((ROOT / CONFIGS[kind]).read_text())
        cfg['schedule'].update(seed=seed, threads=1)
        cfg_path = out / 'runs' / f'{kind}_seed{seed}.json'
        cfg_path.write_text(json.dumps(cfg, indent=1))
        cmd = _cli('train', '--bags', *bags, '--val-bags', *val, '--out', str(path), '--model',
                   kind, '--config', str(cfg_path), '--no-progress', '--overwrite')  # fmt: skip
        t0 = time.perf_counter()
        log_path = out / 'runs' / f'{kind}_seed{seed}.log'
        with log_path.open('w') as log:
            done = subprocess.run(cmd, check=False, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        if done.returncode:
            msg = f'train {kind} seed {seed}: exit {done.returncode} (see {log_path})'
            raise RuntimeError(msg)
        print(f'trained {kind} seed {seed} in {time.perf_counter() - t0:.0f} s', flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(one, run) for run in runs]  # a failure does not cancel the rest
    failed = [str(f.exception()) for f in futures if f.exception() is not None]
    if failed:
        raise RuntimeError('; '.join(failed))
    return runs


def evaluate(
    runs: list[tuple[str, int, Path]], out: Path, test_seeds: list[int]
) -> dict[str, Any]:
    import torch

    from dmil_ros.train.checkpoint import load_model
    from dmil_ros.train.cli import default_cache_dir
    from dmil_ros.train.data import load_bags
    from dmil_ros.train.metrics import evaluate_predictions
    from dmil_ros.train.trainer import predict

    torch.set_num_threads(2)
    tests = [out / 'bags' / f'test_s{s}' for s in test_seeds]
    rows: dict[str, Any] = {}
    loaded: dict[str, Any] = {}  # data config -> held-out arrays (as evaluate_cli keys them)
    for kind, seed, path in runs:
        model, cfg, _ = load_model(path / 'model.pt')
        key = json.dumps([cfg.data.__dict__, cfg.preprocess.to_json()], sort_keys=True)
        if key not in loaded:
            loaded[key], stats = load_bags(tests, cfg.data, cfg.preprocess, default_cache_dir())
            two = sum(s.two_scenes for s in stats)
            print(f'held-out {[t.name for t in tests]}: {len(loaded[key])} pairs, {two} span '
                  'two scenes (no family)')  # fmt: skip
        data = loaded[key]
        p = predict(model, torch.from_numpy(data.image), torch.from_numpy(data.lidar))
        m = evaluate_predictions(
            p['probs'], data.action, data.family, probs_camera=p.get('probs_camera'),
            probs_lidar=p.get('probs_lidar'), gates=p.get('gates'),
        )  # fmt: skip
        rows[f'{kind}_seed{seed}'] = {'kind': kind, 'seed': seed, **m}
    return rows


def _targets(d: dict[str, Any], j: dict[str, Any], e: dict[str, Any]) -> dict[str, bool]:
    """Issue 6's targets for one DMIL / joint / ensemble triple of metric dicts."""
    every = all(d['per_family'][f] >= max(j['per_family'][f], e['per_family'][f]) for f in FAMS)
    s_d, s_j, s_e = (m['per_family']['S'] for m in (d, j, e))
    lead = min(s_d - s_j, s_d - s_e)
    return {
        'DMIL >= joint and >= ensemble on every family': every,
        'DMIL >= 3 points above both on S': lead >= 0.03,
        'synergy indicator: ensemble < 0.5%, DMIL > joint': (
            e['synergy_indicator'] < 0.005 and d['synergy_indicator'] > j['synergy_indicator']
        ),
        'gate = family on >= 70% of frames': d['gate_family_agreement'] >= 0.7,
    }


def avg(values: list[float | None]) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    got = [v for v in values if v is not None]
    return float(np.mean(got)) if got else None


def report(rows: dict[str, Any], seeds: list[int]) -> None:
    def pct(v: float | None) -> str:
        return '-' if v is None else f'{100 * v:.2f}'

    cols = ('all', *FAMS, 'syn.ind', 'gate')
    print(f'{"run":16s} ' + ' '.join(f'{c:>8s}' for c in cols))

    def line(name: str, m: dict[str, Any]) -> None:
        vals = [m['accuracy'], *(m['per_family'][f] for f in FAMS), m['synergy_indicator'],
                m['gate_family_agreement']]  # fmt: skip
        print(f'{name:16s} ' + ' '.join(f'{pct(v):>8s}' for v in vals))

    for name, m in rows.items():
        line(name, m)
    mean: dict[str, dict[str, Any]] = {}
    for kind in CONFIGS:
        ms = [m for m in rows.values() if m['kind'] == kind]
        mean[kind] = {
            'accuracy': avg([m['accuracy'] for m in ms]),
            'per_family': {f: avg([m['per_family'][f] for m in ms]) for f in FAMS},
            'synergy_indicator': avg([m['synergy_indicator'] for m in ms]),
            'gate_family_agreement': avg([m['gate_family_agreement'] for m in ms]),
        }
        line(f'mean {kind}', mean[kind])
    per_seed = [
        _targets(rows[f'dmil_seed{s}'], rows[f'joint_seed{s}'], rows[f'ensemble_seed{s}'])
        for s in seeds
    ]
    on_means = _targets(mean['dmil'], mean['joint'], mean['ensemble'])
    for target, met in on_means.items():
        seeds_met = sum(t[target] for t in per_seed)
        print(f'target: {target}: seed means {"met" if met else "MISSED"}; '
              f'met at {seeds_met} of {len(seeds)} seeds')  # fmt: skip


def run_study(out: Path, seeds: list[int], jobs: int, test_seeds: list[int]) -> None:
    out = out.resolve()  # the training subprocesses run in the repository root
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    t0 = time.perf_counter()
    simulate(out, jobs, test_seeds)
    runs = train_all(out, seeds, jobs)
    rows = evaluate(runs, out, test_seeds)
    name = 'study_' + '_'.join(str(s) for s in test_seeds) + '.json'
    (out / name).write_text(json.dumps(rows, indent=1))
    report(rows, seeds)
    print(f'study wall time {time.perf_counter() - t0:.0f} s ({jobs} jobs; runs already trained '
          'in OUT are reused)')  # fmt: skip
