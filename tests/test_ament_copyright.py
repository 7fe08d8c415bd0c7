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
