#!/usr/bin/env bash
# The README's test command: installs everything the tests need on a fresh
# Debian machine (as root: apt packages, then a virtual environment with the
# package and its test extras, PEP 668-safe), then runs the whole suite.
# .ci/run calls this. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

APT_PACKAGES=(iproute2 nftables iptables conntrack ethtool prometheus curl gcc libc6-dev python3-dev libmnl-dev libnetfilter-queue-dev chromium strace procps iputils-ping)
_apt_install "${APT_PACKAGES[@]}"

# The editable install builds the optional compiled core (aionlmmap/_speedups)
# in place; don't set AIONLMMAP_NO_EXTENSIONS here, or the build skips it.
python -m pip install -q --disable-pip-version-check -e '.[test,bench]'

# The whole suite runs twice: on the compiled core, then on the pure-Python
# core it mirrors (AIONLMMAP_NO_EXTENSIONS=1 selects it at import). Either
# failing fails the run.
status=0
echo "== the suite on the compiled core"
python -m pytest -q -p no:cacheprovider "$@" || status=$?
echo "== the suite on the pure-Python core (AIONLMMAP_NO_EXTENSIONS=1)"
AIONLMMAP_NO_EXTENSIONS=1 python -m pytest -q -p no:cacheprovider "$@" || status=$?
exit "$status"
