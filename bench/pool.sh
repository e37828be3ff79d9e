#!/usr/bin/env bash
# What crossing front ends costs in an Enterprise pool (issue 12), one command:
#
#   bench/pool.sh [--smoke] [--out DIR] [--rates 'message=..;call=..'] [--step-secs S]
#
# Two confab front ends of one pool, fe01 on 127.0.0.2:5060 and fe02 on
# 127.0.0.3:5060 (UDP+TCP; TLS/HTTP on 15061/18080 of each address), share a
# fresh PostgreSQL database (created and dropped here). USERS users
# user0000..@bench.test / "pw" are imported; callees user0000..0099 are homed on
# fe01 and user1000..1099 on fe02 (rows in pool_user_home before the front ends
# start). lib/pool_bench.py then runs one ladder of fixed MESSAGE and call rates,
# each rate once to a callee on the same front end as the caller's and once to
# one on the other front end (see its header), and writes OUT/summary.md.
#
# Env: CONFAB_BIN (default: target/debug/confab, built with `cargo build -p confab`
#      if missing; point it at a release build for absolute figures),
#      CONFAB_BENCH_POSTGRES_URL (admin URL; default
#      postgres://confab:confab@127.0.0.1:5432/postgres).
# Needs: sipp, python3, psql, ss. SIPp and both front ends share the machine's cores.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SMOKE=0
OUT=
RATES=
STEP=
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --out) OUT=$2; shift ;;
    --rates) RATES=$2; shift ;;
    --step-secs) STEP=$2; shift ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for tool in sipp python3 psql ss; do
  command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
if [ $SMOKE = 1 ]; then
  RATES=${RATES:-"message=50,100;call=10,20"}
  STEP=${STEP:-3}
else
  RATES=${RATES:-"message=100,200,400,800,1600;call=25,50,100,200,400"}
  STEP=${STEP:-10}
fi
ADMIN=${CONFAB_BENCH_POSTGRES_URL:-postgres://confab:confab@127.0.0.1:5432/postgres}
OUT=${OUT:-$HERE/results/pool-$(date -u +%Y%m%d-%H%M%S)$([ $SMOKE = 1 ] && echo -smoke || true)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/confab-pool-bench.XXXXXX")
DB=confab_bench_pool_$$
URL=${ADMIN%/*}/$DB
USERS=2000
POOL=pool.bench.test
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  cp "$WORK"/fe0*.log "$OUT/" 2>/dev/null || true
  psql -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${CONFAB_BIN:-}" ]; then
  CONFAB_BIN=$ROOT/target/debug/confab
  [ -x "$CONFAB_BIN" ] || (cd "$ROOT" && cargo build -p confab)
fi
echo "== confab: $CONFAB_BIN; results -> $OUT"
psql -X -q -v ON_ERROR_STOP=1 "$ADMIN" -c "CREATE DATABASE $DB"
python3 - "$USERS" "$WORK/users.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("address,password,display_name\n")
    for i in range(n):
        f.write(f"user{i:04d}@bench.test,pw,Bench User {i}\n")
PY
"$CONFAB_BIN" --data "$WORK/cli" user import "$WORK/users.csv" --database "$URL" </dev/null >/dev/null
psql -X -q -v ON_ERROR_STOP=1 "$URL" -c "
  INSERT INTO pool_user_home (address, pool, member, assigned_ms)
  SELECT 'user' || lpad(i::text, 4, '0') || '@bench.test', '$POOL', 'fe01.bench.test', 0
  FROM generate_series(0, 99) AS i UNION ALL
  SELECT 'user' || lpad(i::text, 4, '0') || '@bench.test', '$POOL', 'fe02.bench.test', 0
  FROM generate_series(1000, 1099) AS i"

start_fe() { # name ip
  local name=$1 ip=$2
  sed -e "s/@DOMAIN@/bench.test/" -e "s/@SIP@/$ip:5060/" \
      -e "s/127.0.0.1:15061/$ip:15061/" -e "s/127.0.0.1:18080/$ip:18080/" \
      "$HERE/confab-bench.toml" >"$WORK/$name.toml"
  printf '\n[pool]\nenabled = true\nname = "%s"\nmember = "%s.bench.test"\n' "$POOL" "$name" >>"$WORK/$name.toml"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  "$CONFAB_BIN" --data "$WORK/$name" serve --config "$WORK/$name.toml" --database "$URL" \
    </dev/null >>"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do
    ss -lnu | grep -q "$ip:5060 " && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$WORK/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "== $name on $ip:5060, pid ${PIDS[-1]}"
}
start_fe fe01 127.0.0.2
start_fe fe02 127.0.0.3
STATUS="$CONFAB_BIN --data $WORK/cli pool status --database $URL"
for _ in $(seq 100); do
  [ "$($STATUS 2>/dev/null | grep -c ' live ')" -ge 2 ] && break
  sleep 0.2
done
$STATUS | grep -v "users homed on"
python3 "$HERE/lib/pool_bench.py" 127.0.0.2:5060 "${PIDS[0]}" 127.0.0.3:5060 "${PIDS[1]}" \
  --out "$OUT" --rates "$RATES" --step-secs "$STEP" --status-cmd "$STATUS"
echo "== summary: $OUT/summary.md"
