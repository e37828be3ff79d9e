#!/usr/bin/env python3
"""One headless baresip user agent calls a number and records what it hears.

usage: run_announcement.py HOST PORT --user alice:alicepw --dial URI
                           --ports SIP,CTRL,RTP (RTP: 4 free ports) --workdir DIR
                           [--domain example.com] [--timeout 15]
                           [--callee bob:bobpw --callee-ports SIP,CTRL,RTP]

(crates/acceptance/tests/announcement.rs runs it.)  The caller registers
through the outbound proxy sip:HOST:PORT, dials --dial, and records the
decoded audio of the call with baresip's sndfile module (a WAV file in
WORKDIR/<user>/rec).  The call must be established and then closed by the
server (BYE).  With --callee, a second agent registers and must receive the
call the server transfers the caller to (REFER after the announcement).
Lines printed: "PASS|FAIL what detail", "RECORDING <path>" for each file
recorded, and last "N passed, M failed".
"""
import argparse
import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_baresip import Agent  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--domain", default="example.com")
    ap.add_argument("--user", required=True, help="user:password")
    ap.add_argument("--dial", required=True)
    ap.add_argument("--ports", required=True, help="SIP,CTRL,RTP")
    ap.add_argument("--callee", help="user:password of the transfer target")
    ap.add_argument("--callee-ports", help="SIP,CTRL,RTP")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--timeout", type=float, default=15.0)
    a = ap.parse_args()

    outbound = "sip:%s:%d;transport=udp" % (a.host, a.port)
    root = os.path.abspath(a.workdir)
    os.makedirs(root, exist_ok=True)
    checks = []

    def check(name, ok, detail=""):
        checks.append((name, bool(ok)))
        print("%-4s %-34s %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)

    def agent(name, cred, ports):
        user, pw = cred.split(":", 1)
        sip, ctrl, rtp = [int(x) for x in ports.split(",")]
        ag = Agent(name, user, pw, a.domain, outbound, sip, ctrl, rtp, root, sip_trace=True)
        rec = os.path.join(ag.dir, "rec")
        os.makedirs(rec, exist_ok=True)
        path = os.path.join(ag.dir, "config")
        with open(path) as f:
            conf = f.read()
        # Two RTP port pairs: a transfer's second call needs its own ports
        # while the first call still holds its pair (RTP is a 4-port block).
        conf = conf.replace("rtp_ports\t\t%d-%d" % (rtp, rtp + 1), "rtp_ports\t\t%d-%d" % (rtp, rtp + 3))
        with open(path, "w") as f:
            f.write(conf)
            f.write("module\t\t\tsndfile.so\nsnd_path\t\t%s\n" % rec)
        return ag, rec

    def keep_first_call(rec, wait=2.0):
        deadline = time.time() + wait
        while time.time() < deadline:
            files = glob.glob(os.path.join(rec, "dump-*.wav"))
            if any(p.endswith("-dec.wav") for p in files):
                for p in files:
                    os.rename(p, os.path.join(rec, "call1-" + os.path.basename(p)))
                return
            time.sleep(0.02)

    caller, rec = agent("caller", a.user, a.ports)
    agents = [caller]
    callee = None
    if a.callee:
        callee, _ = agent("callee", a.callee, a.callee_ports)
        agents.append(callee)
    try:
        for ag in agents:
            ag.start(30 + 4 * a.timeout)
        for ag in agents:
            ag.connect()
        for ag in agents:
            ok, detail = ag.wait_registered(a.timeout)
            check("%s registers" % ag.name, ok, detail)
        if all(c[1] for c in checks):
            t0 = time.time()
            r = caller.command("dial", a.dial)
            ev = caller.wait_event(["CALL_ESTABLISHED", "CALL_CLOSED"], a.timeout, since=t0)
            est = (ev or {}).get("type") == "CALL_ESTABLISHED"
            check("call established", est, "%s (dial ok=%s)" % ((ev or {}).get("param", "no event"),
                                                               (r or {}).get("ok")))
            if est:
                # baresip's sndfile names a recording by the second its call
                # started: a transfer's second call within the same second would
                # truncate the first call's file.  Rename the first call's files
                # (baresip keeps writing through its open handle).
                keep_first_call(rec)
                if callee is not None:
                    # The announcement, then REFER: the caller calls the callee.
                    ev_b = callee.wait_event(["CALL_ESTABLISHED"], a.timeout * 2, since=t0)
                    check("transfer target answers", ev_b is not None,
                          "from %s" % (ev_b or {}).get("peeruri"))
                    time.sleep(1.0)
                    caller.command("hangup")
                else:
                    closed = caller.wait_event(["CALL_CLOSED"], a.timeout * 2, since=t0)
                    check("server ends the call", closed is not None,
                          "after %.1fs: %s" % (time.time() - t0, (closed or {}).get("param", "still up")))
    except RuntimeError as e:
        check("agents running", False, str(e))
    finally:
        for ag in agents:
            ag.stop()
    for path in sorted(glob.glob(os.path.join(rec, "*.wav"))):
        print("RECORDING %s" % path, flush=True)
    npass = sum(1 for c in checks if c[1])
    nfail = len(checks) - npass
    if nfail:
        for ag in agents:
            print("---- last lines of %s (%s) ----" % (ag.name, ag.log_path))
            for line in ag.log_text().splitlines()[-60:]:
                print("  " + line)
    print("%d passed, %d failed" % (npass, nfail))
    return 0 if checks and nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
