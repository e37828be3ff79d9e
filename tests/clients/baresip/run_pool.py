#!/usr/bin/env python3
"""Two headless baresip user agents, each signed in through its own front end of
one pool (or the same one), reaching each other.

usage: run_pool.py --a USER:PASSWORD@HOST:PORT --b USER:PASSWORD@HOST:PORT
                   [--domain example.com] [--timeout 15] [--presence] [--call]
                   [--call-number URI]
                   [--workdir DIR] [--sip-trace]

Both agents register sip:<user>@<domain> through their outbound proxy (UDP), then:
  - with --presence, each sees the other Online (PUBLISH + SUBSCRIBE/NOTIFY);
  - a sends a MESSAGE to b, and b one to a (each log must show the text);
  - with --call, a calls b (auto-answer, established on both sides, hang up),
    then b calls a the same way;
  - with --call-number URI, a dials URI (b's line URI) and b must answer.
Uses the Agent class of run_baresip.py (free loopback ports). Last line:
"N passed, M failed"; exit 0 only if all passed.
crates/acceptance/tests/pool.rs runs it.
"""
import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_baresip import Agent, free_ports  # noqa: E402


def parse_side(s):
    cred, server = s.rsplit("@", 1)
    user, password = cred.split(":", 1)
    host, port = server.rsplit(":", 1)
    return user, password, host, int(port)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--domain", default="example.com")
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--presence", action="store_true")
    ap.add_argument("--call", action="store_true")
    ap.add_argument("--call-number", metavar="URI",
                    help="then a dials URI (b's number, e.g. sip:+14255550101@example.com;user=phone)")
    ap.add_argument("--workdir")
    ap.add_argument("--sip-trace", action="store_true")
    a = ap.parse_args()

    ua, pa, ha, pta = parse_side(a.a)
    ub, pb, hb, ptb = parse_side(a.b)
    sa, sb, ca, cb, ra, rb = free_ports()
    root = os.path.abspath(a.workdir) if a.workdir else tempfile.mkdtemp(prefix="confab-pool.")
    os.makedirs(root, exist_ok=True)
    uri_a = "sip:%s@%s" % (ua, a.domain)
    uri_b = "sip:%s@%s" % (ub, a.domain)
    A = Agent(ua, ua, pa, a.domain, "sip:%s:%d;transport=udp" % (ha, pta), sa, ca, ra, root,
              peer_uri=uri_b, sip_trace=a.sip_trace, presence=a.presence)
    B = Agent(ub, ub, pb, a.domain, "sip:%s:%d;transport=udp" % (hb, ptb), sb, cb, rb, root,
              peer_uri=uri_a, sip_trace=a.sip_trace, presence=a.presence)
    checks = []

    def check(name, ok, detail=""):
        checks.append((name, bool(ok), detail))
        print("%-4s %-40s %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)

    def message(src, dst):
        text = "confab-pool-%06d hello %s" % (random.randint(0, 999999), dst.user)
        src.command("contact_next")
        r = src.command("message", text)
        end = time.time() + a.timeout
        seen = False
        while time.time() < end and not seen:
            seen = text in dst.log_text()
            time.sleep(0.1)
        check("%s MESSAGE -> %s" % (src.name, dst.name), seen,
              "shown" if seen else "not in %s's log (message ok=%s)" % (dst.name, (r or {}).get("ok")))

    def call(src, dst, dst_uri, what=None):
        t0 = time.time()
        src.command("dial", dst_uri)
        es = src.wait_event(["CALL_ESTABLISHED", "CALL_CLOSED"], a.timeout, since=t0)
        ed = dst.wait_event(["CALL_ESTABLISHED", "CALL_CLOSED"], a.timeout, since=t0)
        est = (es or {}).get("type") == "CALL_ESTABLISHED" and (ed or {}).get("type") == "CALL_ESTABLISHED"
        check("%s calls %s: established" % (src.name, what or dst.name), est,
              "%s=%s %s=%s %s" % (src.name, (es or {}).get("type"), dst.name, (ed or {}).get("type"),
                                  (es or ed or {}).get("param", "")))
        if not est:
            src.command("hangup")
            return
        time.sleep(1.0)
        t1 = time.time()
        src.command("hangup")
        c1 = src.wait_event(["CALL_CLOSED"], a.timeout, since=t1)
        c2 = dst.wait_event(["CALL_CLOSED"], a.timeout, since=t1)
        check("%s hangs up: seen by both" % src.name, c1 is not None and c2 is not None,
              "%s: %s" % (dst.name, (c2 or {}).get("param", "no CALL_CLOSED")))

    print("# %s via %s:%d, %s via %s:%d, work dir %s" % (ua, ha, pta, ub, hb, ptb, root), flush=True)
    try:
        lifetime = 30 + 8 * a.timeout
        # b first: with least-loaded homing, each signs in where it connects.
        for ag in (A, B):
            ag.start(lifetime)
        for ag in (A, B):
            ag.connect()
        for ag in (A, B):
            ok, detail = ag.wait_registered(a.timeout)
            check("%s registers" % ag.name, ok, detail)
        if all(c[1] for c in checks):
            if a.presence:
                for me, peer in ((A, uri_b), (B, uri_a)):
                    ok, last = me.wait_contact_status(peer, "Online", a.timeout)
                    check("%s sees %s Online" % (me.name, peer), ok, "status %s" % last)
            message(A, B)
            message(B, A)
            if a.call:
                call(A, B, uri_b)
                call(B, A, uri_a)
            if a.call_number:
                call(A, B, a.call_number, "%s's number %s" % (B.name, a.call_number))
    except RuntimeError as e:
        check("agents running", False, str(e))
    finally:
        for ag in (A, B):
            ag.stop()
    npass = sum(1 for c in checks if c[1])
    nfail = len(checks) - npass
    if nfail:
        for ag in (A, B):
            print("---- last lines of %s (%s) ----" % (ag.name, ag.log_path))
            for l in ag.log_text().splitlines()[-40:]:
                print("  " + l)
    print("%d passed, %d failed" % (npass, nfail))
    return 0 if checks and nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
