#!/usr/bin/env python3
"""Headless baresip phones for the Response Group test: a caller dials a
workflow, answers its menu with an RFC 4733 digit, and talks to whoever the
service connects it to; every phone records what it hears.

usage: run_rgs.py HOST PORT --caller alice:alicepw --dial URI --ports SIP,CTRL,RTP
                  --answerer bob:bobpw=SIP,CTRL,RTP [--answerer ...]
                  --workdir DIR [--domain example.com] [--digit 2]
                  [--digit-after 1.8] [--answer-after 0] [--expect bob]
                  [--talk 2] [--timeout 15]

(crates/acceptance/tests/rgs.rs runs it.)  Every phone registers through the
outbound proxy sip:HOST:PORT and records the decoded audio of its calls with
baresip's sndfile module (WORKDIR/<user>/rec).  The caller dials --dial; once
the call is established it waits --digit-after seconds and sends --digit
(baresip's sndcode: RFC 4733 telephone-events).  Answerers answer incoming
calls after --answer-after seconds of ringing (0: at once).  The answerer named
by --expect must be connected; no other answerer may get a call.  After --talk
seconds the caller hangs up.  Lines printed: "PASS|FAIL what detail",
"RECORDING <user> <path>" for each file, "RANG <user>" for each answerer that
got a call, and last "N passed, M failed".
"""
import argparse
import glob
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_baresip import Agent  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--domain", default="example.com")
    ap.add_argument("--caller", required=True)
    ap.add_argument("--dial", required=True)
    ap.add_argument("--ports", required=True)
    ap.add_argument("--answerer", action="append", default=[])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--digit", default="2")
    ap.add_argument("--digit-after", type=float, default=1.8)
    ap.add_argument("--answer-after", type=float, default=0.0)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--talk", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=15.0)
    a = ap.parse_args()

    outbound = "sip:%s:%d;transport=udp" % (a.host, a.port)
    root = os.path.abspath(a.workdir)
    os.makedirs(root, exist_ok=True)
    checks = []

    def check(name, ok, detail=""):
        checks.append((name, bool(ok)))
        print("%-4s %-34s %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)

    def phone(cred, ports, manual):
        user, pw = cred.split(":", 1)
        sip, ctrl, rtp = [int(x) for x in ports.split(",")]
        ag = Agent(user, user, pw, a.domain, outbound, sip, ctrl, rtp, root, sip_trace=True)
        rec = os.path.join(ag.dir, "rec")
        os.makedirs(rec, exist_ok=True)
        with open(os.path.join(ag.dir, "config"), "a") as f:
            f.write("module\t\t\tsndfile.so\nsnd_path\t\t%s\n" % rec)
        if manual:
            acc = os.path.join(ag.dir, "accounts")
            with open(acc) as f:
                text = f.read()
            with open(acc, "w") as f:
                f.write(text.replace("answermode=auto", "answermode=manual"))
        return ag, rec

    caller, caller_rec = phone(a.caller, a.ports, False)
    answerers = []
    for spec in a.answerer:
        cred, ports = spec.split("=", 1)
        answerers.append(phone(cred, ports, a.answer_after > 0))
    phones = [caller] + [x[0] for x in answerers]
    rang = set()
    stop = threading.Event()

    def answer_loop(ag):
        # Manual answer: accept each incoming call after --answer-after seconds.
        seen = 0.0
        while not stop.is_set():
            ev = ag.wait_event(["CALL_INCOMING"], 0.2, since=seen)
            if ev is None:
                continue
            rang.add(ag.user)
            seen = time.time() + 0.001
            if a.answer_after > 0:
                time.sleep(a.answer_after)
                ag.command("accept")

    try:
        for ag in phones:
            ag.start(30 + 4 * a.timeout)
        for ag in phones:
            ag.connect()
        for ag in phones:
            ok, detail = ag.wait_registered(a.timeout)
            check("%s registers" % ag.user, ok, detail)
        threads = [threading.Thread(target=answer_loop, args=(ag,), daemon=True) for ag, _ in answerers]
        for t in threads:
            t.start()
        if all(c[1] for c in checks):
            t0 = time.time()
            r = caller.command("dial", a.dial)
            ev = caller.wait_event(["CALL_ESTABLISHED", "CALL_CLOSED"], a.timeout, since=t0)
            est = (ev or {}).get("type") == "CALL_ESTABLISHED"
            check("caller's call established", est, "%s (dial ok=%s)" % ((ev or {}).get("param", "no event"),
                                                                       (r or {}).get("ok")))
            if est:
                time.sleep(a.digit_after)
                r = caller.command("sndcode", a.digit)
                check("caller sends digit %s" % a.digit, r is not None and r.get("ok", True), str(r))
                target = [ag for ag, _ in answerers if ag.user == a.expect]
                got = None
                if target:
                    got = target[0].wait_event(["CALL_ESTABLISHED"], a.timeout + a.answer_after, since=t0)
                check("%s is connected" % a.expect, got is not None,
                      "after %.1fs, from %s" % (time.time() - t0, (got or {}).get("peeruri")))
                time.sleep(a.talk)
                closed_early = caller.wait_event(["CALL_CLOSED"], 0.01, since=t0)
                check("caller still connected", closed_early is None, str((closed_early or {}).get("param")))
                caller.command("hangup")
                if target:
                    end = target[0].wait_event(["CALL_CLOSED"], a.timeout, since=t0)
                    check("%s's call ends with the caller's" % a.expect, end is not None, "")
        stop.set()
        others = sorted(u for u in rang if u != a.expect)
        check("no other answerer rang", not others, ",".join(others))
    except RuntimeError as e:
        check("phones running", False, str(e))
    finally:
        stop.set()
        for ag in phones:
            ag.stop()
    for u in sorted(rang):
        print("RANG %s" % u, flush=True)
    for ag in phones:
        for path in sorted(glob.glob(os.path.join(ag.dir, "rec", "*.wav"))):
            print("RECORDING %s %s" % (ag.user, path), flush=True)
    npass = sum(1 for c in checks if c[1])
    nfail = len(checks) - npass
    if nfail:
        for ag in phones:
            print("---- last lines of %s (%s) ----" % (ag.user, ag.log_path))
            for line in ag.log_text().splitlines()[-80:]:
                print("  " + line)
    print("%d passed, %d failed" % (npass, nfail))
    return 0 if checks and nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
