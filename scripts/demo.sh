#!/usr/bin/env bash
# The main job on its default target: every protocol number from -1 to 300, over IPv4 and
# IPv6, against this machine's loopback, with a listener confirming each verdict.
#   bash scripts/demo.sh [more hdp sweep options]   (as root, or with sudo)
set -euo pipefail
source "$(dirname "$0")/setup.sh"
hdp_setup
exec "$HDP_VENV/bin/hdp" sweep 127.0.0.1 ::1 --protocols=-1-300 "$@"
