# Sourced by scripts/run.sh and scripts/test.sh: makes (once) and activates
# the project's virtual environment, so nothing is installed into the system
# Python. Debian 12 marks its Python externally managed (PEP 668): a bare
# `pip install` there fails with externally-managed-environment, while pip
# inside a venv works.
#   AIONLMMAP_VENV   where the venv lives (default: .venv in the checkout)
AIONLMMAP_VENV=${AIONLMMAP_VENV:-$PWD/.venv}

_apt_install() {
    # Installs the Debian packages named, when they are missing and we are root.
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "aionlmmap set-up: missing Debian packages: ${missing[*]}; run as root or 'sudo apt-get install ${missing[*]}'" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Packages installed for the tests start no services of their own (the
    # prometheus package would start a server on :9090): policy-rc.d
    # answering 101 tells invoke-rc.d not to start them; the tests start
    # what they need themselves.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || { [ "$own_policy" = 1 ] && rm -f "$policy"; return 1; }
    [ "$own_policy" = 1 ] && rm -f "$policy"
    return 0
}

if [ ! -x "$AIONLMMAP_VENV/bin/python" ]; then
    # Debian ships venv's ensurepip in a package of its own (python3-venv);
    # without it `python3 -m venv` leaves a venv with no pip.
    if ! python3 -c 'import ensurepip' >/dev/null 2>&1 && command -v dpkg >/dev/null; then
        _apt_install python3-venv
    fi
    rm -rf "$AIONLMMAP_VENV"
    python3 -m venv "$AIONLMMAP_VENV"
fi
export VIRTUAL_ENV=$AIONLMMAP_VENV
export PATH="$AIONLMMAP_VENV/bin:$PATH"
