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

"""Bags' work for engines.run_process, importable by name in a spawned worker: ``work`` kills
its worker process for the bag 'boom' (as the OOM killer would), ``sleepy`` takes a minute."""

from __future__ import annotations

import os
import time
from typing import Any


def work(path: str, name: str, *_args: Any) -> dict[str, Any]:
    if name == 'boom':
        os._exit(9)
    return {'name': name, 'path': path, 'status': 'ok', 'frames': 1, 'pid': os.getpid()}


def sleepy(path: str, name: str, *_args: Any) -> dict[str, Any]:
    """A bag that takes a minute: its worker is busy when the audit process is killed."""
    time.sleep(60)
    return {'name': name, 'path': path, 'status': 'ok', 'frames': 1, 'pid': os.getpid()}
