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

"""Which bags an audit reads, what each is called, and the key its finished result is kept by.

``find_bags`` turns the command's arguments into bags: a bag folder, one storage file, a folder
of bags (one level down), or a folder of single-file bags. One recording named twice (a folder
and its own storage file, a link to a bag) is refused, as ``train`` refuses it; a folder that
cannot be listed is kept as a bag whose audit fails by name, so the other bags still run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dmil_ros.audit.errors import AuditError
from dmil_ros.audit.labels import sidecar_path
from dmil_ros.bagio.reader import BagReadError, recording, separate_recordings, storage_kind
from dmil_ros.bagio.sqlite_salvage import wal_file

logger = logging.getLogger(__name__)


def _is_bag(path: Path) -> bool:
    """True for a storage file or a folder holding ``metadata.yaml`` or storage files; also for
    a folder that cannot be searched: its audit then fails by name and the other bags still
    run (a PermissionError here stopped the whole fleet)."""
    try:
        if path.is_file():
            return storage_kind(path) is not None
        if not path.is_dir():
            return False
        if (path / 'metadata.yaml').is_file():
            return True
        return any(storage_kind(p) for p in path.iterdir() if p.is_file())
    except OSError:
        return True


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
    _refuse_duplicates(found)
    return found


def _refuse_duplicates(bags: Sequence[Path]) -> None:
    """Refuse one recording named twice (a folder and its own storage file, a link to a bag),
    compared by the storage files read, as ``train`` does: audited twice, its frames, spikes
    and alerts counted twice, and the doubled clusters moved the dataset-level PID."""
    owner: dict[Path, Path] = {}
    for bag in bags:
        files = recording(bag)
        shared = sorted(f for f in files if f in owner)
        if shared:
            first = owner[shared[0]]
            msg = (
                f'bags {str(first)!r} and {str(bag)!r} are one recording (both read '
                f'{[f.name for f in shared]}): its frames would count twice; give it once'
            )
            raise AuditError(msg)
        owner.update(dict.fromkeys(files, bag))


def _recordings(bag: Path) -> list[Path]:
    """``bag``, or the separate recordings of a folder of single-file bags; an ambiguous
    folder is refused, whether named or found in a directory of bags."""
    try:
        _refuse_mixed(bag)
        return separate_recordings(bag) or [bag]
    except BagReadError as exc:
        raise AuditError(str(exc)) from exc
    except OSError:  # cannot be listed: audited as one bag, which fails naming it
        return [bag]


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
    # a bag named twice never gets here: find_bags refuses one recording given twice
    return [
        f'{b}-{_path_hash(bag)}' if counts[b] > 1 else b
        for b, bag in zip(bases, bags, strict=True)
    ]


def _content(path: Path) -> bool:
    # a WAL-mode .db3's log holds committed messages, and its commits leave the .db3 untouched
    return bool(storage_kind(path)) or path.name == 'metadata.yaml' or _is_log(path)


def _is_log(path: Path) -> bool:
    return path.name.endswith('-wal') and storage_kind(path.with_name(path.name[:-4])) == '.db3'


def storage_files(bag: Path) -> list[Path]:
    """The files a bag's content lives in (its storage files, ``metadata.yaml`` and the
    write-ahead logs of its ``.db3`` files)."""
    if bag.is_file():
        return [bag, *[log for log in [wal_file(bag)] if log.is_file()]]
    return sorted(p for p in bag.iterdir() if p.is_file() and _content(p))


def bag_key(bag: Path, options_key: str) -> str:
    """The resume key of one bag: the options' key, the bag's resolved path and the size and
    mtime (ns) of each of its files and of its ground-truth sidecar, so a result is reused
    only for the same, unchanged bag."""
    files: list[list[Any]] = []
    sidecar = sidecar_path(bag)  # ground truth read with the bag
    try:
        for p in [*storage_files(bag), *([sidecar] if sidecar.is_file() else [])]:
            st = p.stat()
            files.append([p.name, st.st_size, st.st_mtime_ns])
    except OSError as exc:  # the bag's audit fails naming it, and a failed bag is redone
        files = [['unreadable', str(exc)]]
    return json.dumps(
        {'options': options_key, 'bag': str(bag.resolve()), 'files': files}, sort_keys=True
    )


__all__ = ['bag_key', 'bag_names', 'find_bags', 'storage_files']
