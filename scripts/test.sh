#!/usr/bin/env bash
# The README's test command: installs everything the tests need on a fresh
# Debian machine (as root), then runs the whole suite. .ci/run calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(iproute2 nftables iptables gcc libc6-dev libmnl-dev libnetfilter-queue-dev chromium strace procps iputils-ping)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test,bench]'
exec python3 -m pytest -q -p no:cacheprovider "$@"
