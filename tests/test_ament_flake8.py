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

"""ament lint: flake8 with ROS 2's settings (runs where ament_flake8 is installed).

The configuration (``tests/ament_flake8.ini``) is ament's, except where ruff and ruff format
(run in CI) set the style: import order within groups, slice spacing, docstring layout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ament_flake8 = pytest.importorskip('ament_flake8.main')


@pytest.mark.ament
@pytest.mark.flake8
@pytest.mark.linter
def test_flake8() -> None:
    config = Path(__file__).with_name('ament_flake8.ini')
    rc, errors = ament_flake8.main_with_errors(argv=['--config', str(config)])
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
