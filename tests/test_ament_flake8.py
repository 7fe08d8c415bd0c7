"""ament lint: flake8 with ROS 2's settings (runs where ament_flake8 is installed)."""

from __future__ import annotations

import pytest

ament_flake8 = pytest.importorskip('ament_flake8.main')


@pytest.mark.ament
@pytest.mark.flake8
@pytest.mark.linter
def test_flake8() -> None:
    rc, errors = ament_flake8.main_with_errors(argv=[])
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
