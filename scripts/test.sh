#!/usr/bin/env bash
# Sets up a fresh machine and runs the tests. Without arguments: the project's own tests,
# then the conformance suite against its default target (the routed lab where the machine
# allows it, loopback otherwise), as two runs: the lab's own cleanup tests must not run
# while the suite's lab is up.
#   bash scripts/test.sh [pytest args...]   (as root, or with sudo)
set -euo pipefail
source "$(dirname "$0")/setup.sh"
HDP_EXTRAS=test hdp_setup
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
run_pytest conformance || status=$((status ? status : $?))
exit "$status"
