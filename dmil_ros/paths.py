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

"""Command-line path checks, made before any work starts: a bad path costs nothing.

Each check names the option and the path; the commands create missing parent directories
themselves when they write.
"""

from __future__ import annotations

import os
from pathlib import Path

from dmil_ros.errors import ConfigError


def input_file(path: str | Path, option: str) -> Path:
    """An existing regular file (a model, a config, a JSON document)."""
    p = Path(path)
    if p.is_dir():
        msg = f'{option} {str(p)!r} is a directory, not a file'
        raise ConfigError(msg)
    if not p.is_file():
        msg = f'{option} {str(p)!r}: no such file'
        raise ConfigError(msg)
    return p


def input_text(path: str | Path, option: str) -> str:
    """The UTF-8 text of an existing file (:func:`input_file`), named on a read error."""
    p = input_file(path, option)
    try:
        return p.read_text(encoding='utf-8')
    except UnicodeDecodeError as exc:
        msg = f'{option} {str(p)!r}: not a text file (not UTF-8: {exc})'
        raise ConfigError(msg) from exc
    except OSError as exc:
        msg = f'{option} {str(p)!r}: cannot read it ({exc.strerror or exc})'
        raise ConfigError(msg) from exc


def output_file(path: str | Path, option: str) -> Path:
    """A file to write: not a directory, and its directory exists or can be created."""
    p = Path(path)
    if p.is_dir():
        msg = f'{option} {str(p)!r} is a directory, not a file'
        raise ConfigError(msg)
    _creatable(p.parent, option, p)
    return p


def output_dir(path: str | Path, option: str, *, new: bool = False) -> Path:
    """A directory to write into: not a file, and it exists or can be created (``new``: it
    must not exist yet)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        msg = f'{option} {str(p)!r} is a file, not a directory'
        raise ConfigError(msg)
    if new and p.exists():
        msg = f'{option} {str(p)!r} already exists'
        raise ConfigError(msg)
    _creatable(p, option, p)
    return p


def _creatable(directory: Path, option: str, path: Path) -> None:
    """``directory`` exists, or its nearest existing ancestor is a writable directory."""
    d = directory.absolute()
    while not d.exists() and d != d.parent:
        d = d.parent
    if not d.is_dir():
        msg = f'{option} {str(path)!r}: {str(d)!r} is a file, not a directory'
        raise ConfigError(msg)
    if not os.access(d, os.W_OK | os.X_OK):
        msg = f'{option} {str(path)!r}: directory {str(d)!r} is not writable'
        raise ConfigError(msg)
