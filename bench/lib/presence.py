#!/usr/bin/env python3
"""Presence benchmark (PUBLISH + SUBSCRIBE/NOTIFY), SIPp driven, UDP.

    presence.py HOST:PORT PID|@PIDFILE --out DIR [--smoke] [options]

Model (Lync Server 2013 user model): P presentities, each watched by W others
(watcher k of presentity p is user (p+1+k) mod P, so every user both
publishes and watches).  The W*P subscriptions are made first (SUBSCRIBE with
digest) by one SIPp that then stays in every dialog answering its NOTIFYs; then PUBLISH runs at fixed rates for
fixed steps, each PUBLISH fanning out to W NOTIFYs:

  * "lync peak" step: P * 6 / 3600 PUBLISH/s (6 publications per user per
    hour, the peak of the model; the average is 4);
  * a ramp doubling the PUBLISH rate until a step fails, then bisection between
    the last passing and the failing rate (--precision, 10 %), to find the
    NOTIFY/s ceiling.

A step passes when < --fail-pct of the PUBLISHes fail, SIPp kept the rate,
PUBLISH p99 (whole procedure incl. challenge) <= --p99-max-ms and at least
(100 - fail-pct) % of the expected NOTIFYs reached the watchers within 3 s after
the step.

PUBLISH-to-NOTIFY latency: every --probe-every'th presentity is a probe.  The
publisher SIPp logs the wall-clock time at which it sends a probe's authenticated
PUBLISH, the watcher SIPp the time at which each NOTIFY of a probe's
subscriptions arrives (SIPp <log> actions, -trace_logs).  Each NOTIFY is matched
with the latest PUBLISH of its presentity sent before it; the step reports
p50/p99/max of these delays (reported, not a pass criterion).  With more
PUBLISHes per step than presentities a presentity is published again every
presentities / rate seconds, so a delay longer than that would be matched with
the later PUBLISH (under-reported); steps report that interval.

Writes DIR/presence.json and DIR/summary.md.  Users user0000.. / password pw
must exist.  bench/run.sh runs it with the same arguments against confab and
against Kamailio (kamailio.cfg started with -A WITH_PRESENCE).
"""
import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench as B  # noqa: E402
import sipstat as S  # noqa: E402

SIPP = HERE.parent / "sipp"


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target")
    p.add_argument("pid")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="", help="server label for the reports")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--domain", default="127.0.0.1")
    p.add_argument("--presentities", type=int, default=10000)
    p.add_argument("--watchers", type=int, default=20)
    p.add_argument("--subscribe-rate", type=float, default=1000)
    p.add_argument("--expires", type=int, default=3600)
    p.add_argument("--step-secs", type=int, default=20)
    p.add_argument("--max-publish-rate", type=float, default=5000)
    p.add_argument("--ramp-start", type=float, help="first ramp PUBLISH/s (default 2 x lync peak)")
    p.add_argument("--precision", type=float, default=0.1,
                   help="bisect the ceiling to this fraction of the rate after the first failing ramp step (0: no bisection)")
    p.add_argument("--fail-pct", type=float, default=0.1)
    p.add_argument("--p99-max-ms", type=float, default=100)
    p.add_argument("--probe-every", type=int, default=20,
                   help="every Nth presentity's PUBLISH -> NOTIFY delays are timed (0: none)")
    a = p.parse_args()
    if a.smoke:
        a.presentities, a.watchers, a.subscribe_rate = 200, 5, 500
        a.step_secs, a.max_publish_rate, a.ramp_start = 3, 200, 25
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    B.LOG = out / "run.log"
    srv = B.Server(a.target, a.pid)
    P, W = a.presentities, a.watchers
    if W >= P:
        raise SystemExit("--watchers must be < --presentities")
    ip = "127.0.0.1"
    res = {"name": a.name, "presentities": P, "watchers_per_presentity": W, "subscriptions": P * W,
           "transport": "udp", "args": vars(a), "steps": []}

    def save():
        (out / "presence.json").write_text(json.dumps(res, indent=1, default=str))

    def probe(q):
        return 1 if a.probe_every > 0 and q % a.probe_every == 0 else 0

    # CSVs
    pairs = out / "subs.csv"
    with open(pairs, "w") as f:
        f.write("SEQUENTIAL\n")
        for k in range(W):
            for q in range(P):
                w = "user%04d" % ((q + 1 + k) % P)
                f.write(f"{w};[authentication username={w} password=pw];user{q:04d};{probe(q)};\n")
    pubs = out / "publishers.csv"
    with open(pubs, "w") as f:
        f.write("SEQUENTIAL\n")
        for q in range(P):
            f.write(f"user{q:04d};[authentication username=user{q:04d} password=pw];{probe(q)};\n")

    def trace(name, calls=1000):
        # SIPp writes response times in batches of -rtt_freq (the last partial
        # batch is lost): small batches for short steps.  -trace_logs: the probes'
        # <log> lines (a log past -max_log_size would be started again: keep it large)
        return ["-trace_stat", "-stf", f"{name}_stat.csv", "-fd", 1, "-trace_err",
                "-error_file", f"{name}_errors.log", "-max_log_size", 2000000000,
                "-trace_logs", "-log_file", f"{name}_probes.log",
                "-trace_rtt", "-rtt_freq", min(1000, max(1, calls // 20))]

    sink = None
    sink_log = out / "subscribe" / "sub_probes.log"

    def notifies():
        return S.stat_int(sink.last(), "GenericCounter2(C)")

    try:
        B.log(f"== presence: {P} presentities x {W} watchers = {P * W} subscriptions")
        mem0 = srv.mem()
        d = out / "subscribe"
        n = P * W
        # the subscriber SIPp keeps every subscription (call) open and answers its
        # NOTIFYs: the server sends them over the SUBSCRIBE's flow
        args = [a.target, "-sf", SIPP / "presence_subscribe.xml", "-i", ip,
                "-p", B.free_port(ip), "-t", "u1", "-nostdin", "-buff_size", 4194304,
                "-inf", pairs, "-key", "domain", a.domain,
                "-key", "expires", a.expires, "-r", a.subscribe_rate, "-m", n,
                "-l", n + 1000] + trace("sub", n)
        sink = B.Sipp(d, args, "sub")
        meter = B.CpuMeter(srv, [])
        t0 = time.time()
        sink.start()
        end = t0 + n / a.subscribe_rate * 3 + 60
        ok = 0
        while time.time() < end and not sink.poll():
            time.sleep(1)
            ok = S.stat_int(sink.last(), "GenericCounter1(C)")
            failed = S.stat_int(sink.last(), "FailedCall(C)")
            if ok + failed >= n and notifies() >= ok:
                break
        time.sleep(2)
        cpu = meter.stop(extra_sipp_ticks=0)
        ok = S.stat_int(sink.last(), "GenericCounter1(C)")
        rtt = {}   # read at the end: SIPp writes its rtt file while running
        res["subscribe"] = {"ok": ok, "offered": n, "secs": round(time.time() - t0, 1),
                            "initial_notifies": notifies(), "cpu": cpu,
                            "rtt_ms": {k: S.summarize(v) for k, v in rtt.items()}}
        mem1 = srv.mem()
        res["mem_before_subscribe"], res["mem_subscribed"] = mem0, mem1
        res["pss_per_subscription_bytes"] = round((mem1["pss_kb"] - mem0["pss_kb"]) * 1024 / max(1, ok))
        B.log(f"  {ok}/{n} subscriptions ok, {notifies()} initial NOTIFYs; "
              f"PSS {mem0['pss_kb'] / 1024:.1f} -> {mem1['pss_kb'] / 1024:.1f} MiB")
        save()
        if ok < n * (1 - a.fail_pct / 100):
            res["error"] = f"only {ok} of {n} subscriptions succeeded"
            B.log("  " + res["error"])
            return 1

        def step(rate, tag):
            nonlocal_no = len(res["steps"]) + 1
            secs = a.step_secs
            m = max(1, int(round(rate * secs)))
            d = out / f"step{nonlocal_no:02d}-{tag}-r{rate:g}"
            # let the previous step drain first (an overloaded server is still sending
            # late NOTIFYs and retransmissions, which would count into this step)
            settle_end, last = time.time() + 60, notifies()
            while time.time() < settle_end:
                time.sleep(2.2)   # the sink's stat file is written once a second
                now = notifies()
                if now == last:
                    break
                last = now
            base = notifies()
            log_from = sink_log.stat().st_size if sink_log.exists() else 0
            args = [a.target, "-sf", SIPP / "presence_publish.xml", "-i", ip,
                    "-p", B.free_port(ip), "-t", "u1", "-nostdin", "-buff_size", 4194304,
                    "-inf", pubs, "-key", "domain", a.domain, "-r", f"{rate:.3f}", "-m", m,
                    "-l", max(1000, int(rate * 3)), "-timeout", secs * 3 + 30,
                    "-timeout_error", "-recv_timeout", 16000] + trace("pub", m)
            u = B.Sipp(d, args, "pub")
            meter = B.CpuMeter(srv, [sink.pid])
            t0 = time.time()
            u.start()
            u.wait(secs * 3 + 60)
            wall = time.time() - t0
            succ = S.stat_int(u.last(), "SuccessfulCall(C)")
            expected = succ * W
            end = time.time() + 3
            while notifies() - base < expected and time.time() < end:
                time.sleep(0.2)
            time.sleep(1.1)   # the sink's stat file is written once a second
            cpu = meter.stop(extra_sipp_ticks=u.rusage_ticks)
            got = notifies() - base
            lat = probe_delays(d / "pub_probes.log", sink_log, log_from, W)
            lat["republish_secs"] = round(P / rate, 2)
            rtt = S.read_rtt(d)
            rtts = {k: S.summarize(v) for k, v in rtt.items()}
            p99 = (rtts.get(1) or {}).get("p99")
            fail_pct = 100.0 * (m - succ) / m
            reasons = []
            if fail_pct >= a.fail_pct:
                reasons.append(f"PUBLISH failures {fail_pct:.3f}%")
            if wall > secs + max(2.0, 0.1 * secs) + 1:
                reasons.append(f"took {wall:.1f}s (rate not sustained)")
            if p99 is not None and p99 > a.p99_max_ms:
                reasons.append(f"PUBLISH p99 {p99:.0f}ms > {a.p99_max_ms}ms")
            if expected and got < expected * (1 - a.fail_pct / 100):
                reasons.append(f"NOTIFYs {got}/{expected}")
            r = {"tag": tag, "publish_rate": rate, "secs": secs, "publishes": m, "ok": succ,
                 "fail_pct": round(fail_pct, 4), "notifies_expected": expected,
                 "notifies_received": got, "notify_rate": round(got / max(secs, wall), 1),
                 "wall": round(wall, 2), "rtt_ms": rtts, "notify_delay_ms": lat,
                 "cpu": cpu, "mem": srv.mem(),
                 "pass": not reasons, "reasons": reasons}
            res["steps"].append(r)
            save()
            r1 = rtts.get(1) or {}
            B.log(f"  {tag} PUBLISH {rate:g}/s: {'PASS' if r['pass'] else 'FAIL'} ok={succ}/{m} "
                  f"NOTIFY {got}/{expected} ({r['notify_rate']}/s) p50/p99={r1.get('p50')}/{r1.get('p99')}ms "
                  f"PUBLISH->NOTIFY p50/p99={lat.get('p50')}/{lat.get('p99')}ms "
                  f"cpu srv={cpu['server_cores']:.2f} sipp={cpu['sipp_cores']:.2f} {'; '.join(reasons)}")
            time.sleep(1)
            return r

        peak = max(1.0, P * 6 / 3600)
        res["lync_peak"] = step(peak, "lync-peak")
        rate, best, failed = a.ramp_start or 2 * peak, None, None
        while rate <= a.max_publish_rate:
            r = step(rate, "ramp")
            if not r["pass"]:
                failed = rate
                break
            best = r
            rate *= 2
        # bisect between the last passing and the first failing rate (otherwise the
        # ceiling, and a ratio of two ceilings, is only known to a factor of 2)
        while best and failed and a.precision > 0 and failed - best["publish_rate"] > a.precision * best["publish_rate"]:
            r = step((best["publish_rate"] + failed) / 2, "bisect")
            if r["pass"]:
                best = r
            else:
                failed = r["publish_rate"]
        res["ceiling"] = best
        save()
        if best:
            B.log(f"== presence: NOTIFY/s ceiling >= {best['notify_rate']} "
                  f"(PUBLISH {best['publish_rate']:g}/s passed; next step failed or max reached)")
        return 0
    finally:
        if sink:
            sink.stop()
            if "subscribe" in res:
                rtt = S.read_rtt(out / "subscribe")
                res["subscribe"]["rtt_ms"] = {k: S.summarize(v) for k, v in rtt.items()}
        save()
        try:
            import report
            (out / "summary.md").write_text(report.render_presence(res) + "\n")
        except Exception as e:  # the JSON is the result; the Markdown is a convenience
            B.log(f"  summary.md not written: {e}")


def probe_log(path, start=0):
    """(presentity, unix time) of each line `X user t_s t_us` of a SIPp <log> file."""
    rows = []
    try:
        with open(path, "rb") as f:
            f.seek(start)
            for line in f:
                parts = line.split()
                if len(parts) < 4:
                    continue
                try:
                    t = float(parts[-2]) + float(parts[-1]) / 1e6
                except ValueError:
                    continue
                rows.append((parts[-3].decode(errors="replace"), t))
    except FileNotFoundError:
        pass
    return rows


def probe_delays(pub_log, sink_log, sink_from, watchers):
    """PUBLISH -> NOTIFY delays of the probe presentities in one step (ms)."""
    import bisect
    sent = {}
    for who, t in probe_log(pub_log):
        sent.setdefault(who, []).append(t)
    for ts in sent.values():
        ts.sort()
    delays = []
    for who, t in probe_log(sink_log, sink_from):
        ts = sent.get(who)
        if not ts:
            continue
        i = bisect.bisect_right(ts, t) - 1
        if i >= 0:
            delays.append((t - ts[i]) * 1000.0)
    delays.sort()
    n = sum(len(v) for v in sent.values())

    def pct(p):
        if not delays:
            return None
        return round(delays[min(len(delays) - 1, int(p / 100.0 * len(delays)))], 1)

    return {"probe_publishes": n, "notifies": len(delays), "expected": n * watchers,
            "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": round(delays[-1], 1) if delays else None}


if __name__ == "__main__":
    sys.exit(main())
