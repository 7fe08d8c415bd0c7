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

"""ament lint: copyright/licence headers (runs where ROS 2's ament_copyright is installed)."""

from __future__ import annotations

import pytest

ament_copyright = pytest.importorskip('ament_copyright.main')


@pytest.mark.ament
@pytest.mark.copyright
@pytest.mark.linter
def test_copyright() -> None:
    rc = ament_copyright.main(argv=['.', 'test'])
    assert rc == 0, 'Found errors'
