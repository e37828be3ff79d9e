#!/usr/bin/env bash
# confab vs Kamailio, side by side, one command.
#
#   bench/run.sh            full run (~1 h 45 min): every scenario against confab, then Kamailio
#   bench/run.sh --smoke    a few seconds per scenario, small user counts (CI)
#
# Options:
#   --smoke                 tiny settings (lib/bench.py --quick), no quiet-machine waits
#   --users N               users provisioned in both servers (default 50000; smoke 3000)
#   --only confab|kamailio  run one server only (the table then has no ratios)
#   --tests LIST            harness tests (default hold,register,message,call,presence,chat,
#                           mediation; chat = bench/chat.sh, Persistent Chat, confab only;
#                           mediation = bench/mediation.sh, calls to and from a PSTN gateway)
#   --out DIR               results directory (default bench/results/<date>)
#   --micro / --no-micro    also run the parser micro-benchmark (cargo bench, pinned to
#                           one core with taskset); default: on for full runs, off for --smoke
#   -- ARGS...              passed to lib/bench.py for both servers (see lib/bench.py -h)
# Env: CONFAB_BIN (skip the build), PRESENCE_ARGS (extra lib/presence.py options, e.g.
#      "--presentities 2000 --step-secs 10"; default 10,000 users x 20 watchers; same
#      for both servers); KAM_PRESENCE_SHM_MB (4096), KAM_PRESENCE_SHM_MANAGER (tlsf):
#      Kamailio's shm size and allocator for the presence run
#
# What it does: builds target/release/confab (cargo build --release -p confab) unless
# CONFAB_BIN is set; writes a CSV of users user0000..user{N-1}@bench.test / "pw" and
# provisions them with `confab user import`; starts confab with bench/confab-bench.toml
# on 127.0.0.1:5060 (UDP+TCP); runs lib/bench.py; stops it; creates the same users in
# Kamailio's sqlite DB, starts bench/kamailio/kamailio.cfg on the same port, runs the
# same harness with the same arguments, stops it, restarts it with -A WITH_PRESENCE
# (presence modules) for lib/presence.py, stops it; then lib/compare.py writes
# RESULTS/summary.md (one table, confab/Kamailio ratios) and prints it.
# SIPp runs on the same machine and shares its cores with the server under test.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

SMOKE=0
USERS=
ONLY=
TESTS=hold,register,message,call,presence,chat,mediation
OUT=
MICRO=
EXTRA=()
FAILED=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --users) USERS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --tests) TESTS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --micro) MICRO=1 ;;
    --no-micro) MICRO=0 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

for tool in sipp python3 ss; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install sip-tester python3 iproute2)" >&2; exit 1; }
done
RUN_KAM=1
RUN_CONFAB=1
[ "$ONLY" = confab ] && RUN_KAM=0
[ "$ONLY" = kamailio ] && RUN_CONFAB=0
if [ $RUN_KAM = 1 ] && ! command -v kamailio >/dev/null; then
  echo "kamailio not found (apt-get install kamailio kamailio-sqlite-modules): running confab only" >&2
  RUN_KAM=0
fi

if [ $SMOKE = 1 ]; then
  MICRO=${MICRO:-0}
  USERS=${USERS:-3000}
  HARNESS=(--quick --quiet-wait 0 --step-secs 2 --confirm-secs 3 --confirm-tries 1
    --start-rate register=500,message=200,call=100 --max-rate register=1000,message=400,call=200
    --call-hold-ms 200 --hold-udp 1000 --hold-tcp 500 --hold-refresh-secs 10 --hold-secs 5
    --reg-users 1000)
else
  MICRO=${MICRO:-1}
  USERS=${USERS:-50000}
  # two SIPp processes per load step: one SIPp's single receive loop fell behind
  # (4 MB of unread responses, drops) before either server did (performance.md,
  # "Where a request waits")
  HARNESS=(--quiet-wait 300 --hold-udp 50000 --hold-tcp 10000,19000 --hold-infeasible cap
    --uac-procs 2)
fi
OUT=${OUT:-$HERE/results/$(date -u +%Y%m%d-%H%M%S)$([ $SMOKE = 1 ] && echo -smoke || true)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/confab-bench.XXXXXX")
# the users' SIP domain and digest realm, same for both servers (confab refuses an
# IP literal as a user's domain; Kamailio has it as an alias in kamailio.cfg)
DOMAIN=bench.test
export CONFAB_RUNDIR=$WORK/confab RUNDIR=$WORK/kamailio CONFAB_SIP=127.0.0.1:5060
mkdir -p "$CONFAB_RUNDIR" "$RUNDIR"

cleanup() {
  "$HERE/lib/confab.sh" stop >/dev/null 2>&1 || true
  "$HERE/kamailio/stop.sh" >/dev/null 2>&1 || true
  # keep the server logs with the results, drop the rest (user DBs)
  cp "$CONFAB_RUNDIR/confab.log" "$OUT/confab-server.log" 2>/dev/null || true
  cp "$RUNDIR/kamailio.log" "$OUT/kamailio-server.log" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# the harness' own split of tests: presence is ours (lib/presence.py)
BTESTS=$(echo "$TESTS" | tr ',' '\n' | grep -v -e '^presence$' -e '^chat$' -e '^mediation$' | paste -sd, || true)
WANT_PRESENCE=0
echo ",$TESTS," | grep -q ',presence,' && WANT_PRESENCE=1
WANT_CHAT=0
echo ",$TESTS," | grep -q ',chat,' && WANT_CHAT=1
WANT_MEDIATION=0
echo ",$TESTS," | grep -q ',mediation,' && WANT_MEDIATION=1

# lib/presence.py: identical arguments for both servers
PRESENCE=(--domain "$DOMAIN")
[ $SMOKE = 1 ] && PRESENCE+=(--smoke)
# shellcheck disable=SC2206  # PRESENCE_ARGS is a word list by design
PRESENCE+=(${PRESENCE_ARGS:-})

# per-server summary.md = harness results (lib/bench.py) + presence (lib/presence.py)
server_summary() {
  local d=$OUT/$1 files=()
  [ -s "$d/results.json" ] && files+=("$d/results.json")
  [ -s "$d/presence/presence.json" ] && files+=("$d/presence/presence.json")
  [ ${#files[@]} -gt 0 ] || return 0
  if python3 "$HERE/lib/report.py" "${files[@]}" >"$d/summary.md.new"; then
    mv "$d/summary.md.new" "$d/summary.md"
  else
    rm -f "$d/summary.md.new"
    echo "!! could not render $d/summary.md" >&2
  fi
}

echo "== results -> $OUT"
echo "== users: $USERS; tests: $TESTS; smoke: $SMOKE"

if [ $RUN_CONFAB = 1 ]; then
  if [ -z "${CONFAB_BIN:-}" ]; then
    echo "== building confab (cargo build --release -p confab)"
    (cd "$ROOT" && cargo build --release -p confab)
    CONFAB_BIN=$ROOT/target/release/confab
  fi
  export CONFAB_BIN
  echo "== provisioning $USERS users with 'confab user import'"
  python3 - "$USERS" "$CONFAB_RUNDIR/users.csv" "$DOMAIN" <<'PY'
import sys
n, path, dom = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(path, "w") as f:
    f.write("address,password,display_name\n")
    for i in range(n):
        f.write(f"user{i:04d}@{dom},pw,Bench User {i}\n")
PY
  t0=$SECONDS
  "$CONFAB_BIN" --data "$CONFAB_RUNDIR/data" user import "$CONFAB_RUNDIR/users.csv" </dev/null
  echo "   imported in $((SECONDS - t0)) s"
  echo "$((SECONDS - t0))" >"$OUT/confab-import-secs.txt"
  sed -e "s/@SIP@/$CONFAB_SIP/" -e "s/@DOMAIN@/$DOMAIN/" "$HERE/confab-bench.toml" >"$CONFAB_RUNDIR/bench.toml"
  "$HERE/lib/confab.sh" start
  if [ -n "$BTESTS" ]; then
    "$HERE/lib/harness.sh" "$CONFAB_SIP" "@$CONFAB_RUNDIR/confab.pid" --name confab \
      --out "$OUT/confab" --tests "$BTESTS" --domain "$DOMAIN" \
      --restart-cmd "$HERE/lib/confab.sh restart" \
      --server-version-cmd "$CONFAB_BIN --version" \
      "${HARNESS[@]}" "${EXTRA[@]}" || { echo "!! harness against confab failed (exit $?)" >&2; FAILED+=("confab harness"); }
  fi
  if [ $WANT_PRESENCE = 1 ]; then
    python3 "$HERE/lib/presence.py" "$CONFAB_SIP" "@$CONFAB_RUNDIR/confab.pid" --name confab \
      --out "$OUT/confab/presence" "${PRESENCE[@]}" \
      || { echo "!! presence against confab failed (exit $?)" >&2; FAILED+=("confab presence"); }
  fi
  "$HERE/lib/confab.sh" stop
  server_summary confab
  if [ $WANT_CHAT = 1 ]; then
    # Persistent Chat (no Kamailio counterpart): its own users and rooms, see bench/chat.sh
    "$HERE/chat.sh" $([ $SMOKE = 1 ] && echo --smoke) --out "$OUT/confab/chat" \
      || { echo "!! chat benchmark failed (exit $?)" >&2; FAILED+=("confab chat"); }
  fi
fi

if [ $RUN_KAM = 1 ]; then
  echo "== Kamailio: same $USERS users in its sqlite DB"
  "$HERE/kamailio/stop.sh" >/dev/null 2>&1 || true
  "$HERE/kamailio/mkusers.sh" "$USERS" "$RUNDIR/users.sqlite" "$DOMAIN"
  CTL="kamcmd -s unix:$RUNDIR/kamailio_ctl"
  if [ -n "$BTESTS" ]; then
    "$HERE/kamailio/start.sh"
    "$HERE/lib/harness.sh" 127.0.0.1:5060 "@$RUNDIR/kamailio.pid" --name kamailio \
      --out "$OUT/kamailio" --tests "$BTESTS" --domain "$DOMAIN" \
      --restart-cmd "$HERE/kamailio/restart.sh" \
      --info-cmd "$CTL core.shmmem; $CTL stats.get_statistics registered_users; $CTL core.tcp_info" \
      --server-version-cmd "kamailio -v | head -1" \
      "${HARNESS[@]}" "${EXTRA[@]}" || { echo "!! harness against kamailio failed (exit $?)" >&2; FAILED+=("kamailio harness"); }
    "$HERE/kamailio/stop.sh"
  fi
  if [ $WANT_PRESENCE = 1 ]; then
    # same config and workers plus the presence modules (kamailio.cfg #!ifdef
    # WITH_PRESENCE); a fresh process.  shm 4 GiB instead of 1 and the TLSF shm
    # allocator instead of q_malloc: every NOTIFY is a tm transaction kept in shm
    # until tm's wait timer, so a 2,000 x 20 ramp reached shm max_used 1.4 GiB, and
    # q_malloc's frees got slow enough with that many fragments to cost ~1.7x the
    # CPU at 850 PUBLISH/s and minutes of shutdown (see bench/README.md)
    if SHM_MB=${KAM_PRESENCE_SHM_MB:-4096} SHM_MANAGER=${KAM_PRESENCE_SHM_MANAGER:-tlsf} \
      KAM_DEFINES="${KAM_DEFINES:-} WITH_PRESENCE" "$HERE/kamailio/start.sh"; then
      python3 "$HERE/lib/presence.py" 127.0.0.1:5060 "@$RUNDIR/kamailio.pid" --name kamailio \
        --out "$OUT/kamailio/presence" "${PRESENCE[@]}" \
        || { echo "!! presence against kamailio failed (exit $?)" >&2; FAILED+=("kamailio presence"); }
      STOP_WAIT_SECS=120 "$HERE/kamailio/stop.sh" \
        || { echo "!! kamailio (presence) did not stop" >&2; FAILED+=("kamailio presence stop"); }
    else
      echo "!! kamailio with presence did not start (apt-get install kamailio-presence-modules?)" >&2
      FAILED+=("kamailio presence")
    fi
  fi
  server_summary kamailio
fi

if [ $WANT_MEDIATION = 1 ]; then
  # calls to and from a PSTN gateway, confab's Mediation role vs a Kamailio relay
  # (its own users, servers and SIPp gateway, see bench/mediation.sh)
  MED_ONLY=()
  [ $RUN_CONFAB = 0 ] && MED_ONLY=(--only kamailio)
  [ $RUN_KAM = 0 ] && MED_ONLY=(--only confab)
  "$HERE/mediation.sh" $([ $SMOKE = 1 ] && echo --smoke) "${MED_ONLY[@]}" --out "$OUT/mediation" \
    || { echo "!! mediation benchmark failed (exit $?)" >&2; FAILED+=("mediation"); }
fi

if [ "$MICRO" = 1 ]; then
  echo "== micro-benchmarks: taskset -c 1 cargo bench -p confab-sip --bench parse"
  (cd "$ROOT" && taskset -c 1 cargo bench -p confab-sip --bench parse 2>&1) | tee "$OUT/micro-full.txt" \
    | grep -E '^[a-zA-Z].*|thrpt|time:' >"$OUT/micro.txt" || { echo "!! cargo bench failed" >&2; FAILED+=("cargo bench"); }
fi

python3 "$HERE/lib/compare.py" "$OUT" $([ $SMOKE = 1 ] && echo --smoke)
if [ -s "$OUT/confab/chat/summary.md" ]; then
  { echo; sed 's/^# /## /' "$OUT/confab/chat/summary.md"; } >>"$OUT/summary.md"
  cat "$OUT/confab/chat/summary.md"
fi
if [ -s "$OUT/mediation/summary.md" ]; then
  { echo; sed 's/^# /## /; s/^## Every/### Every/' "$OUT/mediation/summary.md"; } >>"$OUT/summary.md"
fi
echo "== summary -> $OUT/summary.md"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "!! failed parts: ${FAILED[*]}" >&2
  exit 1
fi
