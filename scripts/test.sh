#!/usr/bin/env bash
# Sets up a fresh machine and runs the test suite. Run as root for the raw-socket tests:
#   bash scripts/test.sh [pytest args...]   (as root, or with sudo)
set -euo pipefail
source "$(dirname "$0")/setup.sh"
HDP_EXTRAS=test hdp_setup
cd "$HDP_ROOT"
# Without arguments: the project's own tests, then the conformance suite against its
# default target (loopback), as a user runs it.
[ "$#" -gt 0 ] || set -- tests conformance
status=0
"$HDP_VENV/bin/python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure here" >&2
    exit 1
fi
exit "$status"
