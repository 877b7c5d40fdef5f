#!/usr/bin/env bash
# The HDP write-up's loopback experiment with pytest-hdp's own server and client: a
# listener on every protocol number 0-256, and one probe for each of -1..256 on loopback.
#   bash scripts/demo.sh [4|6]   (as root, or with sudo)
set -euo pipefail
source "$(dirname "$0")/setup.sh"
hdp_setup
family="${1:-4}"
target=127.0.0.1; [ "$family" = 6 ] && target=::1
hdp="$HDP_VENV/bin/hdp"

work="$(mktemp -d)"
listener=""
cleanup() {
    # Must not stop half-way under set -e: the listener may already be gone.
    if [ -n "$listener" ]; then
        kill "$listener" 2>/dev/null || true
        wait "$listener" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM

# The listener says "Listening on ..." on stderr once its sockets are open; a FIFO held
# open on fd 3 carries that line to us without racing the first probe.
mkfifo "$work/ready"
exec 3<>"$work/ready"
"$hdp" listen --family "$family" --protocol 0-256 --format table --timeout 3 \
    >"$work/server.md" 2>&3 &
listener=$!
ready=""
while read -r -t 15 line <&3; do
    echo "$line" >&2  # refusals (e.g. protocol 0 on Linux) come before the readiness line
    if [[ "$line" == Listening* ]]; then ready=1; break; fi
done
[ -n "$ready" ] || { echo "demo: the listener did not start within 15 s" >&2; exit 1; }

payload="$(command -v fortune >/dev/null && fortune || echo 'Marriage is not merely sharing the fettucine.')"
echo "== client (hdp send $target --protocol=-1-256)"
printf '%s\n' "$payload" | "$hdp" send "$target" --family "$family" --protocol=-1-256 || true
wait "$listener" || true
listener=""
echo
echo "== server (hdp listen --protocol 0-256, 3 s)"
cat "$work/server.md"
received=$(($(wc -l <"$work/server.md") - 2))
echo
echo "$received packets reached the listener; ICMP errors the kernel sent back show up on protocol 1 (IPv4) or 58 (IPv6)."
