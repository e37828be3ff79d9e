#!/usr/bin/env bash
# Samples every UDP socket's kernel receive queue and drop count, to tell whose
# socket a load step's latency sits in (the server's or the load generator's):
#
#   bench/lib/udp-queues.sh SECS [INTERVAL] > samples.txt
#
# Output: "T <unix time>" lines, each followed by "<local address> r=<bytes
# queued> d=<datagrams dropped>" per UDP socket (ss -uamn). Summarise with e.g.
#   awk '/^T/{t=$2} /r=/{split($2,a,"=");if(a[2]>m[$1])m[$1]=a[2];d[$1]=$3} END{for(k in m)print k,"max_queue="m[k],d[k]}' samples.txt
# (docs/performance.md, "Where a request waits").
set -euo pipefail
SECS=${1:?usage: udp-queues.sh SECS [INTERVAL]}
STEP=${2:-0.05}
end=$(( $(date +%s) + SECS ))
while [ "$(date +%s)" -lt "$end" ]; do
  echo "T $(date +%s.%N | cut -c1-14)"
  ss -uamnH | paste - - | awk '{
    r = ""; d = "";
    if (match($0, /skmem:\(r[0-9]+/)) r = substr($0, RSTART + 8, RLENGTH - 8);
    if (match($0, /,d[0-9]+\)/)) d = substr($0, RSTART + 2, RLENGTH - 3);
    print $4, "r=" r, "d=" d }'
  sleep "$STEP"
done
