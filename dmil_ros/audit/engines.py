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

"""The engines that run the per-bag stage: a process pool on this machine, or a Ray cluster.

Each runs :func:`_work` once per bag (audit, save the result, return the bag's account) and
turns a bag's exception, or the death of its worker, into a failed account naming the bag.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dmil_ros.audit import bagresult
from dmil_ros.audit.bagaudit import BagOptions, audit_bag
from dmil_ros.audit.errors import AuditError
from dmil_ros.log import setup_logging

logger = logging.getLogger(__name__)
Job = tuple[Path, str, Path, str]  # bag, name, result directory, resume key


def _work(path: str, name: str, options: dict[str, Any], out_dir: str, key: str) -> dict[str, Any]:
    """One bag, end to end, in a worker: audit, save, return its account (picklable args)."""
    result = audit_bag(Path(path), name, BagOptions(**options))
    bagresult.save(result, Path(out_dir), key)
    return dict(result.info, name=name, frames=result.frames)


def failed_entry(name: str, message: str) -> dict[str, Any]:
    """The summary entry of a bag that gave nothing."""
    return {'name': name, 'status': 'failed', 'frames': 0, 'errors': [{'message': message}]}


def _failed(name: str, path: Path, exc: BaseException) -> dict[str, Any]:
    logger.error('bag %s: audit failed: %s', path, exc)
    return {**failed_entry(name, f'{type(exc).__name__}: {exc}'), 'path': str(path)}


def run_process(
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
                        max_workers=1,
                        mp_context=ctx,
                        initializer=_worker_setup,
                        initargs=(level, os.getpid()),
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


def _worker_setup(level: str, parent: int) -> None:
    """Pool initializer: logging, and a watch that ends the worker once ``parent`` is gone.

    A SIGKILLed audit (the OOM killer) cannot stop its workers, and a spawn worker never sees
    its parent go (it holds both ends of its call-queue pipe): orphans ran on, finished their
    bags and could race a rerun writing the same result folder (review 22c, F9). Polling the
    parent pid is portable, unlike ``prctl(PR_SET_PDEATHSIG)``; a second is plenty for that.
    """
    setup_logging(level)
    watch = threading.Thread(target=_exit_with, args=(parent,), name='parent-watch', daemon=True)
    watch.start()


def _exit_with(parent: int, interval: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    logging.getLogger(__name__).error('audit process %d is gone: worker exits', parent)
    os._exit(1)


def _stop(pool: Any, *, wait: bool) -> None:
    """Shut a pool down; ``wait=False`` (interrupted) terminates its workers first."""
    if not wait:
        # ProcessPoolExecutor has no public terminate before Python 3.14 (terminate_workers)
        for process in list((getattr(pool, '_processes', None) or {}).values()):
            with contextlib.suppress(OSError, ValueError):  # gone already, or closed
                process.terminate()
    pool.shutdown(wait=wait, cancel_futures=True)


RAY_MISSING = 'engine ray: the ray package is not installed (pip install "ray[default]")'


def check_engine(engine: str, bags: int) -> None:
    """Refuse an engine that cannot run ``bags`` bags, before anything in ``--out`` is removed
    (a missing ray deleted every finished result of a --no-resume run, then failed)."""
    if engine == 'ray' and bags and not _importable('ray'):
        raise AuditError(RAY_MISSING)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # in sys.modules without a spec (a stand-in): there to import
        return True


def run_ray(
    jobs: list[Job],
    bag: BagOptions,
    workers: int,
    progress: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    if not jobs:  # every bag resumed: no cluster to start or join, nor ray needed
        return {}
    try:
        import ray
    except ImportError as exc:
        raise AuditError(RAY_MISSING) from exc
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


__all__ = ['RAY_MISSING', 'Job', 'check_engine', 'failed_entry', 'run_process', 'run_ray']
