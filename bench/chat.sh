#!/usr/bin/env bash
# Persistent Chat benchmark: one confab node, users joined over XCCOS (UDP, digest),
# measured with crates/acceptance/src/bin/chat_load.rs (the load generator).
#
#   bench/chat.sh            full run (release build): 20,000 joined users over UDP
#                            (16,000 in one room, 3,000 in rooms of 150, 1,000 in rooms
#                            of 30: Lync's three model room sizes), Lync's model load
#                            (24 posts/s over the 150-member rooms; p50/p99/max
#                            post-to-delivery), the delivery ceiling of a 30-, a 150- and
#                            the 16,000-member room, server memory per joined user (PSS),
#                            the time of a 25-message backfill
#   bench/chat.sh --smoke    the same with 600 users (rooms of 300, 150 and 30), a few
#                            seconds per step (what bench/run.sh --smoke runs in CI)
#   bench/chat.sh --transport tcp --users 19000 --big 15000
#                            the same with every user on its own TCP connection, as
#                            real clients are; the open-file limit (20,000 per process
#                            here) bounds the users of both processes
#
# Options: --smoke, --transport udp|tcp (default udp), --users N (default 20000; smoke 600), --big N (members of the big room;
#          default 16000; smoke 300), --small N (users in rooms of 30; default users/20),
#          --model-secs S (default 60; smoke 5),
#          --step-secs S (ceiling steps; default 5; smoke 2), --out DIR (default
#          bench/results/<date>-chat)
# Env: CONFAB_BIN, CHAT_LOAD_BIN (skip the builds), CONFAB_SIP (127.0.0.1:5060),
#      CONFAB_TLS (127.0.0.1:15061), CONFAB_HTTP (127.0.0.1:18080)
# Writes OUT/chat.json (every figure and step) and OUT/summary.md (the table).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

SMOKE=0
TRANSPORT=udp
USERS=
BIG=
SMALL=
MODEL_SECS=
STEP_SECS=
OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --transport) TRANSPORT=$2; shift ;;
    --users) USERS=$2; shift ;;
    --big) BIG=$2; shift ;;
    --small) SMALL=$2; shift ;;
    --model-secs) MODEL_SECS=$2; shift ;;
    --step-secs) STEP_SECS=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$TRANSPORT" in udp | tcp) ;; *) echo "--transport udp or tcp" >&2; exit 2 ;; esac
if [ $SMOKE = 1 ]; then
  USERS=${USERS:-600}; BIG=${BIG:-300}; MODEL_SECS=${MODEL_SECS:-5}; STEP_SECS=${STEP_SECS:-2}
  MAX_RATE=64
else
  USERS=${USERS:-20000}; BIG=${BIG:-16000}; MODEL_SECS=${MODEL_SECS:-60}; STEP_SECS=${STEP_SECS:-5}
  MAX_RATE=4096
fi
SMALL=${SMALL:-$(( USERS / 20 ))}
[ $(( BIG + SMALL )) -lt "$USERS" ] || { echo "--big plus --small must be below --users" >&2; exit 2; }
MID=$(( USERS - SMALL ))   # users BIG..MID in rooms of 150, MID..USERS in rooms of 30
OUT=${OUT:-$HERE/results/$(date -u +%Y%m%d-%H%M%S)-chat$([ "$TRANSPORT" = tcp ] && echo -tcp || true)$([ $SMOKE = 1 ] && echo -smoke || true)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DOMAIN=bench.test
export CONFAB_SIP=${CONFAB_SIP:-127.0.0.1:5060}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/confab-chat-bench.XXXXXX")
export CONFAB_RUNDIR=$WORK/confab
mkdir -p "$CONFAB_RUNDIR"
cleanup() {
  "$HERE/lib/confab.sh" stop >/dev/null 2>&1 || true
  cp "$CONFAB_RUNDIR/confab.log" "$OUT/confab-server.log" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${CONFAB_BIN:-}" ]; then
  echo "== building confab (cargo build --release -p confab)"
  (cd "$ROOT" && cargo build --release -p confab)
  CONFAB_BIN=$ROOT/target/release/confab
fi
if [ -z "${CHAT_LOAD_BIN:-}" ]; then
  echo "== building the load generator (cargo build --release -p confab-acceptance --bin chat_load)"
  (cd "$ROOT" && cargo build --release -p confab-acceptance --bin chat_load)
  CHAT_LOAD_BIN=$ROOT/target/release/chat_load
fi
export CONFAB_BIN
C() { "$CONFAB_BIN" --data "$CONFAB_RUNDIR/data" "$@" </dev/null; }

echo "== $USERS users over $TRANSPORT (big room $BIG, $(( MID - BIG )) in rooms of 150, $SMALL in rooms of 30) -> $OUT"
python3 - "$USERS" "$CONFAB_RUNDIR/users.csv" "$DOMAIN" <<'PY'
import sys
n, path, dom = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(path, "w") as f:
    f.write("address,password,display_name\n")
    for i in range(n):
        f.write(f"user{i:04d}@{dom},pw,Bench User {i}\n")
PY
C user import "$CONFAB_RUNDIR/users.csv" >/dev/null
C chat policy set --global --enable >/dev/null
C chat category add Bench --allowed-members "@$DOMAIN" >/dev/null
C chat room add big --category Bench --privacy open --description "$BIG members" >/dev/null
N150=$(( (MID - BIG + 149) / 150 ))
for i in $(seq 0 $((N150 - 1))); do
  C chat room add "r150-$i" --category Bench --privacy open >/dev/null
done
N30=$(( (SMALL + 29) / 30 ))
for i in $(seq 0 $((N30 - 1))); do
  C chat room add "r30-$i" --category Bench --privacy open >/dev/null
done
URIS=()
while read -r name uri; do URIS+=(--uri "$name=$uri"); done < <(C chat room list --json | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    print(r["name"], r["uri"])')

sed -e "s/@SIP@/$CONFAB_SIP/" -e "s/@DOMAIN@/$DOMAIN/" \
  -e "s/127.0.0.1:15061/${CONFAB_TLS:-127.0.0.1:15061}/" -e "s/127.0.0.1:18080/${CONFAB_HTTP:-127.0.0.1:18080}/" \
  "$HERE/confab-bench.toml" >"$CONFAB_RUNDIR/bench.toml"
"$HERE/lib/confab.sh" start
PID=$(cat "$CONFAB_RUNDIR/confab.pid")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "== chat_load (join, model load, ceilings, backfill)"
"$CHAT_LOAD_BIN" --transport "$TRANSPORT" --server "$CONFAB_SIP" --domain "$DOMAIN" --password pw --user-prefix user \
  --users "$USERS" --room "big=0..$BIG" --room "r150-%=$BIG..$MID/150" \
  --room "r30-%=$MID..$USERS/30" "${URIS[@]}" \
  --server-pid "$PID" --model "r150-%:24:$MODEL_SECS" \
  --ceiling r30-0 --ceiling r150-0 --ceiling big --step-secs "$STEP_SECS" --max-rate "$MAX_RATE" \
  --backfill r150-0 --out "$OUT/chat.json" >/dev/null
"$HERE/lib/confab.sh" stop

python3 - "$OUT/chat.json" "$SMOKE" >"$OUT/summary.md" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
smoke = sys.argv[2] == "1"
j = d.get("join", {})
m = d.get("model", {})
c = d.get("ceiling", {})
b = d.get("backfill", {})
def f(x, nd=1):
    return "-" if x is None else (f"{x:,.{nd}f}" if isinstance(x, float) else f"{x:,}")
print("# Persistent Chat benchmark" + (" (smoke)" if smoke else ""))
print()
print("| figure | value |")
print("|---|---|")
print(f"| transport | {d.get('transport', 'udp').upper()}" + (" (one connection per user)" if d.get('transport') == 'tcp' else " (shared sockets)") + " |")
print(f"| joined users (wanted) | {f(j.get('joined'))} ({f(j.get('wanted'))}), {f(j.get('errors'))} errors, {f(j.get('joins_per_s'))} joins/s |")
print(f"| server memory per joined user (PSS) | {f(j.get('bytes_per_joined_user'), 0)} bytes |")
print(f"| Lync model load: {f(m.get('posts_per_s'), 0)} posts/s over {f(m.get('rooms'))} rooms | p50 {f(m.get('p50_ms'), 2)} ms, p99 {f(m.get('p99_ms'), 2)} ms, max {f(m.get('max_ms'), 2)} ms; {f(m.get('deliveries_per_s'), 0)} deliveries/s; server {f(m.get('server_cores'), 2)} cores |")
for room, r in sorted(c.items()):
    if not isinstance(r, dict):
        print(f"| ceiling {room} | {r} |")
        continue
    best = r.get("best") or {}
    print(f"| delivery ceiling, room {room} ({f(r.get('members'))} members, {f(r.get('fanout_per_post'))} deliveries/post) | {f(best.get('deliveries_per_s'), 0)} deliveries/s at {f(best.get('posts_per_s'))} posts/s (p99 {f(best.get('p99_ms'), 1)} ms) |")
print(f"| 25-message backfill (cmd:bccontext) | p50 {f(b.get('p50_ms'), 2)} ms, p99 {f(b.get('p99_ms'), 2)} ms, {f(b.get('messages_per_reply'))} messages/reply, {f(b.get('errors'))} errors |")
PY
cat "$OUT/summary.md"
JOINED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["join"]["joined"])' "$OUT/chat.json")
[ "$JOINED" -gt 0 ] || { echo "!! no user joined" >&2; exit 1; }
