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

Engines: ``process`` (default) runs the bags in a ``concurrent.futures`` process pool on this
machine (one bag per task, ``workers`` processes); ``ray`` sends the same per-bag function to a
Ray cluster (``ray.init(address='auto')`` when one is running, else a local one) for fleets.
Each bag's result is saved by the worker as soon as it is done, so an interrupted audit keeps
every finished bag and a rerun skips them (``resume``). The merge reads the saved results in bag
order, so the tables do not depend on the engine or on the number of workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import math
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dmil_ros.atomic import atomic_write_text, remove_stale_temporaries
from dmil_ros.audit import bagresult
from dmil_ros.audit.bagaudit import BagOptions, audit_bag, load_model, sidecar_path
from dmil_ros.audit.errors import AuditError, AuditInputError
from dmil_ros.audit.merge import MergeOptions, merge
from dmil_ros.bagio.reader import BagReadError, separate_recordings, storage_kind
from dmil_ros.log import setup_logging

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


def _is_bag(path: Path) -> bool:
    if path.is_file():
        return storage_kind(path) is not None
    if not path.is_dir():
        return False
    if (path / 'metadata.yaml').is_file():
        return True
    return any(storage_kind(p) for p in path.iterdir() if p.is_file())


def find_bags(paths: Sequence[str | Path]) -> list[Path]:
    """Bags named directly, or found one level down in a directory of bags (sorted); a folder
    of single-file bags (storage files, no ``metadata.yaml``) gives each file as a bag."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if not path.exists():
            msg = f'bag {str(path)!r} does not exist'
            raise AuditError(msg)
        if _is_bag(path):
            found.extend(_recordings(path))
            continue
        children = sorted(path.iterdir()) if path.is_dir() else []
        is_bag = {p: _is_bag(p) for p in children}
        inner = [p for p in children if is_bag[p]]
        if not inner:
            msg = f'{str(path)!r} is neither a bag nor a directory of bags'
            raise AuditError(msg)
        for bag in inner:
            found.extend(_recordings(bag))
        deeper = [
            str(q)
            for p in children
            if p.is_dir() and not is_bag[p]
            for q in sorted(p.iterdir())
            if _is_bag(q)
        ]
        if deeper:
            logger.warning(
                '%s: bags two levels down not audited (name their folders): %s',
                path,
                ', '.join(deeper),
            )
    return found


def _recordings(bag: Path) -> list[Path]:
    """``bag``, or the separate recordings of a folder of single-file bags; an ambiguous
    folder is refused, whether named or found in a directory of bags."""
    _refuse_mixed(bag)
    try:
        return separate_recordings(bag) or [bag]
    except BagReadError as exc:
        raise AuditError(str(exc)) from exc


def _refuse_mixed(path: Path) -> None:
    """A folder without ``metadata.yaml`` holding loose storage files *and* bag folders is
    ambiguous (one bag whose recorder died, or a folder of bags plus a stray file): refused,
    rather than silently auditing one reading of it."""
    if not path.is_dir() or (path / 'metadata.yaml').is_file():
        return
    entries = list(path.iterdir())
    folders = sorted(p.name for p in entries if p.is_dir() and _is_bag(p))
    if folders:
        loose = [p.name for p in storage_files(path)]  # no metadata.yaml here
        msg = (
            f'{str(path)!r} holds loose storage files {loose} and bag folders {folders} and no '
            'metadata.yaml: name the bags (or the storage files) themselves'
        )
        raise AuditError(msg)


def _safe(text: str) -> str:
    """A name that is one plain directory entry: no separators, never ``.``/``..``/hidden."""
    return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in text).lstrip('.') or 'bag'


def _remove_old_result(out: Path, bag_dir: Path) -> None:
    """Delete one bag's previous result folder, and only a folder directly in ``out/bags``."""
    if not bag_dir.exists() and not bag_dir.is_symlink():
        return
    parent = (out / 'bags').resolve()
    if bag_dir.is_symlink() or bag_dir.resolve().parent != parent:
        msg = f'bag result folder {str(bag_dir)!r} is not a folder in {str(parent)!r}: not removed'
        raise AuditError(msg)
    shutil.rmtree(bag_dir)


def _own_name(bag: Path) -> str:
    """The bag's folder name, or its file name less the storage suffix (``drive.001`` stays
    ``drive.001``: ``Path.stem`` of a folder would cut it to ``drive``)."""
    kind = storage_kind(bag) if bag.is_file() else None
    if kind is not None:
        return bag.name[: bag.name.rindex(kind)]
    return bag.name


def _path_hash(bag: Path) -> str:
    return hashlib.sha256(str(bag.resolve()).encode()).hexdigest()[:8]


def bag_names(bags: Sequence[Path]) -> list[str]:
    """Unique, filesystem-safe names: the bag's own name; when several bags share it, each of
    them gets ``-<8 hex of the hash of its resolved path>``, so a bag's name never depends on
    the order of the others. A rerun that adds a bag of the same name renames the bag that had
    it alone: its finished result (under the bare name) is not found and it is audited again."""
    bases = [_safe(_own_name(bag)) for bag in bags]
    counts = Counter(bases)
    names = [
        f'{b}-{_path_hash(bag)}' if counts[b] > 1 else b
        for b, bag in zip(bases, bags, strict=True)
    ]
    seen: set[str] = set()
    for name, bag in zip(names, bags, strict=True):
        if name in seen:  # the same bag named twice
            msg = f'bag {str(bag)!r} given more than once'
            raise AuditError(msg)
        seen.add(name)
    return names


def storage_files(bag: Path) -> list[Path]:
    """The files a bag's content lives in (its storage files and ``metadata.yaml``)."""
    if bag.is_file():
        return [bag]
    return sorted(
        p for p in bag.iterdir() if p.is_file() and (storage_kind(p) or p.name == 'metadata.yaml')
    )


def bag_key(bag: Path, options_key: str) -> str:
    """The resume key of one bag: the options' key, the bag's resolved path and the size and
    mtime (ns) of each of its files and of its ground-truth sidecar, so a result is reused
    only for the same, unchanged bag."""
    files = []
    sidecar = sidecar_path(bag)  # ground truth read with the bag
    for p in [*storage_files(bag), *([sidecar] if sidecar.is_file() else [])]:
        st = p.stat()
        files.append([p.name, st.st_size, st.st_mtime_ns])
    return json.dumps(
        {'options': options_key, 'bag': str(bag.resolve()), 'files': files}, sort_keys=True
    )


def _work(path: str, name: str, options: dict[str, Any], out_dir: str, key: str) -> dict[str, Any]:
    """One bag, end to end, in a worker: audit, save, return its account (picklable args)."""
    result = audit_bag(Path(path), name, BagOptions(**options))
    bagresult.save(result, Path(out_dir), key)
    return dict(result.info, name=name, frames=result.frames)


def _failed_entry(name: str, message: str) -> dict[str, Any]:
    """The summary entry of a bag that gave nothing."""
    return {'name': name, 'status': 'failed', 'frames': 0, 'errors': [{'message': message}]}


def _failed(name: str, path: Path, exc: BaseException) -> dict[str, Any]:
    logger.error('bag %s: audit failed: %s', path, exc)
    return {**_failed_entry(name, f'{type(exc).__name__}: {exc}'), 'path': str(path)}


def _missing(name: str, account: dict[str, Any] | None) -> dict[str, Any]:
    """The entry of a bag with no result on disk: its failure, or one that says so."""
    if account is not None and account.get('status') == 'failed':
        return dict(account)
    message = 'no result on disk after the audit of this bag'
    if account is not None:
        message += f' (the worker reported {account.get("status")!r})'
    logger.error('bag %s: %s', name, message)
    return _failed_entry(name, message)


def _run_process(
    jobs: list[Job],
    bag: BagOptions,
    workers: int,
    progress: Callable[[str], None],
    work: Callable[..., dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each bag in a worker process, ``workers`` at a time (``work``: :func:`_work`).

    One single-worker pool per slot, not one pool of ``workers``: a worker that dies (the OOM
    killer, a crash in native code) breaks only its own pool, so only the bag it held fails,
    by name, and the slot gets a fresh worker; a shared pool fails every unfinished bag. The
    workers are terminated on the way out (Ctrl-C, SIGTERM): none is left running its bag.
    """
    work = work or _work
    accounts: dict[str, dict[str, Any]] = {}
    opts = asdict(bag)
    if workers <= 1 or len(jobs) <= 1:
        for path, name, out, key in jobs:
            try:
                accounts[name] = work(str(path), name, opts, str(out), key)
            except Exception as exc:
                accounts[name] = _failed(name, path, exc)
            progress(name)
        return accounts
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context('spawn')  # no forked ONNX Runtime / torch thread pools
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    slots: dict[int, ProcessPoolExecutor] = {}
    running: dict[Future[dict[str, Any]], tuple[int, Path, str]] = {}
    free = list(range(workers))
    todo = iter(jobs)
    try:
        while True:
            for slot, (path, name, out, key) in zip(list(free), todo, strict=False):
                free.remove(slot)
                if slot not in slots:
                    slots[slot] = ProcessPoolExecutor(
                        max_workers=1, mp_context=ctx, initializer=setup_logging, initargs=(level,)
                    )
                future = slots[slot].submit(work, str(path), name, opts, str(out), key)
                running[future] = (slot, path, name)
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                slot, path, name = running.pop(future)
                free.append(slot)
                try:
                    accounts[name] = future.result()
                except BrokenProcessPool:
                    died = RuntimeError('its worker process died (killed, or out of memory?)')
                    accounts[name] = _failed(name, path, died)
                    slots.pop(slot).shutdown(wait=False)
                except Exception as exc:
                    accounts[name] = _failed(name, path, exc)
                progress(name)
    finally:
        for pool in slots.values():
            _stop(pool, wait=not running)
    return accounts


def _stop(pool: Any, *, wait: bool) -> None:
    """Shut a pool down; ``wait=False`` (interrupted) terminates its workers first."""
    if not wait:
        # ProcessPoolExecutor has no public terminate before Python 3.14 (terminate_workers)
        for process in list((getattr(pool, '_processes', None) or {}).values()):
            with contextlib.suppress(OSError, ValueError):  # gone already, or closed
                process.terminate()
    pool.shutdown(wait=wait, cancel_futures=True)


def _run_ray(
    jobs: list[Job],
    bag: BagOptions,
    workers: int,
    progress: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    try:
        import ray
    except ImportError as exc:
        msg = 'engine ray: the ray package is not installed (pip install "ray[default]")'
        raise AuditError(msg) from exc
    if not jobs:  # every bag resumed: no cluster to start or join
        return {}
    if not ray.is_initialized():
        try:
            ray.init(address='auto', ignore_reinit_error=True, log_to_driver=False)
        except (ConnectionError, RuntimeError):
            ray.init(num_cpus=workers or None, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(num_cpus=bag.threads)(_work)
    # absolute paths: a worker on another node of the cluster starts in a directory of its own
    # (the files must be on storage every node mounts at the same path)
    opts = asdict(bag)
    opts['model'] = str(Path(bag.model).resolve())
    refs = {
        remote.remote(str(p.resolve()), n, opts, str(o.resolve()), k): (p, n)
        for p, n, o, k in jobs
    }
    accounts: dict[str, dict[str, Any]] = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        path, name = refs[done[0]]
        try:
            accounts[name] = ray.get(done[0])
        except Exception as exc:
            accounts[name] = _failed(name, path, exc)
        progress(name)
    return accounts


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


Job = tuple[Path, str, Path, str]  # bag, name, result directory, resume key
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
    runner = _run_ray if options.engine == 'ray' else _run_process
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
                accounts[name] = _failed_entry(name, str(exc))
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
    else:  # a report of an earlier run beside this summary would describe other bags
        (out / 'report.html').unlink(missing_ok=True)
    summary['timing']['total_seconds'] = time.perf_counter() - t_start
    summary = dict(_clean(summary))
    _write_json(out / 'summary.json', summary)
    return summary


__all__ = [
    'ENGINES',
    'AuditOptions',
    'bag_key',
    'bag_names',
    'find_bags',
    'run_audit',
    'storage_files',
]
