"""ament lint: docstring conventions (runs where ament_pep257 is installed)."""

from __future__ import annotations

import pytest

ament_pep257 = pytest.importorskip('ament_pep257.main')


@pytest.mark.ament
@pytest.mark.linter
@pytest.mark.pep257
def test_pep257() -> None:
    rc = ament_pep257.main(argv=['.', 'test'])
    assert rc == 0, 'Found code style errors / warnings'
