#!/usr/bin/env python3
"""Call Park with three headless baresip phones, recording what they hear.

usage: run_park.py HOST PORT --workdir DIR [--domain example.com] [--timeout 10]
                   --a alice:alicepw --a-ports SIP,CTRL,RTP
                   --b bob:bobpw --b-ports SIP,CTRL,RTP
                   --c carol:carolpw --c-ports SIP,CTRL,RTP
                   --orbit 7000 --quick-orbit 7100

(crates/acceptance/tests/park.rs runs it.)  A sends a 440 Hz sine, C a 1000 Hz
sine (baresip's ausine); A and C record what they hear (sndfile module, WAV
files in WORKDIR/<name>/rec).
  1. A calls B, B answers, B transfers A to <sip:ORBIT@domain;parker=B> (REFER):
     A's phone calls the park service, which parks it (A hears the music on
     hold) and tells B the orbit in a MESSAGE;
  2. C dials the orbit and is connected to A (both talk for a while), C hangs up;
  3. A calls B again, B parks it at QUICK-ORBIT (a range with a short timeout);
     nobody retrieves it: the park service rings B back, B answers.
Lines printed: "PASS|FAIL what detail", "RECORDING <name> <path>" for each
file recorded, and last "N passed, M failed".
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
    for n in "abc":
        ap.add_argument("--" + n, required=True, help="user:password")
        ap.add_argument("--%s-ports" % n, required=True, help="SIP,CTRL,RTP")
    ap.add_argument("--orbit", required=True)
    ap.add_argument("--quick-orbit", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()

    outbound = "sip:%s:%d;transport=udp" % (a.host, a.port)
    root = os.path.abspath(a.workdir)
    os.makedirs(root, exist_ok=True)
    checks = []

    def check(name, ok, detail=""):
        checks.append((name, bool(ok)))
        print("%-4s %-34s %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)
        return ok

    def agent(name, cred, ports, freq):
        user, pw = cred.split(":", 1)
        sip, ctrl, rtp = [int(x) for x in ports.split(",")]
        ag = Agent(name, user, pw, a.domain, outbound, sip, ctrl, rtp, root, sip_trace=True)
        rec = os.path.join(ag.dir, "rec")
        os.makedirs(rec, exist_ok=True)
        path = os.path.join(ag.dir, "config")
        with open(path) as f:
            conf = f.read().replace("audio_source\t\tausine,440", "audio_source\t\tausine,%d" % freq)
        # Two RTP port pairs: a transfer's second call needs its own ports
        # while the first call still holds its pair (RTP is a 4-port block).
        conf = conf.replace("rtp_ports\t\t%d-%d" % (rtp, rtp + 1), "rtp_ports\t\t%d-%d" % (rtp, rtp + 3))
        with open(path, "w") as f:
            f.write(conf)
            f.write("module\t\t\tsndfile.so\nsnd_path\t\t%s\n" % rec)
        return ag

    A = agent("a", a.a, a.a_ports, 440)
    B = agent("b", a.b, a.b_ports, 440)
    C = agent("c", a.c, a.c_ports, 1000)
    agents = [A, B, C]
    b_user = a.b.split(":", 1)[0]
    t_out = a.timeout

    def park(orbit):
        """A calls B, B parks A at orbit's range; True when A's park call is up."""
        t0 = time.time()
        A.command("dial", "sip:%s@%s" % (b_user, a.domain))
        ev_b = B.wait_event(["CALL_ESTABLISHED"], t_out, since=t0)
        ev_a = A.wait_event(["CALL_ESTABLISHED"], t_out, since=t0)
        if not check("A calls B", ev_a and ev_b, (ev_b or {}).get("param", "no answer")):
            return False
        time.sleep(0.5)
        t1 = time.time()
        r = B.command("transfer", "<sip:%s@%s;parker=%s>" % (orbit, a.domain, b_user))
        # A's phone follows the REFER: a second established call, to the orbit.
        ev = None
        end = time.time() + t_out
        while time.time() < end and ev is None:
            for t, e in list(A.events):
                if t >= t1 and e.get("type") == "CALL_ESTABLISHED" and ("sip:" + orbit[:2]) in str(e.get("peeruri", "")):
                    ev = e
            time.sleep(0.1)
        ok = check("B parks A (transfer followed)", ev is not None,
                   "%s (transfer ok=%s)" % ((ev or {}).get("peeruri", "no call to the orbit"), (r or {}).get("ok")))
        # B's part is over: hang up B's call with A if the transfer left it up.
        B.command("hangup")
        return ok

    try:
        for ag in agents:
            ag.start(30 + 8 * t_out)
        for ag in agents:
            ag.connect()
        for ag in agents:
            ok, detail = ag.wait_registered(t_out)
            check("%s registers" % ag.name, ok, detail)
        if all(c[1] for c in checks) and park(a.orbit):
            # The parker is told the orbit.
            end = time.time() + t_out
            while time.time() < end and "parked at orbit" not in B.log_text():
                time.sleep(0.2)
            told = [l for l in B.log_text().splitlines() if "parked at orbit" in l]
            check("B is told the orbit", told, (told or ["no MESSAGE"])[-1].strip())
            time.sleep(2.0)  # A hears the music on hold
            t2 = time.time()
            C.command("dial", "sip:%s@%s" % (a.orbit, a.domain))
            ev_c = C.wait_event(["CALL_ESTABLISHED", "CALL_CLOSED"], t_out, since=t2)
            if check("C retrieves the call", (ev_c or {}).get("type") == "CALL_ESTABLISHED",
                     (ev_c or {}).get("param", "no event")):
                time.sleep(2.5)  # A and C talk
                t3 = time.time()
                C.command("hangup")
                closed = A.wait_event(["CALL_CLOSED"], t_out, since=t3)
                check("A's call ends when C hangs up", closed is not None, "")
            time.sleep(1.0)
            # The second call is parked and not retrieved: B is rung back.
            if park(a.quick_orbit):
                t4 = time.time()
                ev = None
                end = time.time() + t_out + 10
                while time.time() < end and ev is None:
                    for t, e in list(B.events):
                        if t >= t4 and e.get("type") == "CALL_ESTABLISHED" and ("sip:" + a.quick_orbit[:2]) in str(e.get("peeruri", "")):
                            ev = e
                    time.sleep(0.1)
                check("B is rung back", ev is not None,
                      "after %.1fs from %s" % (time.time() - t4, (ev or {}).get("peeruri")))
                time.sleep(0.5)
                B.command("hangup")
    except RuntimeError as e:
        check("agents running", False, str(e))
    finally:
        for ag in agents:
            ag.stop()
    for ag in agents:
        for path in sorted(glob.glob(os.path.join(ag.dir, "rec", "*.wav"))):
            print("RECORDING %s %s" % (ag.name, path), flush=True)
    npass = sum(1 for c in checks if c[1])
    nfail = len(checks) - npass
    if nfail:
        for ag in agents:
            print("---- last lines of %s (%s) ----" % (ag.name, ag.log_path))
            for line in ag.log_text().splitlines()[-80:]:
                print("  " + line)
    print("%d passed, %d failed" % (npass, nfail))
    return 0 if checks and nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
