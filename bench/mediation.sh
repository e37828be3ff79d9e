#!/usr/bin/env bash
# Calls to and from a PSTN gateway: confab's Mediation role (collocated with the
# front end, release build) side by side with Kamailio relaying to the same SIPp
# gateway, one after the other on the same machine.
#
#   bench/mediation.sh            ramp both directions for both servers (~15 min)
#   bench/mediation.sh --smoke    one short fixed-rate step per direction and server,
#                                 checks that calls complete (bench/run.sh --smoke; ~40 s)
#
# Options: --smoke, --only confab|kamailio, --out DIR (default
#          bench/results/<date>-mediation[-smoke]), -- ARGS (lib/bench.py / lib/mediation_bench.py
#          options for both servers, e.g. -- --step-secs 10 --uac-procs 2)
# Env: CONFAB_BIN (skip the build), CONFAB_SIP (127.0.0.1:5060), MEDIATION_SIP
#      (127.0.0.1:5070, confab's Mediation port), GW_PORT (5062), GW_IN_PORT (5063)
#
# Users (same in both servers, domain bench.test, password pw): callees user0000..
# user00C-1 registered by a SIPp UAS on 5061, callers from user0(2C) on; in confab
# each has the line URI tel:+1425555NNNN (Kamailio maps those numbers to userNNNN
# in route[PSTN]). confab's voice configuration: trunk gw (the gateway's answering
# side, 127.0.0.1:GW_PORT) on route pstn (\+1206555\d{4}, usage bench, the global
# voice policy), trunks gwin0.. (the gateway's calling side, GW_IN_PORT + i); a
# global dial plan with one rule. Kamailio: bench/kamailio/kamailio.cfg with
# -A WITH_MEDIATION. lib/mediation_bench.py drives SIPp (see its header);
# OUT/summary.md has the table, OUT/{confab,kamailio}/ every step and SIPp's files.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

SMOKE=0
ONLY=
OUT=
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --only) ONLY=$2; shift ;;
    --out) OUT=$2; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
command -v sipp >/dev/null || { echo "sipp not found (apt-get install sip-tester)" >&2; exit 1; }
RUN_CONFAB=1
RUN_KAM=1
[ "$ONLY" = confab ] && RUN_KAM=0
[ "$ONLY" = kamailio ] && RUN_CONFAB=0
if [ $RUN_KAM = 1 ] && ! command -v kamailio >/dev/null; then
  echo "kamailio not found: confab only" >&2
  RUN_KAM=0
fi

DOMAIN=bench.test
export CONFAB_SIP=${CONFAB_SIP:-127.0.0.1:5060}
MEDIATION_SIP=${MEDIATION_SIP:-127.0.0.1:5070}
GW_PORT=${GW_PORT:-5062}
GW_IN_PORT=${GW_IN_PORT:-5063}
if [ $SMOKE = 1 ]; then
  CALLEES=10; CALLERS=20; IN_PROCS=1
  # completion only: no p99 limit (CI's machine is shared; speed is the full run's)
  ARGS=(--fixed-rate 20 --step-secs 2 --call-hold-ms 200 --settle 1 --rtt-freq 1 --p99-max-ms 0)
else
  CALLEES=100; CALLERS=200; IN_PROCS=2
  # one gateway SIPp per trunk address for inbound, two UACs for outbound (one
  # SIPp's receive loop tops out first otherwise, see performance.md)
  ARGS=(--start-rate medout=200,medin=200 --max-rate medout=10000,medin=10000
    --step-secs 5 --confirm-secs 10 --confirm-tries 2 --call-hold-ms 1000 --settle 2 --rtt-freq 10)
fi
USERS=$(( 2 * CALLEES + CALLERS ))
ARGS+=(--uac-procs "$IN_PROCS" --callees "$CALLEES" --reg-users "$CALLERS" --domain "$DOMAIN"
  --gw-port "$GW_PORT" --gw-in-port "$GW_IN_PORT" --quiet-wait 0)
OUT=${OUT:-$HERE/results/$(date -u +%Y%m%d-%H%M%S)-mediation$([ $SMOKE = 1 ] && echo -smoke || true)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/confab-mediation-bench.XXXXXX")
export CONFAB_RUNDIR=$WORK/confab RUNDIR=$WORK/kamailio
mkdir -p "$CONFAB_RUNDIR" "$RUNDIR"
cleanup() {
  "$HERE/lib/confab.sh" stop >/dev/null 2>&1 || true
  "$HERE/kamailio/stop.sh" >/dev/null 2>&1 || true
  cp "$CONFAB_RUNDIR/confab.log" "$OUT/confab-server.log" 2>/dev/null || true
  cp "$RUNDIR/kamailio.log" "$OUT/kamailio-server.log" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
FAILED=()
echo "== calls through the Mediation role -> $OUT (users $USERS, smoke $SMOKE)"

if [ $RUN_CONFAB = 1 ]; then
  if [ -z "${CONFAB_BIN:-}" ]; then
    echo "== building confab (cargo build --release -p confab)"
    (cd "$ROOT" && cargo build --release -p confab)
    CONFAB_BIN=$ROOT/target/release/confab
  fi
  export CONFAB_BIN
  C() { "$CONFAB_BIN" --data "$CONFAB_RUNDIR/data" "$@" </dev/null >/dev/null; }
  python3 - "$USERS" "$CONFAB_RUNDIR/users.csv" "$DOMAIN" <<'PY'
import sys
n, path, dom = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(path, "w") as f:
    f.write("address,password,display_name\n")
    for i in range(n):
        f.write(f"user{i:04d}@{dom},pw,Bench User {i}\n")
PY
  C user import "$CONFAB_RUNDIR/users.csv"
  t0=$SECONDS
  for i in $(seq 0 $((CALLEES - 1))) $(seq $((2 * CALLEES)) $((USERS - 1))); do
    C user set "$(printf 'user%04d' "$i")@$DOMAIN" --line-uri "$(printf 'tel:+1425555%04d' "$i")"
  done
  C voice dialplan add global
  C voice rule add global local7 --pattern '(\d{7})' --translation '+1206$1'
  C voice usage add bench
  C voice policy add global --usages bench
  C voice trunk add gw --gateway "127.0.0.1:$GW_PORT"
  for i in $(seq 0 $((IN_PROCS - 1))); do
    C voice trunk add "gwin$i" --gateway "127.0.0.1:$((GW_IN_PORT + i))"
  done
  C voice route add pstn --pattern '\+1206555\d{4}' --usages bench --trunks gw
  echo "   line URIs and voice configuration in $((SECONDS - t0)) s"
  { sed -e "s/@SIP@/$CONFAB_SIP/" -e "s/@DOMAIN@/$DOMAIN/" "$HERE/confab-bench.toml"
    printf '\n[mediation]\nsip = "%s"\n' "$MEDIATION_SIP"; } >"$CONFAB_RUNDIR/bench.toml"
  "$HERE/lib/confab.sh" start
  python3 "$HERE/lib/mediation_bench.py" "$CONFAB_SIP" "@$CONFAB_RUNDIR/confab.pid" --name confab \
    --out "$OUT/confab" --inbound-target "$MEDIATION_SIP" \
    --server-version-cmd "$CONFAB_BIN --version" "${ARGS[@]}" "${EXTRA[@]}" \
    || { echo "!! mediation benchmark against confab failed" >&2; FAILED+=(confab); }
  "$HERE/lib/confab.sh" stop
fi

if [ $RUN_KAM = 1 ]; then
  "$HERE/kamailio/mkusers.sh" "$USERS" "$RUNDIR/users.sqlite" "$DOMAIN" >/dev/null
  KAM_DEFINES="${KAM_DEFINES:-} WITH_MEDIATION GW_OUT=\"127.0.0.1:$GW_PORT\" GW_IN_FIRST=$GW_IN_PORT GW_IN_LAST=$((GW_IN_PORT + IN_PROCS - 1))" \
    "$HERE/kamailio/start.sh"
  python3 "$HERE/lib/mediation_bench.py" 127.0.0.1:5060 "@$RUNDIR/kamailio.pid" --name kamailio \
    --out "$OUT/kamailio" --inbound-target 127.0.0.1:5060 \
    --server-version-cmd "kamailio -v | head -1" "${ARGS[@]}" "${EXTRA[@]}" \
    || { echo "!! mediation benchmark against kamailio failed" >&2; FAILED+=(kamailio); }
  "$HERE/kamailio/stop.sh"
fi

python3 "$HERE/lib/mediation_bench.py" --compare "$OUT" >/dev/null
cat "$OUT/summary.md"
echo "== summary -> $OUT/summary.md"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "!! failed: ${FAILED[*]}" >&2
  exit 1
fi
