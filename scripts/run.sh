#!/usr/bin/env bash
# The README's first command: installs aionlmmap into a virtual environment
# (.venv in the checkout; works where the system Python refuses pip, PEP 668)
# and runs the main job, a live view of this machine's netlink state and
# events (`aionlmmap`; extra arguments are passed on, e.g. `monitor --json`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
python -m pip install -q --disable-pip-version-check .
exec aionlmmap "$@"
