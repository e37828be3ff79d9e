#!/usr/bin/env python3
"""One headless baresip user in an Enterprise Voice call with a PSTN gateway.

usage: run_voice.py HOST PORT --user alice:alicepw [--domain example.com]
                    --ports SIP,CTRL,RTP --workdir DIR [--timeout 15]
                    (--dial URI [--hold 2] | --answer [--transfer-to URI])

The user registers through the outbound proxy sip:HOST:PORT, then
  --dial URI: calls URI (a number to the PSTN); the call must be established,
              RTP must arrive (the gateway echoes it), and after --hold seconds
              the user hangs up;
  --answer:   waits for a call (auto-answer); it must be established, RTP must
              arrive, and the gateway hangs up;
  --transfer-to URI (with --answer): once RTP arrives, the user transfers the
              call to URI (baresip's blind transfer, a REFER); the server must
              then end the user's call (BYE after NOTIFY 200).
Uses the Agent class of run_baresip.py. Last line: "N passed, M failed".
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_baresip import Agent  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--user", required=True, help="user:password")
    ap.add_argument("--domain", default="example.com")
    ap.add_argument("--ports", required=True, help="SIP,CTRL,RTP")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--dial")
    ap.add_argument("--hold", type=float, default=2.0)
    ap.add_argument("--answer", action="store_true")
    ap.add_argument("--transfer-to", metavar="URI")
    ap.add_argument("--ready-file", help="written once registered (the test then starts the gateway's call)")
    a = ap.parse_args()
    sip, ctrl, rtp = [int(x) for x in a.ports.split(",")]
    user, pw = a.user.split(":", 1)
    root = os.path.abspath(a.workdir)
    os.makedirs(root, exist_ok=True)
    outbound = "sip:%s:%d;transport=udp" % (a.host, a.port)
    ag = Agent(user, user, pw, a.domain, outbound, sip, ctrl, rtp, root, sip_trace=True)
    checks = []

    def check(name, ok, detail=""):
        checks.append((name, bool(ok), detail))
        print("%-4s %-34s %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)

    try:
        ag.start(30 + 6 * a.timeout)
        ag.connect()
        ok, detail = ag.wait_registered(a.timeout)
        check("%s registers" % user, ok, detail)
        if ok:
            if a.ready_file:
                with open(a.ready_file, "w") as f:
                    f.write("ready\n")
            t0 = time.time()
            if a.dial:
                r = ag.command("dial", a.dial)
                ev = ag.wait_event(["CALL_ESTABLISHED", "CALL_CLOSED"], a.timeout, since=t0)
            else:
                ev = ag.wait_event(["CALL_ESTABLISHED", "CALL_CLOSED"], 3 * a.timeout, since=t0)
                r = None
            est = (ev or {}).get("type") == "CALL_ESTABLISHED"
            check("call established", est, "%s %s (dial ok=%s)" % (
                (ev or {}).get("type"), (ev or {}).get("param", ""), (r or {}).get("ok")))
            if est:
                rtp_ev = ag.wait_event(["CALL_RTPESTAB"], 8.0, since=t0)
                check("RTP arrives from the gateway", rtp_ev is not None)
                if a.dial:
                    time.sleep(a.hold)
                    t1 = time.time()
                    ag.command("hangup")
                    closed = ag.wait_event(["CALL_CLOSED"], a.timeout, since=t1)
                    check("user hangs up", closed is not None)
                elif a.transfer_to:
                    time.sleep(0.5)
                    t1 = time.time()
                    r = ag.command("transfer", "<%s>" % a.transfer_to)
                    closed = ag.wait_event(["CALL_CLOSED"], a.timeout, since=t1)
                    check("transfer done, call ended", closed is not None, "%s (transfer ok=%s)" % (
                        (closed or {}).get("param", "no CALL_CLOSED"), (r or {}).get("ok")))
                else:
                    closed = ag.wait_event(["CALL_CLOSED"], a.timeout, since=t0)
                    check("gateway hangs up", closed is not None,
                          (closed or {}).get("param", "no CALL_CLOSED"))
    except RuntimeError as e:
        check("agent running", False, str(e))
    finally:
        ag.stop()
    npass = sum(1 for c in checks if c[1])
    nfail = len(checks) - npass
    if nfail:
        print("---- last lines of %s (%s) ----" % (user, ag.log_path))
        for line in ag.log_text().splitlines()[-60:]:
            print("  " + line)
    print("%d passed, %d failed" % (npass, nfail))
    return 0 if checks and nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
