#!/usr/bin/env bash
# Sets up a fresh machine and runs the tests. Without arguments: the project's own tests,
# then the conformance suite against its default target (the routed lab where the machine
# allows it, loopback otherwise) and on loopback and the mtu-1280/mtu-576 labs, as separate
# runs: the lab's own cleanup tests must not run while a suite's lab is up.
#   bash scripts/test.sh [pytest args...]   (as root, or with sudo)
set -euo pipefail
source "$(dirname "$0")/setup.sh"
# plot: the chart tests draw real PNG and SVG files rather than skip.
HDP_EXTRAS=test,plot hdp_setup
cd "$HDP_ROOT"

run_pytest() {
    local status=0
    "$HDP_VENV/bin/python" -m pytest "$@" || status=$?
    if [ "$status" -eq 5 ]; then
        echo "test.sh: pytest collected no tests in '$*'; that is a failure here" >&2
        return 1
    fi
    return "$status"
}

if [ "$#" -gt 0 ]; then
    run_pytest "$@"
    exit
fi
status=0
run_pytest tests || status=$?
# The suite on its default path (the routed lab, or loopback where no lab can be built),
# then on loopback, on the narrow-link labs, where the fragmentation and path MTU
# statements of the chapter have something to show, and behind the write-up's middleboxes
# (firewalls, a NAT, a first-packet-only router), each held to its recorded profile.
# `lossy` is left out: its random loss is for many probes a case (hdp stats), not verdicts.
labs=("" none)
if [ "$(id -u)" -eq 0 ] && [ "$(uname -s)" = Linux ]; then
    # labs need root; elsewhere their tests would only skip
    labs+=(mtu-1280 mtu-576 firewall-drop firewall-reject nat first-packet)
fi
for lab in "${labs[@]}"; do
    run_pytest conformance ${lab:+--hdp-lab="$lab"} || status=$((status ? status : $?))
done
exit "$status"
