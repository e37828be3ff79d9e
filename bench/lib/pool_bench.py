#!/usr/bin/env python3
"""What crossing front ends costs in an Enterprise pool (issue 12), side by side.

    pool_bench.py FE1 PID1 FE2 PID2 --out DIR [options]     (bench/pool.sh runs it)

Two groups of callees are registered by one SIPp UAS (127.0.0.1:UAS_PORT): the
"same" group, homed on fe01 (FE1) and registered there, and the "cross" group,
homed on fe02 (FE2) and registered there (bench/pool.sh homes them in the pool's
back end before the front ends start).  Every load step sends its MESSAGEs or
INVITEs to fe01 (callers authenticate there with digest), alternately to a
"same" callee (fe01 delivers itself) and, at the same rate, to a "cross" callee
(fe01 proxies to fe02, which delivers): one ladder of fixed rates, each rate run
for both, so both see the same machine load.  Per step: successful share,
SIPp's response-time p50/p99, CPU of both front ends.  DIR/pool.json has every
step, DIR/summary.md the table with cross/same ratios.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench as B   # noqa: E402
import sipstat as S   # noqa: E402


def member_mem(pid):
    m = S.mem_snapshot(S.proc_tree(pid))
    return {"pss_kb": m["pss_kb"], "rss_kb": m["rss_kb"]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fe1")
    p.add_argument("pid1", type=int)
    p.add_argument("fe2")
    p.add_argument("pid2", type=int)
    p.add_argument("--out", required=True)
    p.add_argument("--domain", default="bench.test")
    p.add_argument("--callees", type=int, default=100)
    p.add_argument("--same-first", type=int, default=0)
    p.add_argument("--cross-first", type=int, default=1000)
    p.add_argument("--callers", type=int, default=500)
    p.add_argument("--rates", default="message=100,200,400,800,1600;call=25,50,100,200,400")
    p.add_argument("--step-secs", type=int, default=10)
    p.add_argument("--call-hold-ms", type=int, default=200)
    p.add_argument("--status-cmd", help="command printing `confab pool status` (saved at each stage)")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    B.LOG = out / "run.log"
    B.UAC_PORTS = (20000, 32000)
    rates = {}
    for part in a.rates.split(";"):
        k, _, v = part.partition("=")
        rates[k.strip()] = [float(x) for x in v.split(",") if x.strip()]

    def bench(mode, first, register_at):
        args = B.parse_args([
            a.fe1, str(a.pid1), "--name", mode, "--out", str(out / mode), "--domain", a.domain,
            "--tests", "message,call", "--transports", "udp", "--callees", str(a.callees),
            "--callee-first", str(first), "--register-at", register_at,
            "--reg-users", str(a.callers), "--step-secs", str(a.step_secs),
            "--call-hold-ms", str(a.call_hold_ms), "--quiet-wait", "0", "--settle", "1",
            "--rtt-freq", "1"])
        return B.Bench(args)

    same = bench("same", a.same_first, a.fe1)
    cross = bench("cross", a.cross_first, a.fe2)
    fe2 = B.Server(a.fe2, str(a.pid2))
    res = {"meta": {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "args": vars(a),
                    "cpus": os.cpu_count()},
           "memory": {}, "status": {}, "steps": []}

    def snapshot(tag):
        time.sleep(2.5)   # registrations reach `pool status` with the next heartbeat
        res["memory"][tag] = {"fe01": member_mem(a.pid1), "fe02": member_mem(a.pid2)}
        if a.status_cmd:
            rc, text = B.sh(a.status_cmd, timeout=60)
            # the member table, without the lists of homed users
            res["status"][tag] = "\n".join(
                l for l in text.splitlines() if "users homed on" not in l)
        (out / "pool.json").write_text(json.dumps(res, indent=1, default=str))

    snapshot("idle")
    try:
        for test in ("message", "call"):
            if not rates.get(test):
                continue
            B.log(f"== {test}: registering both callee groups")
            same.register_callees("udp", 3600, f"callees-{test}")
            cross.register_callees("udp", 3600, f"callees-{test}")
            snapshot(f"{test}-registered")
            same.start_uas(test, "udp")
            cross.uas = same.uas
            try:
                for rate in rates[test]:
                    for mode, b in (("same", same), ("cross", cross)):
                        fe2_cpu0 = S.tree_cpu_ticks(fe2.pids())
                        t0 = time.time()
                        r = b.step(test, "udp", rate, a.step_secs, tag=f"pool-{mode}")
                        fe2_cores = (S.tree_cpu_ticks(fe2.pids()) - fe2_cpu0) / S.CLK_TCK / \
                            max(0.001, time.time() - t0)
                        r1 = (r.get("rtt_ms") or {}).get(1) or {}
                        res["steps"].append({
                            "test": test, "mode": mode, "rate": rate, "pass": r["pass"],
                            "ok_pct": round(100.0 * r["successful"] / max(1, r["calls"]), 3),
                            "achieved_rate": r["achieved_rate"], "p50_ms": r1.get("p50"),
                            "p99_ms": r1.get("p99"), "fe01_cores": r["cpu"]["server_cores"],
                            "fe02_cores": round(fe2_cores, 3), "other_cores": r["cpu"]["other_cores"],
                            "reasons": r["reasons"], "dir": f"{mode}/{r['dir']}"})
                        (out / "pool.json").write_text(json.dumps(res, indent=1, default=str))
            finally:
                same.stop_uas()
                cross.uas = None
                same.register_callees("udp", 0, f"uncallees-{test}")
                cross.register_callees("udp", 0, f"uncallees-{test}")
    finally:
        snapshot("end")
        res["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        (out / "pool.json").write_text(json.dumps(res, indent=1, default=str))
    md = render(res)
    (out / "summary.md").write_text(md)
    print(md)


def ratio(x, y):
    return f"{x / y:.2f}" if x and y else "-"


def render(res):
    lines = ["| test | rate/s | same: ok % / p50 / p99 ms | cross: ok % / p50 / p99 ms | "
             "p50 cross/same | fe01+fe02 CPU cores same / cross |",
             "|---|---|---|---|---|---|"]
    by = {}
    for s in res["steps"]:
        by.setdefault((s["test"], s["rate"]), {})[s["mode"]] = s
    best = {}
    for (test, rate), m in sorted(by.items()):
        s, c = m.get("same"), m.get("cross")
        if not s or not c:
            continue
        for mode, x in (("same", s), ("cross", c)):
            if x["pass"]:
                best[(test, mode)] = max(best.get((test, mode), 0), x["achieved_rate"])
        cell = lambda x: f"{x['ok_pct']} / {x['p50_ms']} / {x['p99_ms']}" + ("" if x["pass"] else " (fail)")
        cpu = lambda x: f"{x['fe01_cores'] + x['fe02_cores']:.2f}"
        lines.append(f"| {test} | {rate:g} | {cell(s)} | {cell(c)} | {ratio(c['p50_ms'], s['p50_ms'])} "
                     f"| {cpu(s)} / {cpu(c)} |")
    lines += ["", "| test | highest passing rate, same | cross | cross/same |", "|---|---|---|---|"]
    for test in ("message", "call"):
        sv, cv = best.get((test, "same")), best.get((test, "cross"))
        if sv or cv:
            lines.append(f"| {test} | {sv or 0:g} | {cv or 0:g} | {ratio(cv, sv)} |")
    lines += ["", "| stage | fe01 PSS kB | fe02 PSS kB |", "|---|---|---|"]
    for tag, m in res["memory"].items():
        lines.append(f"| {tag} | {m['fe01']['pss_kb']} | {m['fe02']['pss_kb']} |")
    for tag, text in res["status"].items():
        lines += ["", f"`confab pool status` ({tag}):", "", "```", text.strip(), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
