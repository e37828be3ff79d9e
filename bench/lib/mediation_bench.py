#!/usr/bin/env python3
"""Calls to and from a PSTN gateway through one server (bench/mediation.sh runs it
once for confab's Mediation role and once for Kamailio, then --compare).

    mediation_bench.py TARGET PID|@PIDFILE --out DIR --inbound-target HOST:PORT [options] [harness options]
    mediation_bench.py --compare DIR          # DIR/{confab,kamailio}/results.json -> DIR/summary.md

SIPp plays the gateway and the users (everything over UDP on loopback):

* outbound (`medout`): registered-user callers (userNNNN, digest 407 as in the
  `call` test) call E.164 numbers `+1206555NNNN` at TARGET; the server must get
  the call to the gateway, a SIPp UAS on --gw-port answering 200 (sipp/call_uas.xml);
  the caller holds the call for --call-hold-ms and hangs up.
* inbound (`medin`): the gateway, SIPp bound to its trunk address(es) 127.0.0.1:
  --gw-in-port (+1 per further --uac-procs), calls users' numbers `+1425555NNNN`
  at --inbound-target (confab: the Mediation role's port; Kamailio: its proxy
  port) with sipp/med_in_uac.xml; the server must reach userNNNN, registered by a
  SIPp UAS on --uas-port (sipp/call_uas.xml).

Each direction is ramped exactly like lib/bench.py's rate tests (doubling, bisection,
confirmation run; a step passes with < --fail-pct failed calls, SIPp p99 of call
setup <= --p99-max-ms, the rate sustained); --fixed-rate R instead runs one step
of each direction at R calls/s and fails (exit 1) unless it passes (the smoke).
Per step: calls, failures, SIPp p50/p99 of setup (RTD 1: INVITE -> 200, for
outbound including the 407 round trip), CPU of the server process tree, of SIPp,
and of everything else on the machine.
"""
import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench as B   # noqa: E402

B.SCEN["medin_uac"] = B.SIPP_DIR / "med_in_uac.xml"
B.RTD_NAMES["medout"] = {1: "INVITE->200 incl. 407", 2: "auth INVITE->200", 3: "BYE->200"}
B.RTD_NAMES["medin"] = {1: "INVITE->200", 2: "BYE->200"}
B.UNIT["medout"] = B.UNIT["medin"] = "calls/s"
NAMES = {"medout": "outbound: user -> gateway", "medin": "inbound: gateway -> user"}


def out_number(k):
    return "+1206555%04d" % k


def user_number(i):
    """The line URI of userNNNN (bench/mediation.sh assigns them; Kamailio's
    route[PSTN] maps them back)."""
    return "+1425555%04d" % i


class MedBench(B.Bench):
    CALL_TESTS = ("call", "medout", "medin")

    def __init__(self, a, m):
        super().__init__(a)
        self.m = m
        self.results["mediation"] = {"args": vars(m)}

    def uac_plan(self, test, transport, procs):
        a = self.a
        callers = a.callee_first + 2 * a.callees
        if test == "medout":
            p = self.out / "csv" / "medout.csv"
            if not p.exists():
                with open(p, "w") as f:
                    f.write("SEQUENTIAL\n")
                    for k in range(a.reg_users):
                        u = "user%04d" % (callers + k)
                        f.write(f"{u};[authentication username={u} password={a.password}];"
                                f"{out_number(k)};\n")
            return B.SCEN["call_uac"], p, None, None
        if test == "medin":
            p = self.out / "csv" / "medin.csv"
            first, n = self.callee_range(transport)
            if not p.exists():
                with open(p, "w") as f:
                    f.write("SEQUENTIAL\n")
                    for k in range(max(n, a.reg_users)):
                        f.write(f"{user_number(first + k % n)};{out_number(k)};\n")
            ports = [self.m.gw_in_port + i for i in range(procs)]
            return B.SCEN["medin_uac"], p, self.m.inbound_target, ports
        return super().uac_plan(test, transport, procs)

    def start_gateway(self):
        """The gateway's answering side: call_uas.xml on --gw-port."""
        if B.port_busy(self.ip, self.m.gw_port):
            raise SystemExit(f"gateway port {self.ip}:{self.m.gw_port} is busy")
        d = self.out / "uas" / f"gateway-{time.strftime('%H%M%S')}"
        args = ["-sf", B.SCEN["call_uas"], "-i", self.ip, "-p", self.m.gw_port, "-t", "u1",
                "-nostdin", "-buff_size", 4194304, "-l", 200000, "-max_socket", 5000] + \
            self.trace_args("uas", rtt=False, fd=5)
        self.uas = B.Sipp(d, args, "uas").start()
        time.sleep(1.0)
        if self.uas.poll():
            raise SystemExit(f"gateway UAS failed to start, see {d}")

    def direction(self, test):
        a, m = self.a, self.m
        B.log(f"== {NAMES[test]}")
        if test == "medout":
            self.start_gateway()
        else:
            self.register_callees("udp", 3600, "callees-medin")
            self.start_uas("call", "udp")
        try:
            if m.fixed_rate:
                r = self.step(test, "udp", m.fixed_rate, a.step_secs, tag="fixed")
                res = {"max_rate": r["achieved_rate"] if r["pass"] else 0, "confirmed": r["pass"],
                       "confirm": r, "fixed_rate": m.fixed_rate}
            else:
                res = self.ramp(test, "udp")
        finally:
            self.stop_uas()
            if test == "medin":
                self.register_callees("udp", 0, "uncallees-medin")
        self.results["throughput"].setdefault(test, {})["udp"] = res
        self.save()
        return res

    def run_all(self):
        self.check_server()
        self.meta()
        B.log(f"results -> {self.out}")
        self.calib("start")
        ok = True
        try:
            for test in self.m.directions:
                res = self.direction(test)
                # the smoke's one step must pass; a ramp without a confirmed
                # rate is a result, not a harness failure
                ok = ok and (bool(res.get("confirmed")) or not self.m.fixed_rate)
            self.calib("end")
        finally:
            self.stop_uas()
            self.results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
            self.save()
        return ok


# ------------------------------------------------------------------ report
def fmt(x, nd=0):
    if x is None:
        return "-"
    return f"{x:,.{nd}f}"


def step_row(s):
    r1 = (s.get("rtt_ms") or {}).get("1") or (s.get("rtt_ms") or {}).get(1) or {}
    c = s["cpu"]
    verdict = "pass" if s["pass"] else "FAIL: " + "; ".join(s["reasons"])
    return (f"{s['rate']:g} | {s['secs']} | {s['successful']}/{s['calls']} | "
            f"{fmt(r1.get('p50'))} / {fmt(r1.get('p99'))} | {c['server_cores']:.2f} | "
            f"{c['sipp_cores']:.2f} | {c['other_cores']:.2f} | {verdict}")


def compare(d):
    d = Path(d)
    runs = {}
    for name in ("confab", "kamailio"):
        f = d / name / "results.json"
        if f.exists():
            runs[name] = json.loads(f.read_text())
    lines = ["# Calls through the Mediation role (confab) and a Kamailio relay, to one SIPp gateway", ""]
    any_run = next(iter(runs.values()), None)
    if any_run:
        mt = any_run["meta"]
        ma = any_run.get("mediation", {}).get("args", {})
        lines += [f"Started {mt.get('started')}; {mt.get('cpus')} CPUs ({mt.get('cpu_model')}); "
                  f"load average at start {mt.get('loadavg_at_start')}; "
                  f"call hold {mt['args'].get('call_hold_ms')} ms; SIPp UAC processes per step: "
                  f"{mt['args'].get('uac_procs')}; {'fixed rate ' + str(ma.get('fixed_rate')) + ' calls/s' if ma.get('fixed_rate') else 'ramp'}.", ""]
    lines += ["| direction | confab calls/s | Kamailio calls/s | confab / Kamailio | "
              "p99 setup ms confab / Kamailio | server CPU cores confab / Kamailio |",
              "|---|---|---|---|---|---|"]
    for test in ("medout", "medin"):
        cells = {}
        for name, r in runs.items():
            t = (r.get("throughput", {}).get(test) or {}).get("udp")
            if not t:
                continue
            conf = t.get("confirm") or {}
            r1 = (conf.get("rtt_ms") or {}).get("1") or {}
            cells[name] = (t.get("max_rate") or 0, r1.get("p99"), (conf.get("cpu") or {}).get("server_cores"),
                           t.get("confirmed"))
        if not cells:
            continue
        c, k = cells.get("confab"), cells.get("kamailio")
        ratio = f"{c[0] / k[0]:.2f}" if c and k and k[0] else "-"
        show = lambda x: (fmt(x[0]) + ("" if x[3] else " (unconfirmed)")) if x else "-"
        lines.append(f"| {NAMES[test]} | {show(c)} | {show(k)} | {ratio} | "
                     f"{fmt(c[1]) if c else '-'} / {fmt(k[1]) if k else '-'} | "
                     f"{fmt(c[2], 2) if c else '-'} / {fmt(k[2], 2) if k else '-'} |")
    lines += ["", "calls/s: the highest rate whose confirmation run passed (< 0.1 % failed calls, "
              "SIPp p99 of call setup within the limit, rate sustained); p99 setup and CPU "
              "from that run. Setup = INVITE to 200 at the caller (outbound: including the 407 "
              "challenge round trip; SIPp's clock has 4 ms steps here)."]
    # CPU at the same offered rate: less sensitive to scheduling stalls than the
    # ceilings on a shared machine (first passing step of each rate per server)
    if len(runs) == 2:
        lines += ["", "Server CPU at rates both servers passed (cores; first passing step of each rate):", "",
                  "| direction | rate/s | confab cores | Kamailio cores | confab / Kamailio |", "|---|---|---|---|---|"]
        for test in ("medout", "medin"):
            cpu = {}
            for name, r in runs.items():
                for st in r.get("steps", []):
                    if st["test"] == test and st["pass"]:
                        cpu.setdefault(name, {}).setdefault(st["rate"], st["cpu"]["server_cores"])
            common = sorted(set(cpu.get("confab", {})) & set(cpu.get("kamailio", {})))
            for rate in common:
                c, k = cpu["confab"][rate], cpu["kamailio"][rate]
                lines.append(f"| {test} | {rate:g} | {c:.2f} | {k:.2f} | {c / k:.2f} |" if k else
                             f"| {test} | {rate:g} | {c:.2f} | {k:.2f} | - |")
    for name, r in runs.items():
        lines += ["", f"## Every step, {name}", "",
                  "| direction | rate/s | secs | ok/calls | p50 / p99 setup ms | server cores | "
                  "SIPp cores | other cores | verdict |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {s['test']} | {step_row(s)} |" for s in r.get("steps", [])]
    md = "\n".join(lines) + "\n"
    (d / "summary.md").write_text(md)
    print(md)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--compare":
        compare(sys.argv[2])
        return 0
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--inbound-target", required=True, metavar="HOST:PORT",
                   help="where the gateway sends inbound calls")
    p.add_argument("--gw-port", type=int, default=5062, help="the gateway's answering port")
    p.add_argument("--gw-in-port", type=int, default=5063,
                   help="the gateway's first calling port (one per --uac-procs)")
    p.add_argument("--directions", default="medout,medin")
    p.add_argument("--fixed-rate", type=float, default=0,
                   help="one step per direction at this rate instead of a ramp (smoke)")
    m, rest = p.parse_known_args(sys.argv[1:])
    m.directions = [x for x in m.directions.split(",") if x]
    a = B.parse_args(rest)
    lo, _, hi = a.uac_port_range.partition("-")
    B.UAC_PORTS = (int(lo), int(hi))
    Path(a.out).mkdir(parents=True, exist_ok=True)
    B.LOG = Path(a.out) / "run.log"
    ok = MedBench(a, m).run_all()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
