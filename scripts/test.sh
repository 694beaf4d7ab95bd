#!/usr/bin/env bash
# The README's test command: installs everything the tests need on a fresh
# Debian machine (as root: apt packages, then a virtual environment with the
# package and its test extras, PEP 668-safe), then runs the whole suite.
# .ci/run calls this. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

APT_PACKAGES=(iproute2 nftables iptables conntrack ethtool prometheus gcc libc6-dev python3-dev libmnl-dev libnetfilter-queue-dev chromium strace procps iputils-ping)
_apt_install "${APT_PACKAGES[@]}"

python -m pip install -q --disable-pip-version-check -e '.[test,bench]'
exec python -m pytest -q -p no:cacheprovider "$@"
