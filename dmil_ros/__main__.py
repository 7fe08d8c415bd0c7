"""``python -m dmil_ros`` is the ``dmil-ros`` command."""

from __future__ import annotations

import sys

from dmil_ros.cli import main

sys.exit(main())
