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

"""Running an audit over many bags: parallel per-bag work, resume, merge, outputs.

Layout of ``DIR``::

    DIR/bags/<name>/frames.npz, bag.json   per-bag results (written as each bag finishes)
    DIR/frames.parquet, frames.csv         the merged frame table
    DIR/summary.json, report.html

Engines (:mod:`dmil_ros.audit.engines`): ``process`` (default) runs the bags in a
``concurrent.futures`` process pool on this machine (one bag per task, ``workers`` processes);
``ray`` sends the same per-bag function to a Ray cluster (``ray.init(address='auto')`` when one
is running, else a local one) for fleets. Which paths are bags, their names and resume keys:
:mod:`dmil_ros.audit.bags`.
Each bag's result is saved by the worker as soon as it is done, so an interrupted audit keeps
every finished bag and a rerun skips them (``resume``). The merge reads the saved results in bag
order, so the tables do not depend on the engine or on the number of workers.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dmil_ros.atomic import atomic_write_text, remove_stale_temporaries
from dmil_ros.audit import bagresult
from dmil_ros.audit.bagaudit import BagOptions
from dmil_ros.audit.bags import bag_key, bag_names, find_bags
from dmil_ros.audit.engines import Job, check_engine, failed_entry, run_process, run_ray
from dmil_ros.audit.errors import AuditError, AuditInputError
from dmil_ros.audit.merge import MergeOptions, merge
from dmil_ros.audit.model import load_model

logger = logging.getLogger(__name__)
ENGINES = ('process', 'ray')


@dataclass(frozen=True)
class AuditOptions:
    """Everything an audit run needs besides the bags and the output directory."""

    bag: BagOptions
    merge: MergeOptions = field(default_factory=MergeOptions)
    workers: int = 0  # 0: one per CPU core
    engine: str = 'process'
    resume: bool = True
    report: bool = True

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            msg = f'engine {self.engine!r} not one of {list(ENGINES)}'
            raise AuditError(msg)
        if self.workers < 0:
            msg = f'workers {self.workers!r} must be >= 0'
            raise AuditError(msg)


def _remove_old_result(out: Path, bag_dir: Path) -> None:
    """Delete one bag's previous result folder, and only a folder directly in ``out/bags``."""
    if not bag_dir.exists() and not bag_dir.is_symlink():
        return
    parent = (out / 'bags').resolve()
    if bag_dir.is_symlink() or bag_dir.resolve().parent != parent:
        msg = f'bag result folder {str(bag_dir)!r} is not a folder in {str(parent)!r}: not removed'
        raise AuditError(msg)
    shutil.rmtree(bag_dir)


def _missing(name: str, account: dict[str, Any] | None) -> dict[str, Any]:
    """The entry of a bag with no result on disk: its failure, or one that says so."""
    if account is not None and account.get('status') == 'failed':
        return dict(account)
    message = 'no result on disk after the audit of this bag'
    if account is not None:
        message += f' (the worker reported {account.get("status")!r})'
    logger.error('bag %s: %s', name, message)
    return failed_entry(name, message)


def _reason(result: bagresult.BagResult) -> str:
    errors = result.info.get('errors') or [{}]
    return str(errors[0].get('message', 'no reason recorded'))


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, default=str, allow_nan=False))


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN / inf become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


PRELOAD = ('sklearn.decomposition', 'sklearn.cluster', 'sklearn.mixture', 'dmil_ros.pid.lsmi')
"""Modules the merge imports (CVX, LSMI, BROJA-local: scikit-learn), loaded while bags run."""


def _import_quietly(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception as exc:  # the merge raises it properly, if it needs the module
        logger.debug('preload %s: %s', name, exc)


def _preload() -> threading.Thread:
    """Import the merge's heavy modules in a thread while the bags are audited.

    They take seconds to import (scikit-learn 3.3 s at load ~5 on 2 cores; the merge no longer
    needs torch) and the
    per-bag stage spends most of its time in code that releases the GIL (zstd, ONNX Runtime,
    numpy), so on two cores the imports overlap it. Failures are left to the merge to report.
    """

    def work() -> None:
        for name in PRELOAD:
            _import_quietly(name)

    thread = threading.Thread(target=work, name='audit-preload', daemon=True)
    thread.start()
    return thread


def run_audit(paths: Sequence[str | Path], out: Path, options: AuditOptions) -> dict[str, Any]:
    """Audit ``paths`` into ``out``; returns the summary (also written to summary.json)."""
    from tqdm import tqdm

    from dmil_ros.audit.tables import write_table

    t_start = time.perf_counter()
    bags = find_bags(paths)
    names = bag_names(bags)
    options_key = options.bag.key()  # the threads are not part of it
    keys = [bag_key(path, options_key) for path in bags]
    todo: list[tuple[Path, str, str]] = []
    finished: dict[str, bagresult.BagResult] = {}  # results of an earlier run, read back
    for path, name, key in zip(bags, names, keys, strict=True):
        bag_dir = out / 'bags' / name
        done = None
        if options.resume:
            try:
                done = bagresult.load_if_done(bag_dir, key)
            except AuditInputError as exc:  # marked done, but damaged since: audit it again
                logger.warning('%s; auditing the bag again', exc)
        if done is not None and done.info.get('status') == 'failed':
            # nothing was audited (the bag could not be opened, ...): the cause may be gone
            # (permissions fixed, a copy finished) without the files' size or mtime changing
            logger.info('%s: failed last time (%s); auditing it again', name, _reason(done))
            done = None
        if done is not None:
            finished[name] = done
        else:
            todo.append((path, name, key))
    # the cores shared out among the bags left to audit, not among all of them
    workers = min(options.workers or os.cpu_count() or 1, max(len(todo), 1))
    cores = os.cpu_count() or 1
    bag_opts = replace(options.bag, threads=max(1, cores // workers))
    # once, before any bag or write: a model that cannot be audited stops the audit (--out
    # untouched, old results kept); loaded with the bags' options, so a serial audit reuses
    # this session (load_model's cache)
    check_engine(options.engine, len(todo))  # at once, before the model's seconds of loading
    info = load_model(bag_opts).info
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    for name in finished:
        remove_stale_temporaries(out / 'bags' / name)  # of an earlier audit killed mid-write
    jobs: list[Job] = []
    for path, name, key in todo:
        bag_dir = out / 'bags' / name
        # an old result must not outlive a run of this bag that fails with an exception
        _remove_old_result(out, bag_dir)
        jobs.append((path, name, bag_dir, key))
    logger.info(
        'audit: %d bags (%d already done), %d workers, engine %s',
        len(bags),
        len(finished),
        workers,
        options.engine,
    )
    bar = tqdm(total=len(jobs), desc='bags', unit='bag', disable=None)
    runner = run_ray if options.engine == 'ray' else run_process
    preload = _preload()
    t_bags = time.perf_counter()
    accounts = runner(jobs, bag_opts, workers, lambda _: bar.update(1))
    bar.close()
    t_bags = time.perf_counter() - t_bags
    # merge, in bag order, from what is on disk
    results = []
    bag_entries: list[dict[str, Any]] = []
    for path, name, key in zip(bags, names, keys, strict=True):
        bag_dir = out / 'bags' / name
        res = finished.get(name)
        if res is None:
            try:
                res = bagresult.load_if_done(bag_dir, key)
            except AuditInputError as exc:  # written by this run, unreadable now: say so
                accounts[name] = failed_entry(name, str(exc))
        if res is not None:
            results.append(res)
            entry = dict(res.info)
        else:  # failed, or a worker that said it finished left no result behind
            entry = _missing(name, accounts.get(name))
        entry.update(name=name, path=str(path), resumed=name in finished)
        bag_entries.append(entry)
    t_wait = time.perf_counter()
    preload.join()  # before the merge imports the same modules itself
    t_merge = time.perf_counter()
    t_wait = t_merge - t_wait
    table, summary = merge(results, options.merge)
    # an earlier run's summary and report must never sit beside this run's tables, whatever
    # fails from here on (the report stage raised after the tables were written)
    for stale in ('summary.json', 'report.html'):
        (out / stale).unlink(missing_ok=True)
    write_table(table, out)
    t_merge = time.perf_counter() - t_merge
    unimodal = {str(e['unimodal']) for e in bag_entries if e.get('unimodal')}
    alert_sources = {str(e['alert_source']) for e in bag_entries if e.get('alert_source')}
    kinds = {str(e['model_kind']) for e in bag_entries if e.get('model_kind')}
    summary['model'] = {
        'path': options.bag.model,
        'kind': ','.join(sorted(kinds)) or 'unknown',  # metadata dmil_ros.kind, else 'foreign'
        'unimodal': ','.join(sorted(unimodal)) or 'unknown',
        'alert_source': ','.join(sorted(alert_sources)) or None,  # what the node's alarm reads
        'softmax_applied': sorted({n for e in bag_entries for n in e.get('softmax_applied', ())}),
        'graph_names': info.graph_names,  # contract name -> the model's own, where they differ
        'ignored_outputs': list(info.ignored_outputs),
    }
    summary['bags'] = [
        {
            k: e.get(k)
            for k in (
                'name',
                'path',
                'status',
                'frames',
                'errors',
                'resumed',
                'degraded_frames',
                'labelled',
                'duration',
                'seconds',
                'pipeline',
                'alert_source',
            )
        }
        for e in bag_entries
    ]
    summary['errors'] = [
        dict(err, bag=e['name']) for e in bag_entries for err in (e.get('errors') or [])
    ]
    summary['frames']['failed_bags'] = sum(e.get('status') == 'failed' for e in bag_entries)
    summary['timing'] = {
        'bags_seconds': t_bags,
        'merge_seconds': t_merge,
        'import_wait_seconds': t_wait,
        'workers': workers,
        'engine': options.engine,
        'recorded_seconds': sum(float(e.get('duration') or 0.0) for e in bag_entries),
    }
    # written before the report too: a report that fails leaves this run's summary, no other
    _write_json(out / 'summary.json', _clean(summary))
    if options.report:
        from dmil_ros.audit.media import fetch_media
        from dmil_ros.audit.report import media_wanted, paired_sweeps, write_report

        t_report = time.perf_counter()
        wanted = media_wanted(summary, table)
        media: dict[tuple[str, int], dict[str, str]] = {}
        sweeps = paired_sweeps(table, wanted)
        for path, name in zip(bags, names, strict=True):
            stamps = [s for b, s in wanted if b == name]
            if stamps:
                got = fetch_media(
                    path,
                    stamps,
                    options.bag.camera_topic,
                    options.bag.lidar_topic,
                    sweeps=sweeps.get(name, {}),
                )
                media.update({(name, s): v for s, v in got.items()})
        for what, label in (('camera', 'camera thumbnail'), ('bev', "LiDAR bird's-eye view")):
            lacking = sorted({b for b, s in wanted if what not in media.get((b, s), {})})
            count = sum(what not in media.get(w, {}) for w in wanted)
            if count:
                summary['warnings'].append(
                    f'report: {count} of {len(wanted)} shown frames have no {label} '
                    f'(bags: {", ".join(lacking)}; no message with a matching header stamp)'
                )
        summary['timing']['report_seconds'] = time.perf_counter() - t_report
        summary['timing']['total_seconds'] = time.perf_counter() - t_start
        write_report(
            out / 'report.html',
            _clean(summary),
            table,
            media,
            title=f'dmil-ros audit: {len(bags)} bag(s)',
        )
    summary['timing']['total_seconds'] = time.perf_counter() - t_start
    summary = dict(_clean(summary))
    _write_json(out / 'summary.json', summary)
    return summary


__all__ = ['ENGINES', 'AuditOptions', 'run_audit']
