#!/usr/bin/env bash
# Set up the development environment, then run the quality gates and the test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --dev
venv="${DMIL_VENV:-.venv}"

"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"

status=0
"$venv/bin/python" -m pytest "$@" || status=$?
if (( status == 5 )); then
  echo "test: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
