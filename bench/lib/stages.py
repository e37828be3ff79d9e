#!/usr/bin/env python3
"""Summarises confab's stage histograms from a /metrics dump (a file, or a URL).

    bench/lib/stages.py FILE|http://HOST:PORT/metrics [BEFORE-FILE]

Prints, per stage of confab_sip_stage_seconds (queue, core, receive_to_send),
the count and the p50/p99 estimated from the buckets (upper bound of the bucket
holding the quantile), and the queue gauges.  With BEFORE-FILE, the difference
of the two dumps (what happened between them).
"""
import re
import sys
import urllib.request


def load(src):
    if src.startswith("http"):
        return urllib.request.urlopen(src, timeout=5).read().decode()
    with open(src) as f:
        return f.read()


def parse(text):
    buckets, gauges = {}, {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r'confab_sip_stage_seconds_bucket\{stage="(\w+)",le="([^"]+)"\} (\S+)', line)
        if m:
            buckets.setdefault(m[1], []).append((float(m[2]), float(m[3])))
            continue
        name, _, value = line.rpartition(" ")
        if any(k in name for k in ("queue_depth", "udp_socket", "batch_max")):
            gauges[name] = float(value)
    return buckets, gauges


def quantile(bs, q):
    total = bs[-1][1]
    if total <= 0:
        return None
    for le, c in bs:
        if c >= q * total:
            return le
    return float("inf")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    after, ga = parse(load(sys.argv[1]))
    if len(sys.argv) > 2:
        before, gb = parse(load(sys.argv[2]))
        for st, bs in after.items():
            prev = dict(before.get(st, []))
            after[st] = [(le, c - prev.get(le, 0)) for le, c in bs]
        if "confab_udp_socket_drops_total" in gb:
            ga["confab_udp_socket_drops_total"] -= gb["confab_udp_socket_drops_total"]
    for st in ("queue", "core", "receive_to_send"):
        bs = after.get(st)
        if not bs:
            continue
        fmt = lambda v: "-" if v is None else ("> 2 s" if v == float("inf") else f"<= {v * 1000:g} ms")
        print(f"{st:16} n={int(bs[-1][1]):>9}  p50 {fmt(quantile(bs, 0.5)):>11}  p99 {fmt(quantile(bs, 0.99)):>11}")
    for k, v in sorted(ga.items()):
        print(f"{k} {v:g}")


if __name__ == "__main__":
    main()
