"""ament lint: package.xml against its schema (runs where ament_xmllint is installed)."""

from __future__ import annotations

import pytest

ament_xmllint = pytest.importorskip('ament_xmllint.main')


@pytest.mark.ament
@pytest.mark.linter
@pytest.mark.xmllint
def test_xmllint() -> None:
    rc = ament_xmllint.main(argv=[])
    assert rc == 0, 'Found errors'
