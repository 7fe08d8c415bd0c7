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

"""Settings that must not break the pytest of Ubuntu's ROS 2 distributions.

``colcon test`` on a robot runs Debian's pytest (6.2.5 on Humble, 7.4.4 on Jazzy): a warning
class only pytest 9 has, named in pyproject.toml's ``filterwarnings``, would stop both before
the first test (review 23c, H2). It is added here, where it exists.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(pytest, 'PytestRemovedIn10Warning'):
        config.addinivalue_line('filterwarnings', 'ignore::pytest.PytestRemovedIn10Warning')
