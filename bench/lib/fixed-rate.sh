#!/usr/bin/env bash
# One fixed-rate load against a freshly started confab, reporting what a ramp
# hides: server CPU per operation (whole process, and the core thread alone,
# which is the serial part), memory at the end of the load and again after an
# idle wait (transactions linger 32 s; does the memory come back?), and the
# front end's table gauges from /metrics.  Meant for before/after comparisons of
# two binaries run back to back: on a shared 2-core machine the ramp's maximum
# rate moves with other processes' load, CPU per operation much less.
#
#   bench/lib/fixed-rate.sh BIN TEST TRANSPORT RATE SECS [IDLE_SECS]
#     TEST = register | message | call, TRANSPORT = udp | tcp
#
# Needs a provisioned data directory: env CONFAB_RUNDIR (with data/ and
# bench.toml as bench/run.sh writes them; the data dir is copied, not changed)
# and CONFAB_SIP (127.0.0.1:5060).  Output: one line on stdout; the SIPp step
# and its statistics under $CONFAB_RUNDIR/fixed-rate/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$1 TEST=$2 TR=$3 RATE=$4 SECS=$5 IDLE=${6:-0}
: "${CONFAB_RUNDIR:?set CONFAB_RUNDIR (see bench/run.sh)}"
export CONFAB_SIP=${CONFAB_SIP:-127.0.0.1:5060}
SRC=$CONFAB_RUNDIR
RUN=$(mktemp -d "${TMPDIR:-/tmp}/confab-fixed.XXXXXX")
trap 'CONFAB_BIN=$BIN CONFAB_RUNDIR=$RUN "$HERE/confab.sh" stop >/dev/null 2>&1 || true; rm -rf "$RUN"' EXIT
cp -a "$SRC/data" "$RUN/data"
cp "$SRC/bench.toml" "$RUN/bench.toml"
CONFAB_BIN=$BIN CONFAB_RUNDIR=$RUN "$HERE/confab.sh" start >/dev/null
PID=$(cat "$RUN/confab.pid")
http=$(sed -n 's/^http *= *"\(.*\)"/\1/p' "$RUN/bench.toml")
ticks() { awk '{s += $14 + $15} END {print s}' /proc/"$PID"/task/*/stat; }
main_ticks() { awk '{print $14 + $15}' /proc/"$PID"/task/"$PID"/stat; }
pss() { awk '/^Pss:/ {print $2}' /proc/"$PID"/smaps_rollup; }
gauges() {
  python3 - "$http" <<'PY' || true
import sys, urllib.request
try:
    text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=2).read().decode()
except OSError:
    sys.exit(0)
keep = ("transactions", "registrations", "contexts", "nonces", "timers", "expiry")
print(" ".join(l.replace("confab_", "") for l in text.splitlines()
               if not l.startswith("#") and any(k in l for k in keep)))
PY
}
OUT=$SRC/fixed-rate/$TEST-$TR-$RATE-$(date -u +%H%M%S)
mkdir -p "$(dirname "$OUT")"
"$HERE/harness.sh" "$CONFAB_SIP" "@$RUN/confab.pid" --name fixed --out "$OUT" \
  --tests "$TEST" --transports "$TR" --domain bench.test --quiet-wait 0 \
  --step-secs "$SECS" --confirm-secs 1 --confirm-tries 1 --settle 0 --reg-users 10000 \
  --start-rate "$TEST=$RATE" --max-rate "$TEST=$RATE" ${FIXED_ARGS:-} >"$OUT.log" 2>&1 &
HP=$!
# wait for the load step itself (MESSAGE and calls first register their callees)
for _ in $(seq 240); do ls "$OUT/steps" 2>/dev/null | grep -q '^001-' && break; sleep 0.5; done
sleep 1
t0=$(ticks) m0=$(main_ticks) w0=$(date +%s.%N)
sleep $((SECS > 3 ? SECS - 2 : 1))
t1=$(ticks) m1=$(main_ticks) w1=$(date +%s.%N)
p1=$(pss) g1=$(gauges)
# the whole /metrics at the end of the load (stage histograms, queue gauges)
python3 -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://$http/metrics', timeout=2).read().decode())" \
  >"$OUT.metrics.txt" 2>/dev/null || true
wait "$HP" || true
step=$(grep -m1 -E "001-$TEST-$TR" "$OUT.log" | sed 's/.*: //' | cut -c1-60)
idle=""
if [ "$IDLE" -gt 0 ]; then
  sleep "$IDLE"
  idle="; after ${IDLE} s idle: PSS $(( $(pss) / 1024 )) MiB, $(gauges)"
fi
python3 - <<PY
w = $w1 - $w0
srv = ($t1 - $t0) / 100 / w
core = ($m1 - $m0) / 100 / w
print(f"$TEST/$TR {int($RATE)}/s: server {srv:.2f} cores = {srv / $RATE * 1e6:.0f} us/op, "
      f"core thread {core:.2f} cores = {core / $RATE * 1e6:.0f} us/op; "
      f"end of load: PSS {$p1 / 1024:.0f} MiB, $g1$idle | SIPp: $step")
PY
