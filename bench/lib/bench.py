#!/usr/bin/env python3
"""Generic SIP registrar/proxy benchmark driven by SIPp.

    run.sh HOST:PORT PID|@PIDFILE [options]        (see README.md)

The server under test is only known by its address and its process id (or a
pid file, re-read after --restart-cmd), so the same harness measures Kamailio
today and any other server later.  Everything runs on loopback; SIPp listens
only on the UAS port (default 5061) or on an OS-assigned ephemeral port.
"""
import argparse
import json
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
SIPP_DIR = BENCH / "sipp"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(SIPP_DIR))
import gen_csv   # noqa: E402
import sipstat as S   # noqa: E402

SCEN = {
    "register": SIPP_DIR / "register.xml",
    "message_uac": SIPP_DIR / "message_uac.xml",
    "message_uas": SIPP_DIR / "message_uas.xml",
    "call_uac": SIPP_DIR / "call_uac.xml",
    "call_uas": SIPP_DIR / "call_uas.xml",
    "hold": SIPP_DIR / "hold_register.xml",
}
# what each RTD number means per test (see the scenario headers)
RTD_NAMES = {
    "register": {1: "REGISTER->200 incl. 401", 2: "auth REGISTER->200"},
    "message": {1: "MESSAGE->200 incl. 407", 2: "auth MESSAGE->200"},
    "call": {1: "INVITE->200 incl. 407", 2: "auth INVITE->200", 3: "BYE->200"},
    "hold": {1: "initial REGISTER->200", 2: "refresh REGISTER->200"},
}
UNIT = {"register": "REGISTER/s", "message": "MESSAGE/s", "call": "calls/s"}
LOG = None


def log(msg):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, flush=True)
    if LOG:
        with open(LOG, "a") as f:
            f.write(line + "\n")


def kv_list(s, cast=float):
    out = {}
    for part in s.split(","):
        if part.strip():
            k, _, v = part.partition("=")
            out[k.strip()] = cast(v)
    return out


UAC_PORTS = (20000, 32000)
# Contact port of the register test's bindings (+ the UAC process index), see Bench.step.
REG_CONTACT_PORT = 45000


def free_port(ip):
    """A port for a SIPp UAC's own socket, free for UDP and TCP on ip.

    Taken from UAC_PORTS (--uac-port-range), which must lie below the kernel's
    ephemeral range (net.ipv4.ip_local_port_range): otherwise the outgoing
    connections of SIPp processes already running can grab it between our
    check and SIPp's bind().  SIPp cannot be told to pick a port itself (without
    -p it scans 5060-5119)."""
    import random
    lo, hi = UAC_PORTS
    for _ in range(200):
        port = random.randrange(lo, hi)
        if not port_busy(ip, port):
            return port
    raise RuntimeError(f"no free port in {lo}-{hi}")


def port_busy(ip, port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return True
        finally:
            s.close()
    return False


def sh(cmd, timeout=120):
    try:
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
        return r.returncode, (r.stdout + r.stderr)
    except subprocess.TimeoutExpired:
        return 124, "timeout"


def fmt_rate(r):
    return f"{r:.0f}"


# --------------------------------------------------------------------------
class Server:
    def __init__(self, target, pidspec):
        host, _, port = target.rpartition(":")
        self.host, self.port = host, int(port)
        self.pidfile = pidspec[1:] if pidspec.startswith("@") else None
        self._pid = None if self.pidfile else int(pidspec)

    @property
    def pid(self):
        if self.pidfile:
            try:
                return int(Path(self.pidfile).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return None
        return self._pid

    def alive(self):
        p = self.pid
        return bool(p) and os.path.exists(f"/proc/{p}")

    def pids(self):
        return S.proc_tree(self.pid)

    def mem(self):
        return S.mem_snapshot(self.pids())

    def nofile(self):
        return S.nofile_limit(self.pid)


class CpuMeter:
    """CPU used by the server tree, SIPp processes and the whole machine."""

    def __init__(self, server, sipp_pids=()):
        self.server, self.sipp_pids = server, list(sipp_pids)
        self.t0 = time.time()
        self.srv0 = S.tree_cpu_ticks(server.pids())
        self.sipp0 = {p: S.cpu_ticks(p) for p in self.sipp_pids}
        self.sys0 = S.system_cpu()

    def stop(self, extra_sipp_ticks=0):
        secs = time.time() - self.t0
        srv = (S.tree_cpu_ticks(self.server.pids()) - self.srv0) / S.CLK_TCK / secs
        sipp = sum(S.cpu_ticks(p) - t for p, t in self.sipp0.items())
        sipp = (sipp + extra_sipp_ticks) / S.CLK_TCK / secs
        sysd = S.cpu_delta_cores(self.sys0, S.system_cpu(), secs)
        return {"secs": round(secs, 2), "server_cores": round(srv, 3),
                "sipp_cores": round(sipp, 3), "system_busy_cores": round(sysd["busy"], 3),
                "softirq_cores": round(sysd["softirq"], 3), "steal_cores": round(sysd["steal"], 3),
                "other_cores": round(max(0.0, sysd["busy"] - srv - sipp), 3)}


def background_cores(secs=1.0, exclude=()):
    """Busy cores on the machine outside the given pids, over `secs`."""
    ex = list(exclude)
    a, ta = S.system_cpu(), S.tree_cpu_ticks(ex)
    time.sleep(secs)
    b, tb = S.system_cpu(), S.tree_cpu_ticks(ex)
    busy = S.cpu_delta_cores(a, b, secs)["busy"]
    return max(0.0, busy - (tb - ta) / S.CLK_TCK / secs)


def calibrate():
    """Fixed single-threaded CPU work, to compare machine speed between runs
    (a VM's vCPUs can be much slower at times without any visible steal)."""
    import hashlib
    b = b"x" * (1 << 20)
    t0 = time.perf_counter()
    for _ in range(200):
        hashlib.sha256(b).digest()
    t1 = time.perf_counter()
    n = 0
    for i in range(2_000_000):
        n += i
    t2 = time.perf_counter()
    return {"sha256_200MiB_ms": round((t1 - t0) * 1000, 1),
            "pyloop_2M_ms": round((t2 - t1) * 1000, 1)}


# --------------------------------------------------------------------------
class Sipp:
    """One SIPp process run in its own directory."""

    def __init__(self, workdir, args, name="uac"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.args = ["sipp"] + [str(a) for a in args]
        self.proc = None
        self.rc = None
        self.rusage_ticks = 0
        self.t0 = self.t1 = None

    def start(self):
        (self.dir / f"{self.name}.cmd").write_text(shlex.join(self.args) + "\n")
        self.out = open(self.dir / f"{self.name}.stdout", "w")
        self.t0 = time.time()
        self.proc = subprocess.Popen(self.args, cwd=self.dir, stdout=self.out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def poll(self):
        """Reap with wait4 so the child's CPU time is known; True when done."""
        if self.rc is not None:
            return True
        pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return False
        self._done(status, ru)
        return True

    def _done(self, status, ru):
        self.t1 = time.time()
        self.rc = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.rc
        self.rusage_ticks = (ru.ru_utime + ru.ru_stime) * S.CLK_TCK
        self.out.close()

    def wait(self, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if self.poll():
                return self.rc
            time.sleep(0.1)
        log(f"  {self.name}: still running after {timeout:.0f}s, killing pid {self.pid}")
        self.kill()
        return self.rc

    def stop(self, grace=5):
        """SIGUSR1 = SIPp graceful quit; then SIGTERM/SIGKILL (our pid only)."""
        if self.poll():
            return self.rc
        for sig, wait in ((signal.SIGUSR1, grace), (signal.SIGTERM, 3), (signal.SIGKILL, 3)):
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            end = time.time() + wait
            while time.time() < end:
                if self.poll():
                    return self.rc
                time.sleep(0.1)
        return self.rc

    def kill(self):
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status, ru = os.wait4(self.proc.pid, 0)
        self._done(status, ru)

    def stat_rows(self):
        return S.read_stat_csv(self.dir / f"{self.name}_stat.csv")

    def last(self):
        rows = self.stat_rows()
        return rows[-1] if rows else {}


# --------------------------------------------------------------------------
class Bench:
    def __init__(self, a):
        self.a = a
        self.srv = Server(a.target, a.pid)
        self.out = Path(a.out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "csv").mkdir(exist_ok=True)
        self.results = {"meta": {}, "hold": [], "throughput": {}, "probe": {}, "steps": [],
                        "calibration": []}
        self.ip = a.local_ip
        self.step_no = 0
        self.uas = None

    # ---------------------------------------------------------------- utils
    def save(self):
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1, default=str))

    def calib(self, tag):
        c = calibrate()
        c["tag"] = tag
        c["time"] = time.strftime("%H:%M:%S")
        self.results["calibration"].append(c)
        log(f"  calibration ({tag}): sha256 200 MiB {c['sha256_200MiB_ms']} ms, "
            f"python loop {c['pyloop_2M_ms']} ms")
        self.save()

    def check_server(self):
        if not self.srv.alive():
            raise SystemExit(f"server pid {self.srv.pid} is not running")

    def info(self, tag):
        if not self.a.info_cmd:
            return None
        rc, out = sh(self.a.info_cmd, timeout=30)
        (self.out / "info").mkdir(exist_ok=True)
        (self.out / "info" / f"{tag}.txt").write_text(out)
        return out

    def base_args(self, transport, lport, scenario, csv=None, target=None):
        mode = {"udp": "u1", "tcp": self.a.tcp_mode}[transport]
        args = [target or f"{self.srv.host}:{self.srv.port}", "-sf", scenario, "-i", self.ip,
                "-p", lport, "-t", mode, "-nostdin", "-buff_size", 4194304,
                "-key", "domain", self.a.domain]
        if csv:
            args += ["-inf", csv]
        if mode == "tn":
            args += ["-max_socket", 1000]
        return args

    def trace_args(self, name, rtt=True, fd=1):
        a = ["-trace_stat", "-stf", f"{name}_stat.csv", "-fd", fd,
             "-trace_err", "-error_file", f"{name}_errors.log", "-max_log_size", 10000000,
             "-trace_screen", "-screen_file", f"{name}_screen.log"]
        if rtt:
            a += ["-trace_rtt", "-rtt_freq", self.a.rtt_freq]
        return a

    def wait_quiet(self):
        """Wait (bounded) until other processes leave the CPU mostly idle."""
        if self.a.quiet_wait <= 0:
            return None
        excl = self.srv.pids() + ([self.uas.pid] if self.uas else [])
        end = time.time() + self.a.quiet_wait
        bg = background_cores(1.0, excl)
        while bg > self.a.bg_max_cores and time.time() < end:
            log(f"  machine busy ({bg:.2f} cores used by other processes), waiting ...")
            time.sleep(4)
            bg = background_cores(1.0, excl)
        return round(bg, 3)

    # ------------------------------------------------------ callee handling
    def csv_users(self, name, first, count):
        p = self.out / "csv" / f"{name}.csv"
        if not p.exists():
            gen_csv.write_users(p, first, count, self.a.password)
        return p

    def csv_pairs(self, name, cfirst, ccount, tfirst, tcount):
        p = self.out / "csv" / f"{name}.csv"
        if not p.exists():
            gen_csv.write_pairs(p, cfirst, ccount, tfirst, tcount, self.a.password)
        return p

    def callee_range(self, transport):
        c = self.a.callees
        return self.a.callee_first + (0 if transport == "udp" else c), c

    def register_callees(self, transport, expires, tag):
        first, n = self.callee_range(transport)
        csv = self.csv_users(f"callees_{transport}", first, n)
        d = self.out / "setup" / f"{tag}-{transport}"
        mode = "tn" if transport == "tcp" else "u1"
        registrar = self.a.register_at or f"{self.srv.host}:{self.srv.port}"
        args = [registrar, "-sf", SCEN["register"], "-i", self.ip,
                "-p", self.a.uas_port, "-t", mode, "-nostdin", "-inf", csv,
                "-key", "domain", self.a.domain, "-key", "expires", expires,
                "-key", "contact_port", self.a.uas_port, "-m", n, "-r", 200,
                "-timeout", 60, "-timeout_error", "-recv_timeout", 10000] + \
            (["-max_socket", 1000] if mode == "tn" else []) + self.trace_args("reg", rtt=False)
        s = Sipp(d, args, "reg").start()
        s.wait(90)
        ok = S.stat_int(s.last(), "SuccessfulCall(C)")
        if expires and ok != n:
            raise SystemExit(f"could not register the {n} {transport} callees ({ok} ok), see {d}")
        return ok

    def start_uas(self, test, transport):
        if port_busy(self.ip, self.a.uas_port):
            raise SystemExit(f"UAS port {self.ip}:{self.a.uas_port} is busy")
        d = self.out / "uas" / f"{test}-{transport}-{time.strftime('%H%M%S')}"
        mode = "t1" if transport == "tcp" else "u1"
        args = ["-sf", SCEN[f"{test}_uas"], "-i", self.ip, "-p", self.a.uas_port, "-t", mode,
                "-nostdin", "-buff_size", 4194304, "-l", 200000, "-max_socket", 5000] + \
            self.trace_args("uas", rtt=False, fd=5)
        self.uas = Sipp(d, args, "uas").start()
        time.sleep(1.0)
        if self.uas.poll():
            raise SystemExit(f"UAS failed to start, see {d}")

    def stop_uas(self):
        if self.uas:
            self.uas.stop()
            self.uas = None

    # ----------------------------------------------------------- one step
    # tests whose UAC holds the call for --call-hold-ms (SIPp -d)
    CALL_TESTS = ("call",)

    def uac_plan(self, test, transport, procs):
        """What a step's UACs run: (scenario, CSV, target or None for the server
        under test, local ports or None for free ones).  lib/mediation_bench.py
        overrides it for its own tests."""
        a = self.a
        if test == "register":
            csv = self.csv_users("reg_users", a.callee_first + 2 * a.callees, a.reg_users)
            return SCEN["register"], csv, None, None
        first, n = self.callee_range(transport)
        csv = self.csv_pairs(f"pairs_{transport}", a.callee_first + 2 * a.callees, a.reg_users, first, n)
        return SCEN[f"{test}_uac"], csv, None, None

    def step(self, test, transport, rate, secs, capture=False, tag="ramp"):
        """Run one fixed-rate, fixed-duration load step; return its metrics."""
        a = self.a
        self.check_server()
        self.step_no += 1
        name = f"{self.step_no:03d}-{test}-{transport}-r{fmt_rate(rate)}-{secs}s"
        d = self.out / "steps" / name
        bg = self.wait_quiet()
        m = max(1, int(round(rate * secs)))
        procs = max(1, a.uac_procs)
        hold_s = a.call_hold_ms / 1000.0 if test in self.CALL_TESTS else 0.0
        lim = max(2000, int(rate * (3 + hold_s)))
        uacs = []
        scen, csv, target, ports = self.uac_plan(test, transport, procs)
        cap = None
        if capture:
            cap = self.start_capture(d)
        for i in range(procs):
            lport = ports[i] if ports else free_port(self.ip)
            mi = m // procs + (1 if i < m % procs else 0)
            args = self.base_args(transport, lport, scen, csv, target) + [
                "-r", f"{rate / procs:.3f}", "-m", mi, "-l", max(1000, lim // procs),
                "-timeout", int(secs * 3 + 30), "-timeout_error", "-recv_timeout", 16000]
            if test == "register":
                # The Contact names a fixed port per UAC process, not the step's
                # own port: a user then keeps one binding per process over the
                # whole ramp instead of gaining one per step (confab caps an
                # address of record at 32 contacts; Kamailio would just grow).
                args += ["-key", "expires", a.reg_expires, "-key", "contact_port",
                         REG_CONTACT_PORT + i]
            if test in self.CALL_TESTS:
                args += ["-d", a.call_hold_ms]
            args += self.trace_args(f"uac{i}")
            uacs.append(Sipp(d, args, f"uac{i}"))
        meter = CpuMeter(self.srv, [self.uas.pid] if self.uas else [])
        t0 = time.time()
        for u in uacs:
            u.start()
        for u in uacs:
            u.wait(secs * 3 + 60)
        wall = time.time() - t0
        cpu = meter.stop(extra_sipp_ticks=sum(u.rusage_ticks for u in uacs))
        mem = self.srv.mem()
        if cap:
            self.stop_capture(cap)
        lasts = [u.last() for u in uacs]
        g = lambda k: sum(S.stat_int(l, k) for l in lasts)
        succ = g("SuccessfulCall(C)")
        failed = m - succ
        rtt = S.read_rtt(d)
        rtts = {n: S.summarize(v) for n, v in rtt.items()}
        S.gzip_rtt(d)
        tail = hold_s + 1.0
        allowed = secs + tail + max(2.0, 0.1 * secs)
        p99 = (rtts.get(1) or {}).get("p99")
        reasons = []
        fail_pct = 100.0 * failed / m
        if fail_pct >= a.fail_pct:
            reasons.append(f"failures {fail_pct:.3f}% >= {a.fail_pct}%")
        if wall > allowed:
            reasons.append(f"took {wall:.1f}s > {allowed:.1f}s (rate not sustained)")
        if a.p99_max_ms > 0 and p99 is not None and p99 > a.p99_max_ms:
            reasons.append(f"p99 {p99:.0f}ms > {a.p99_max_ms}ms")
        if any(u.rc not in (0, 1) for u in uacs) and not reasons:
            reasons.append("sipp exit " + ",".join(str(u.rc) for u in uacs))
        res = {
            "name": name, "test": test, "transport": transport, "tag": tag,
            "rate": rate, "secs": secs, "calls": m, "created": g("TotalCallCreated"),
            "successful": succ, "failed": failed, "fail_pct": round(fail_pct, 4),
            "retransmissions": g("Retransmissions(C)"),
            "timeouts": g("FailedTimeoutOnRecv(C)") + g("FailedMaxUDPRetrans(C)"),
            "unexpected": g("FailedUnexpectedMessage(C)"),
            "dead_call_msgs": g("DeadCallMsgs(C)"), "out_of_call_msgs": g("OutOfCallMsgs(C)"),
            "wall": round(wall, 2), "achieved_rate": round(succ / max(secs, wall - tail), 1),
            "rtt_ms": rtts, "cpu": cpu, "mem": mem, "bg_before_cores": bg,
            "sipp_rc": [u.rc for u in uacs], "pass": not reasons, "reasons": reasons,
            "dir": str(d.relative_to(self.out)),
        }
        if self.uas:
            res["uas_alive"] = not self.uas.poll()
        self.results["steps"].append(res)
        self.save()
        r1 = rtts.get(1) or {}
        log(f"  {name}: {'PASS' if res['pass'] else 'FAIL'} ok={succ}/{m} "
            f"fail={fail_pct:.3f}% retrans={res['retransmissions']} wall={wall:.1f}s "
            f"p50/p99={r1.get('p50')}/{r1.get('p99')}ms cpu srv={cpu['server_cores']:.2f} "
            f"sipp={cpu['sipp_cores']:.2f} other={cpu['other_cores']:.2f} "
            f"{'; '.join(reasons)}")
        time.sleep(a.settle)
        return res

    # ----------------------------------------------------------- capture
    def start_capture(self, d):
        if not shutil.which("dumpcap"):
            return None
        d.mkdir(parents=True, exist_ok=True)
        f = d / "capture.pcap"
        flt = f"port {self.srv.port} or port {self.a.uas_port}"
        p = subprocess.Popen(["dumpcap", "-q", "-P", "-i", "lo", "-f", flt, "-B", "64",
                              "-w", str(f)], stdout=subprocess.DEVNULL,
                             stderr=open(d / "dumpcap.log", "w"))
        time.sleep(1.5)
        return (p, f)

    def stop_capture(self, cap):
        p, _ = cap
        time.sleep(0.5)
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()

    # ----------------------------------------------------------- ramp
    def ramp(self, test, transport):
        a = self.a
        start = a.start_rate[test]
        maxr = a.max_rate[test]
        tried = {}

        def run(rate, secs=a.step_secs, tag="ramp"):
            rate = float(max(1, round(rate)))
            r = self.step(test, transport, rate, secs, tag=tag)
            # a failure while something else hogged the CPU is retried once
            if not r["pass"] and r["cpu"]["other_cores"] > a.bg_max_cores:
                log(f"  retrying: {r['cpu']['other_cores']:.2f} cores used by other processes")
                r = self.step(test, transport, rate, secs, tag=tag + "-retry")
            tried[(rate, secs)] = r
            return r

        lo = hi = None
        rate = start
        while True:
            r = run(rate)
            if r["pass"]:
                lo = rate
                if rate >= maxr:
                    break
                rate = min(maxr, rate * a.factor)
            else:
                hi = rate
                break
        if lo is None:                       # even the start rate failed: go down
            rate = start
            while rate > a.min_rate:
                rate = rate / a.factor
                r = run(rate)
                if r["pass"]:
                    lo = rate
                    break
                hi = rate
        if lo is None:
            return {"max_rate": 0, "note": "no passing rate found", "steps": list(tried.values())}
        while hi is not None and hi / lo > 1 + a.precision:
            mid = (lo + hi) / 2
            mid = round(mid, -2) if mid >= 1000 else round(mid, -1) if mid >= 100 else round(mid)
            if mid <= lo or mid >= hi:
                break
            if run(mid)["pass"]:
                lo = mid
            else:
                hi = mid
        # confirmation run, longer; back off 10% per failure
        conf = None
        for _ in range(a.confirm_tries):
            conf = run(lo, a.confirm_secs, tag="confirm")
            if conf["pass"]:
                break
            lo = lo * 0.9
        ok = conf is not None and conf["pass"]
        res = {"max_rate": lo if ok else 0, "upper_failed_rate": hi, "confirmed": ok,
               "confirm": conf, "capped_by_max_rate": hi is None}
        # latency below the knee: one step as long as the confirmation at a fraction of
        # the confirmed maximum (issue 16: p99 < 50 ms at 80 % of each maximum)
        if ok and a.load_fraction > 0:
            part = run(lo * a.load_fraction, a.confirm_secs, tag="fraction")
            res["at_fraction"] = dict(part, fraction=a.load_fraction)
        log(f"== {test}/{transport}: max sustained {fmt_rate(lo)} {UNIT[test]} "
            f"(confirmed={ok}, first failing rate {hi})")
        return res

    def throughput(self, test, transport):
        log(f"== throughput {test} over {transport}")
        if test in ("message", "call"):
            self.register_callees(transport, 3600, f"callees-{test}")
            self.start_uas(test, transport)
        try:
            res = self.ramp(test, transport)
        finally:
            self.stop_uas()
            if test in ("message", "call"):
                self.register_callees(transport, 0, f"uncallees-{test}")
        self.results["throughput"].setdefault(test, {})[transport] = res
        self.save()

    def probe(self, test, transport, rate):
        log(f"== latency probe {test}/{transport} at {fmt_rate(rate)}/s with packet capture")
        if test in ("message", "call"):
            self.register_callees(transport, 3600, f"callees-probe-{test}")
            self.start_uas(test, transport)
        try:
            r = self.step(test, transport, rate, self.a.probe_secs, capture=True, tag="probe")
        finally:
            self.stop_uas()
            if test in ("message", "call"):
                self.register_callees(transport, 0, f"uncallees-probe-{test}")
        capf = self.out / r["dir"] / "capture.pcap"
        lat = counts = None
        if capf.exists():
            lat, counts = S.server_latencies(capf, self.srv.port, self.a.uas_port)
            if not self.a.keep_pcap:
                capf.unlink()
        r["server_latency_ms"] = lat
        r["capture_counts"] = counts
        self.results["probe"].setdefault(test, {}).setdefault(transport, []).append(r)
        self.save()

    # ----------------------------------------------------------- hold
    def hold(self, transport, n_req):
        a = self.a
        log(f"== hold {n_req} users registered over {transport}")
        res = {"transport": transport, "requested": n_req}
        n = n_req
        if a.restart_cmd:
            log(f"  restarting server: {a.restart_cmd}")
            rc, out = sh(a.restart_cmd, timeout=120)
            (self.out / "restart.log").open("a").write(out)
            if rc != 0:
                raise SystemExit(f"restart command failed ({rc}): {out}")
            time.sleep(2)
            self.check_server()
        soft, hard = self.srv.nofile()
        res["server_nofile"] = [soft, hard]
        if transport == "tcp" and soft and n > soft - 500:
            cap = max(1000, (soft - 1000) // 1000 * 1000)
            msg = (f"server RLIMIT_NOFILE is {soft} (hard {hard}): {n} TCP connections "
                   f"cannot be held")
            if a.hold_infeasible == "skip":
                log("  skipped: " + msg)
                res["skipped"] = msg
                self.results["hold"].append(res)
                self.save()
                return
            if a.hold_infeasible == "cap":
                log(f"  {msg}; holding {cap} instead")
                res["capped_note"] = msg + f"; held {cap} instead"
                n = cap
        res["users"] = n
        if transport == "tcp":
            self.wait_time_wait()
        time.sleep(a.settle)
        base = self.srv.mem()
        res["server_pid"] = self.srv.pid
        res["mem_before"] = base
        res["info_before"] = self.info(f"hold-{transport}-{n}-before")
        my_soft = S.nofile_limit(os.getpid())[0] or 1024
        # SIPp slows down badly with >10k sockets in one process: spread them
        per = n if transport == "udp" else \
            max(100, min(n, a.hold_users_per_sipp, my_soft - 1000))
        k = math.ceil(n / per)
        P = a.hold_refresh_secs
        t_ramp = n / a.hold_rate
        refreshes = max(1, math.ceil((t_ramp + a.settle + a.hold_secs + 15) / P) - 1)
        res.update({"sipp_procs": k, "refresh_secs": P, "refreshes": refreshes,
                    "expires": 2 * P, "ramp_rate": a.hold_rate})
        d = self.out / "hold" / f"{transport}-{n}"
        sipps = []
        for i in range(k):
            first, cnt = i * per, min(per, n - i * per)
            csv = self.csv_users(f"hold_{first}_{cnt}", first, cnt)
            lport = free_port(self.ip)
            mode = "tn" if transport == "tcp" else "u1"
            args = [f"{self.srv.host}:{self.srv.port}", "-sf", SCEN["hold"], "-i", self.ip,
                    "-p", lport, "-t", mode, "-nostdin", "-buff_size", 4194304,
                    "-inf", csv, "-key", "domain", a.domain, "-key", "expires", 2 * P,
                    "-set", "refreshes", refreshes, "-d", P * 1000,
                    "-r", f"{a.hold_rate / k:.3f}", "-m", cnt, "-l", cnt + 10,
                    "-timeout", int(t_ramp + (refreshes + 1) * P + 180),
                    "-recv_timeout", 32000,
                    # many sockets make SIPp's loop slow; don't let its
                    # watchdog end the hold after 120 late timer ticks
                    "-watchdog_minor_maxtriggers", 10000000,
                    "-watchdog_major_maxtriggers", 100000] + \
                (["-max_socket", cnt + 100] if mode == "tn" else []) + \
                self.trace_args(f"hold{i}")
            sipps.append(Sipp(d, args, f"hold{i}"))
        t0 = time.time()
        for s in sipps:
            s.start()
        meter = CpuMeter(self.srv, [s.pid for s in sipps])
        registered = failed = 0
        deadline = t0 + t_ramp * 3 + 60
        time.sleep(2)
        dead = [s.name for s in sipps if s.poll()]
        if dead:
            log(f"  SIPp {dead} exited at start-up, see {d}")
            res["sipp_died_at_start"] = dead
        while time.time() < deadline:
            time.sleep(1)
            lasts = [s.last() for s in sipps]
            registered = sum(S.stat_int(l, "GenericCounter1(C)") for l in lasts)
            failed = sum(S.stat_int(l, "FailedCall(C)") for l in lasts)
            if registered + failed >= n or all(s.poll() for s in sipps):
                break
        t_reg = time.time() - t0
        res["registered"] = registered
        res["failed_during_ramp"] = failed
        res["ramp_secs"] = round(t_reg, 1)
        res["cpu_ramp"] = meter.stop()
        log(f"  {registered}/{n} registered in {t_reg:.1f}s ({failed} failed)")
        time.sleep(a.settle)
        samples = []
        meter = CpuMeter(self.srv, [s.pid for s in sipps if not s.poll()])
        t_end = time.time() + a.hold_secs
        while True:
            m = self.srv.mem()
            m["t"] = round(time.time() - t0, 1)
            m["established_tcp"] = self.established()
            samples.append(m)
            if time.time() >= t_end:
                break
            time.sleep(min(5, max(0.1, t_end - time.time())))
        res["cpu_hold"] = meter.stop()
        res["info_held"] = self.info(f"hold-{transport}-{n}-held")
        res["mem_samples"] = samples
        held = sorted(samples, key=lambda x: x["pss_kb"])[len(samples) // 2]
        res["mem_held"] = held
        lasts = [s.last() for s in sipps]
        res["refreshes_ok_at_measure"] = sum(S.stat_int(l, "GenericCounter2(C)") for l in lasts)
        reg = max(1, registered)
        res["per_user_bytes"] = {
            "pss": round((held["pss_kb"] - base["pss_kb"]) * 1024 / reg),
            "rss_sum": round((held["rss_kb"] - base["rss_kb"]) * 1024 / reg),
            "main_rss": round((held["main_rss_kb"] - base["main_rss_kb"]) * 1024 / reg),
        }
        log(f"  PSS {base['pss_kb'] / 1024:.1f} -> {held['pss_kb'] / 1024:.1f} MiB "
            f"({res['per_user_bytes']['pss']} B/user), RSS(sum) {base['rss_kb'] / 1024:.1f} -> "
            f"{held['rss_kb'] / 1024:.1f} MiB, tcp conns {held['established_tcp']}")
        log("  waiting for SIPp to unregister the users and exit ...")
        for s in sipps:
            rem = t0 + t_ramp + (refreshes + 1) * P + 240 - time.time()
            s.wait(max(10, rem))
        lasts = [s.last() for s in sipps]
        res["unregistered"] = sum(S.stat_int(l, "GenericCounter3(C)") for l in lasts)
        res["refreshes_ok"] = sum(S.stat_int(l, "GenericCounter2(C)") for l in lasts)
        res["failed_total"] = sum(S.stat_int(l, "FailedCall(C)") for l in lasts)
        res["sipp_rc"] = [s.rc for s in sipps]
        time.sleep(a.settle)
        res["mem_after"] = self.srv.mem()
        rtt = S.read_rtt(d)
        res["rtt_ms"] = {n_: S.summarize(v) for n_, v in rtt.items()}
        S.gzip_rtt(d)
        res["dir"] = str(d.relative_to(self.out))
        self.results["hold"].append(res)
        self.save()

    def wait_time_wait(self, limit=500, max_wait=100):
        """SIPp binds every call socket to an ephemeral port before connecting;
        TIME_WAIT leftovers of a previous hold (the client closes first) keep
        those ports and make bind() fail with EADDRNOTAVAIL, so let them expire."""
        end = time.time() + max_wait
        while True:
            rc, out = sh(f"ss -Htan state time-wait '( dport = :{self.srv.port} )'", timeout=30)
            n = len(out.splitlines()) if rc == 0 else 0
            if n < limit or time.time() > end:
                return n
            log(f"  waiting for {n} TIME_WAIT sockets to expire (they hold ephemeral ports)")
            time.sleep(10)

    def established(self):
        rc, out = sh(f"ss -Htn state established '( dport = :{self.srv.port} )' "
                     f"dst {self.srv.host}", timeout=30)
        return len([l for l in out.splitlines() if l.strip()]) if rc == 0 else None

    # ----------------------------------------------------------- main
    def meta(self):
        a = self.a
        rc, sv = sh("sipp -v 2>&1 | grep -m1 SIPp")
        m = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "target": a.target,
             "pid": self.srv.pid, "name": a.name, "sipp_version": sv.strip(),
             "kernel": os.uname().release, "cpus": os.cpu_count(),
             "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                                if l.startswith("model name")), "?"),
             "mem_total_kb": S._kv_kb("/proc/meminfo", ("MemTotal",)).get("MemTotal"),
             "harness_nofile": S.nofile_limit(os.getpid()),
             "server_nofile": self.srv.nofile(),
             "server_cmdline": Path(f"/proc/{self.srv.pid}/cmdline").read_text()
             .replace("\0", " ").strip(),
             "server_procs": len(self.srv.pids()),
             "loadavg_at_start": Path("/proc/loadavg").read_text().strip(),
             "args": vars(a), "command": " ".join(shlex.quote(x) for x in sys.argv)}
        if a.server_version_cmd:
            m["server_version"] = sh(a.server_version_cmd)[1].strip()
        self.results["meta"] = m
        self.save()

    def run(self):
        a = self.a
        self.check_server()
        self.meta()
        log(f"results -> {self.out}")
        log(f"server {a.target} pid {self.srv.pid} ({len(self.srv.pids())} processes)")
        self.info("start")
        self.calib("start")
        tests = a.tests
        try:
            if "hold" in tests:
                for tr in a.transports:
                    for n in (a.hold_udp if tr == "udp" else a.hold_tcp):
                        self.hold(tr, n)
            for t in ("register", "message", "call"):
                if t in tests:
                    for tr in a.transports:
                        self.wait_quiet()
                        self.calib(f"{t}-{tr}")
                        self.throughput(t, tr)
            if "probe" in tests:
                self.calib("probe")
                for t in ("register", "message", "call"):
                    if t in a.probe_tests:
                        for tr in a.transports:
                            for rate in a.probe_rate.get(t, []):
                                self.probe(t, tr, rate)
            self.calib("end")
        finally:
            self.stop_uas()
            self.results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
            self.save()
            self.info("end")
        import report
        md = report.render(self.results)
        (self.out / "summary.md").write_text(md)
        log(f"summary -> {self.out / 'summary.md'}")
        print(md)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="run.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="server under test, HOST:PORT (e.g. 127.0.0.1:5060)")
    p.add_argument("pid", help="server pid, or @PIDFILE (re-read after --restart-cmd)")
    p.add_argument("--name", default="server", help="label for the results directory")
    p.add_argument("--out", help="results dir (default results/NAME-YYYYmmdd-HHMMSS)")
    p.add_argument("--tests", default="hold,register,message,call,probe")
    p.add_argument("--transports", default="udp,tcp")
    p.add_argument("--domain", help="SIP domain of the users (default: TARGET host)")
    p.add_argument("--password", default="pw")
    p.add_argument("--local-ip", default="127.0.0.1")
    p.add_argument("--uas-port", type=int, default=5061)
    p.add_argument("--uac-port-range", default="20000-32000",
                   help="ports for the SIPp UACs' own sockets; keep it below "
                        "net.ipv4.ip_local_port_range")
    p.add_argument("--step-secs", type=int, default=10, help="duration of each ramp step")
    p.add_argument("--confirm-secs", type=int, default=30, help="duration of the confirmation run")
    p.add_argument("--confirm-tries", type=int, default=3)
    p.add_argument("--load-fraction", type=float, default=0.8,
                   help="after the confirmation, one step of --confirm-secs at this fraction "
                        "of the confirmed maximum, for its latency (0 = off)")
    p.add_argument("--settle", type=float, default=3.0, help="pause between steps (s)")
    p.add_argument("--fail-pct", type=float, default=0.1, help="max failed calls, percent")
    p.add_argument("--p99-max-ms", type=float, default=200,
                   help="max SIPp p99 response time for a step to pass (0 = off)")
    p.add_argument("--start-rate", default="register=1000,message=500,call=200")
    p.add_argument("--max-rate", default="register=60000,message=30000,call=10000")
    p.add_argument("--min-rate", type=float, default=10)
    p.add_argument("--factor", type=float, default=2.0, help="ramp multiplier")
    p.add_argument("--precision", type=float, default=0.10, help="stop bisecting at hi/lo-1")
    p.add_argument("--reg-users", type=int, default=10000,
                   help="users cycled by the REGISTER/MESSAGE/INVITE tests")
    p.add_argument("--reg-expires", type=int, default=600)
    p.add_argument("--callees", type=int, default=100, help="users registered by the UAS")
    p.add_argument("--rtt-freq", type=int, default=1000,
                   help="SIPp -rtt_freq: response times are written every N calls (a step "
                        "with fewer calls reports none)")
    p.add_argument("--callee-first", type=int, default=0,
                   help="number of the first callee user (userNNNN); callers start at "
                        "CALLEE_FIRST + 2 * CALLEES")
    p.add_argument("--register-at", metavar="HOST:PORT",
                   help="the UAS's callees register here instead of at the target (another "
                        "front end of a pool: bench/pool.sh)")
    p.add_argument("--call-hold-ms", type=int, default=1000)
    p.add_argument("--tcp-mode", choices=("t1", "tn"), default="t1",
                   help="SIPp TCP mode for the load tests: t1 = one persistent connection "
                        "per SIPp process, tn = one connection per call")
    p.add_argument("--uac-procs", type=int, default=1,
                   help="parallel SIPp UAC processes per step (rate split between them)")
    p.add_argument("--hold-udp", default="50000", help="comma list of user counts")
    p.add_argument("--hold-tcp", default="10000,50000", help="comma list of user counts")
    p.add_argument("--hold-rate", type=float, default=1000, help="registrations/s while filling")
    p.add_argument("--hold-refresh-secs", type=int, default=60)
    p.add_argument("--hold-secs", type=int, default=60, help="measurement window once all are registered")
    p.add_argument("--hold-users-per-sipp", type=int, default=5000,
                   help="TCP hold: users (sockets) per SIPp process")
    p.add_argument("--hold-infeasible", choices=("cap", "skip", "try"), default="cap",
                   help="TCP hold larger than the server's RLIMIT_NOFILE allows")
    p.add_argument("--restart-cmd", help="command restarting the server before each hold test")
    p.add_argument("--info-cmd", help="command whose output is saved at key points")
    p.add_argument("--server-version-cmd")
    p.add_argument("--probe-tests", default="register,message,call")
    p.add_argument("--probe-rate", default="register=2000:10000,message=1000:5000,call=200:2000",
                   help="fixed rates (':'-separated) for the packet-capture latency probes")
    p.add_argument("--probe-secs", type=int, default=10)
    p.add_argument("--keep-pcap", action="store_true")
    p.add_argument("--bg-max-cores", type=float, default=0.3,
                   help="CPU used by unrelated processes above which we wait / retry")
    p.add_argument("--quiet-wait", type=float, default=120,
                   help="max seconds to wait for a quiet machine before each step")
    p.add_argument("--quick", action="store_true", help="smoke test: tiny, fast settings")
    a = p.parse_args(argv)
    a.tests = [t.strip() for t in a.tests.split(",") if t.strip()]
    a.transports = [t.strip() for t in a.transports.split(",") if t.strip()]
    a.probe_tests = [t.strip() for t in a.probe_tests.split(",") if t.strip()]
    if a.quick:   # only options the user did not set explicitly
        quick = {"step_secs": 3, "confirm_secs": 5, "precision": 1.0, "settle": 1.0,
                 "hold_udp": "2000", "hold_tcp": "1000", "hold_secs": 10,
                 "hold_refresh_secs": 20, "probe_secs": 3, "quiet_wait": 10,
                 "probe_rate": "register=2000,message=1000,call=200",
                 "max_rate": "register=4000,message=2000,call=800"}
        for k, v in quick.items():
            if getattr(a, k) == p.get_default(k):
                setattr(a, k, v)
    a.start_rate = kv_list(a.start_rate)
    a.max_rate = kv_list(a.max_rate)
    a.probe_rate = {k: [float(x) for x in v.split(":")] for k, v in kv_list(a.probe_rate, str).items()}
    a.hold_udp = [int(x) for x in str(a.hold_udp).split(",") if x.strip()]
    a.hold_tcp = [int(x) for x in str(a.hold_tcp).split(",") if x.strip()]
    if not a.domain:
        a.domain = a.target.rpartition(":")[0]
    if not a.out:
        a.out = str(BENCH / "results" / f"{a.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    return a


def main():
    global LOG, UAC_PORTS
    a = parse_args(sys.argv[1:])
    lo, _, hi = a.uac_port_range.partition("-")
    UAC_PORTS = (int(lo), int(hi))
    eph = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    if UAC_PORTS[1] > int(eph[0]) and UAC_PORTS[0] <= int(eph[1]):
        print(f"warning: --uac-port-range {a.uac_port_range} overlaps the ephemeral range "
              f"{eph[0]}-{eph[1]}", file=sys.stderr)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    LOG = Path(a.out) / "run.log"
    Bench(a).run()


if __name__ == "__main__":
    main()
