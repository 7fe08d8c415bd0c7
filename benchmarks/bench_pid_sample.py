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

"""Sample-level PID estimators side by side: LSMI, BROJA-local, BATCH, CVX.

On the synthetic tasks of :mod:`dmil_ros.pid.tasks` (n fit + n evaluation samples, low noise):
fit time, pointwise evaluation throughput on one CPU core, error (max over the four atoms, bits)
against each truth (latent I±_min, continuous I±_min, BROJA = ``exact_pid`` of the latent joint),
and, as a synergy detector, ROC AUC of S-family (XOR) samples against every other family in an
equal mixture of RDN, UNQ1, UNQ2, UNQ1_WIDE (irrelevant modality of 3 bits) and XOR, at
several noise levels. BROJA-local has two variants ('dual': normalised dual extension of q*, the
alarm's candidate; 'exact_mean': mean = BROJA exactly); BATCH stops once converged (epochs run
are printed). Everything runs on one thread (torch and BLAS/OpenMP pools).

    python benchmarks/bench_pid_sample.py            # n = 10000
    python benchmarks/bench_pid_sample.py --n 3000   # quicker
"""

# ruff: noqa: B023  (the timed closures run inside the loop iteration that defines them)
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from dmil_ros.pid.batch import BATCH
from dmil_ros.pid.broja_local import BROJALocal
from dmil_ros.pid.cvx import cvx_pid
from dmil_ros.pid.lsmi import LSMI
from dmil_ros.pid.tasks import ModalitySpec, make_task

TASKS = ('XOR', 'AND', 'OR', 'RDN', 'UNQ1')
MIX = {'RDN': 1.0, 'UNQ1': 1.0, 'UNQ2': 1.0, 'UNQ1_WIDE': 1.0, 'XOR': 1.0}


def _err(got: tuple[float, ...] | list[float], truth: tuple[float, ...] | list[float]) -> float:
    return float(np.max(np.abs(np.asarray(got) - np.asarray(truth))))


def _throughput(fn: object, reps: int = 3) -> float:
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        n = fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--n', type=int, default=10000)
    ap.add_argument('--batch-epochs', type=int, default=10, help='cap; BATCH stops when converged')
    ap.add_argument('--noise', type=float, nargs='+', default=[0.1, 0.5, 1.0, 2.0])
    args = ap.parse_args()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        _run(args)


def _run(args: argparse.Namespace) -> None:
    # warm-up (imports, allocator) so that the first task's fit time is not charged with it
    warm = make_task('AND').sample(400, seed=0)
    LSMI().fit(warm.features_1, warm.features_2, warm.labels)
    BROJALocal(n_clusters=2).fit(warm.features_1, warm.features_2, warm.labels)
    rows = []
    fit_times: dict[str, list[float]] = {
        'LSMI': [], 'BROJA-local': [], 'BATCH': [], 'CVX': [], 'LSMI ext': [], 'BATCH ext': []
    }  # fmt: skip
    thr: dict[str, list[float]] = {'LSMI': [], 'LSMI terms': [], 'BROJA-local': []}
    batch_epochs: list[int] = []
    for name in TASKS:
        task = make_task(name)
        tr, te = task.sample(args.n, seed=1), task.sample(args.n, seed=2)
        ex = task.exact_truth
        broja = (ex.redundancy, ex.unique_1, ex.unique_2, ex.synergy)
        lat = task.pointwise_truth
        cont = [float(a.mean()) for a in task.continuous_pointwise(te)[:4]]
        k = task.joint.shape[:2]

        t0 = time.perf_counter()
        lsmi = LSMI().fit(tr.features_1, tr.features_2, tr.labels)
        fit_times['LSMI'].append(time.perf_counter() - t0)
        d = lsmi.dataset(te.features_1, te.features_2, te.labels)
        # external heads (the deployment case: the DMIL model's own heads); here LSMI's MLPs
        ext = dict(zip(('probs_1', 'probs_2', 'probs_12'),
                       (np.exp(a) for a in lsmi.log_probs(tr.features_1, tr.features_2)),
                       strict=True))  # fmt: skip
        t0 = time.perf_counter()
        LSMI().fit(tr.features_1, tr.features_2, tr.labels, **ext)
        fit_times['LSMI ext'].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        BATCH(epochs=args.batch_epochs).fit(tr.features_1, tr.features_2, tr.labels, **ext)
        fit_times['BATCH ext'].append(time.perf_counter() - t0)
        thr['LSMI'].append(
            _throughput(
                lambda: len(lsmi.pointwise(te.features_1, te.features_2, te.labels).synergy)
            )
        )
        lp = [
            torch.as_tensor(a, dtype=torch.float32)
            for a in lsmi.log_probs(te.features_1, te.features_2)
        ]
        f1 = torch.as_tensor(te.features_1, dtype=torch.float32)
        f2 = torch.as_tensor(te.features_2, dtype=torch.float32)
        yt = torch.as_tensor(te.labels)
        terms = lsmi.terms_module()
        densities = lsmi.densities  # built once: the exported graph's modules
        assert densities is not None

        def graph_eval() -> int:
            with torch.inference_mode():
                h = densities(f1, f2)
                terms(*lp, *h, yt)
            return len(yt)

        thr['LSMI terms'].append(_throughput(graph_eval))

        t0 = time.perf_counter()
        bl = BROJALocal(n_clusters=k).fit(tr.features_1, tr.features_2, tr.labels)
        fit_times['BROJA-local'].append(time.perf_counter() - t0)
        pw = bl.pointwise(te.features_1, te.features_2, te.labels)
        bl_means = [
            pw.redundancy.mean(),
            pw.unique_1.mean(),
            pw.unique_2.mean(),
            pw.synergy.mean(),
        ]
        pe = bl.pointwise(te.features_1, te.features_2, te.labels, variant='exact_mean')
        ex_means = [
            pe.redundancy.mean(),
            pe.unique_1.mean(),
            pe.unique_2.mean(),
            pe.synergy.mean(),
        ]
        thr['BROJA-local'].append(
            _throughput(lambda: len(bl.pointwise(te.features_1, te.features_2, te.labels).synergy))
        )

        t0 = time.perf_counter()
        bt = BATCH(epochs=args.batch_epochs).fit(tr.features_1, tr.features_2, tr.labels)
        fit_times['BATCH'].append(time.perf_counter() - t0)
        batch_epochs.append(bt.epochs_run)
        b = bt.estimate(te.features_1, te.features_2)

        t0 = time.perf_counter()
        cv = cvx_pid(tr.features_1, tr.features_2, tr.labels, n_clusters=k, pca_dim=None).pid
        fit_times['CVX'].append(time.perf_counter() - t0)

        rows.append(
            (
                name,
                _err(d.raw, lat.means()),
                _err(d.raw, cont),
                _err(d.shifted, broja),
                _err(ex_means, broja),
                _err(bl_means, broja),
                bl.table.mean_deviation() if bl.table is not None else float('nan'),
                _err((b.redundancy, b.unique_1, b.unique_2, b.synergy), broja),
                _err((cv.redundancy, cv.unique_1, cv.unique_2, cv.synergy), broja),
            )
        )

    print(
        f'\n== accuracy: max |error| over R, U1, U2, S in bits (n = {args.n} fit + {args.n} eval)'
    )
    hdr = ('task', 'LSMI raw/latent', 'LSMI raw/cont', 'LSMI shift/BROJA', 'BL exact-mean',
           'BL dual', 'BL dual E[g]', 'BATCH', 'CVX')  # fmt: skip
    print(' | '.join(f'{h:>16}' for h in hdr))
    for r in rows:
        print(' | '.join([f'{r[0]:>16}', *(f'{v:16.4f}' for v in r[1:])]))

    print('\n== fit time (s, mean over tasks) and pointwise throughput (samples/s, 1 thread)')
    for k_, v in fit_times.items():
        print(f'{k_:>12}: fit {np.mean(v):7.2f} s  (per task: {", ".join(f"{t:.2f}" for t in v)})')
    print(f'BATCH epochs run until converged (per task): {batch_epochs}')
    ratio = np.mean(fit_times['BATCH']) / np.mean(fit_times['LSMI'])
    print(f'BATCH / LSMI fit-time ratio, own discriminators: {ratio:.1f}x (target >= 10x)')
    ratio = np.mean(fit_times['BATCH ext']) / np.mean(fit_times['LSMI ext'])
    print(f'BATCH / LSMI fit-time ratio, external heads: {ratio:.1f}x (target >= 10x)')
    for k_, v in thr.items():
        print(f'{k_:>12}: {np.median(v):12,.0f} samples/s')

    # -- synergy detector -----------------------------------------------------------------------
    for noise in args.noise:
        _detector(args.n, noise)


def _detector(n: int, noise: float) -> None:
    spec = ModalitySpec(noise=noise)
    task = make_task(MIX, spec, spec)
    tr, te = task.sample(n, seed=1), task.sample(n, seed=2)
    # K = number of latent values per modality (the reference K = 5 cannot fit 16 clusters)
    lsmi = LSMI(n_components=max(task.joint.shape[:2])).fit(
        tr.features_1, tr.features_2, tr.labels
    )
    lpw = lsmi.pointwise(te.features_1, te.features_2, te.labels)
    bl = BROJALocal(n_clusters=task.joint.shape[:2]).fit(tr.features_1, tr.features_2, tr.labels)
    bpw = bl.pointwise(te.features_1, te.features_2, te.labels)
    bepw = bl.pointwise(te.features_1, te.features_2, te.labels, variant='exact_mean')
    lsmi_probs = dict(zip(('probs_1', 'probs_2', 'probs_12'),
                          (np.exp(a) for a in lsmi.log_probs(te.features_1, te.features_2)),
                          strict=True))  # fmt: skip
    bdpw = bl.pointwise(te.features_1, te.features_2, te.labels, **lsmi_probs)
    s_idx = task.families.index('XOR')
    scores = {
        'LSMI s (raw = shifted rank)': lpw.synergy,
        'BL dual s (histogram)': bpw.synergy,
        'BL dual s (discrim.)': bdpw.synergy,
        'BL exact-mean s (histogram)': bepw.synergy,
    }
    others = [f for f in task.families if f != 'XOR']
    print(f'\n== synergy detector, noise {noise}: ROC AUC of XOR samples against each family')
    print(f'{"estimate":>28} | ' + ' | '.join(f'{f:>10}' for f in others) + ' |   min')
    for label, s in scores.items():
        aucs = []
        for f in others:
            keep = (te.family == s_idx) | (te.family == task.families.index(f))
            aucs.append(roc_auc_score(te.family[keep] == s_idx, s[keep]))
        print(f'{label:>28} | ' + ' | '.join(f'{a:10.3f}' for a in aucs) + f' | {min(aucs):.3f}')
    tab = bl.table
    dev = tab.mean_deviation() if tab is not None else float('nan')
    print(f'BL dual mean deviation E_p[g] on the cluster histogram: {dev:.3f} bits')
    print('mean s per family (LSMI raw, BL dual, BL exact-mean):')
    for i, f in enumerate(task.families):
        m = te.family == i
        print(
            f'{f:>12}: {lpw.synergy[m].mean():7.3f} {bpw.synergy[m].mean():7.3f} '
            f'{bepw.synergy[m].mean():7.3f}'
        )


if __name__ == '__main__':
    main()
