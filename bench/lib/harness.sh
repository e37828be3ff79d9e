#!/usr/bin/env bash
# Generic SIP server benchmark against one server (SIPp driven); bench/run.sh
# calls it once for confab and once for Kamailio.
#
#   lib/harness.sh HOST:PORT PID|@PIDFILE [options]   (lib/harness.sh -h lists them)
#
# ../README.md explains what is measured.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# one socket per held TCP user: take every descriptor we are allowed
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
command -v sipp >/dev/null || { echo "sipp not found in PATH" >&2; exit 1; }
exec python3 "$HERE/bench.py" "$@"
