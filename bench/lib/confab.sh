#!/usr/bin/env bash
# Start / stop / restart the benchmark confab (not a service).  Used by
# bench/run.sh and, as --restart-cmd, by lib/bench.py before each hold test.
#
#   confab.sh start|stop|restart
#
# Env (set by run.sh): CONFAB_BIN, CONFAB_RUNDIR (pid file, log, data dir and
# bench.toml live there), CONFAB_SIP (127.0.0.1:5060).
set -euo pipefail
: "${CONFAB_BIN:?}" "${CONFAB_RUNDIR:?}"
SIP=${CONFAB_SIP:-127.0.0.1:5060}
PIDFILE=$CONFAB_RUNDIR/confab.pid
port=${SIP##*:}
host=${SIP%:*}

listening() {
  ss -lnu | grep -q "$host:$port " && ss -lnt | grep -q "$host:$port "
}

start() {
  if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "confab already running, pid $(cat "$PIDFILE")" >&2; exit 1
  fi
  # one descriptor per held TCP endpoint: take all we may
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  "$CONFAB_BIN" --data "$CONFAB_RUNDIR/data" serve --config "$CONFAB_RUNDIR/bench.toml" \
    </dev/null >>"$CONFAB_RUNDIR/confab.log" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 150); do
    listening && break
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -20 "$CONFAB_RUNDIR/confab.log" >&2; exit 1; }
    sleep 0.1
  done
  listening || { echo "confab did not bind $SIP; see $CONFAB_RUNDIR/confab.log" >&2; exit 1; }
  echo "confab started, pid $(cat "$PIDFILE") (log $CONFAB_RUNDIR/confab.log)"
}

stop() {
  [ -s "$PIDFILE" ] || return 0
  local pid
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    echo "confab $pid stopped"
  fi
  rm -f "$PIDFILE"
  for _ in $(seq 50); do ss -lnu | grep -q "$host:$port " || break; sleep 0.1; done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|restart" >&2; exit 2 ;;
esac
