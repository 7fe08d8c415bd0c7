#!/usr/bin/env bash
# Set up dmil_ros for ROS-less use: system libraries, a virtual environment in .venv, the package.
#
#   bash scripts/setup.sh          runtime (node core, replay, simulate, audit)
#   bash scripts/setup.sh --dev    + training (torch 2.13.0), tests, linters, open3d, chromium
#
# System packages that pip cannot provide are installed with apt-get when run as root;
# otherwise the script names what is missing and stops.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1
venv="${DMIL_VENV:-.venv}"

# 1. system packages: OpenMP; with --dev, libusb + GL/EGL for open3d (the benchmarks) and
#    Debian's chromium (the report test)
pkgs=(libgomp1)
(( dev )) && pkgs+=(libusb-1.0-0 libgl1 libegl1 chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if (( ${#missing[@]} )); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${missing[*]}" >&2
    echo "setup: install them as root: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# 2. virtual environment and the package (editable, so tests and the CLI use this checkout)
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel
extras=""
(( dev )) && extras="[dev]"
"$venv/bin/python" -m pip install -q -e ".${extras}"
echo "setup: ready ($venv, dmil-ros $("$venv/bin/dmil-ros" --version | cut -d' ' -f2))" >&2
