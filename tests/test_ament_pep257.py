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

"""ament lint: docstring conventions (runs where ament_pep257 is installed)."""

from __future__ import annotations

import pytest

ament_pep257 = pytest.importorskip('ament_pep257.main')

# the docstring layout ruff format keeps (CI): the summary may wrap onto a second line and start
# on the first; it need not be in the imperative mood (as in tests/ament_flake8.ini)
PROJECT_STYLE = ('D205', 'D209', 'D213', 'D400', 'D401', 'D402', 'D403', 'D415')


@pytest.mark.ament
@pytest.mark.linter
@pytest.mark.pep257
def test_pep257() -> None:
    rc = ament_pep257.main(argv=['--add-ignore', *PROJECT_STYLE, '--', '.', 'test'])
    assert rc == 0, 'Found code style errors / warnings'
