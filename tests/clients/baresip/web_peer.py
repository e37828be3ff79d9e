#!/usr/bin/env python3
"""A baresip user next to a browser user of the confab web client.

usage: web_peer.py HOST PORT --user carol:carolpw --domain example.com
                   --peer alice@example.com --send TEXT --expect TEXT
                   --done FILE [--workdir DIR] [--timeout 40]

Run by crates/acceptance/tests/web_client.rs while tests/web/client.mjs drives
the browser user (the peer).  The baresip UA (Agent from run_baresip.py,
presence module: it PUBLISHes 'open' and SUBSCRIBEs to the peer's presence)
registers over UDP, then:
  1. sees the browser user Online (its `contacts` list);
  2. sends --send to the browser user (SIP MESSAGE);
  3. sees --expect, the browser user's answer, arrive (baresip's log);
  4. sees the browser user Busy once they set that state;
and creates --done (so the browser side may sign out).  One PASS/FAIL line per
check; last line "N passed, M failed"; exit 0 only if all passed.  Bounded by
--timeout per step; the UA is stopped at the end.
"""
import argparse
import importlib.util
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load_agent():
    spec = importlib.util.spec_from_file_location("run_baresip", os.path.join(HERE, "run_baresip.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--user", required=True, help="USER:PW")
    ap.add_argument("--domain", required=True)
    ap.add_argument("--peer", required=True, help="the browser user, user@domain")
    ap.add_argument("--send", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--done", required=True)
    ap.add_argument("--workdir")
    ap.add_argument("--timeout", type=float, default=40.0)
    a = ap.parse_args()

    rb = load_agent()
    sip, _sip2, ctrl, _ctrl2, rtp, _rtp2 = rb.free_ports()
    user, pw = a.user.split(":", 1)
    root = os.path.abspath(a.workdir) if a.workdir else tempfile.mkdtemp(prefix="confab-webpeer.")
    os.makedirs(root, exist_ok=True)
    outbound = "sip:%s:%d;transport=udp" % (a.host, a.port)
    peer = "sip:%s" % a.peer
    agent = rb.Agent("carol", user, pw, a.domain, outbound, sip, ctrl, rtp, root, peer_uri=peer,
                     presence=True)
    checks = []

    def check(name, ok, detail=""):
        checks.append(ok)
        print("%-4s %-40s %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)
        return ok

    try:
        agent.start(30 + 4 * a.timeout)
        agent.connect()
        ok, detail = agent.wait_registered(a.timeout)
        if check("baresip registers", ok, detail):
            ok, last = agent.wait_contact_status(peer, r"Online", a.timeout)
            check("baresip sees the browser user Online", ok, "status %s" % last)
            agent.command("contact_next")
            r = agent.command("message", a.send)
            check("baresip sends its MESSAGE", r is not None and r.get("ok", True), str(r))
            end = time.time() + a.timeout
            seen = False
            while time.time() < end and not seen:
                seen = a.expect in agent.log_text()
                time.sleep(0.2)
            check("baresip receives the browser user's IM", seen, a.expect)
            ok, last = agent.wait_contact_status(peer, r"Busy", a.timeout)
            check("baresip sees the browser user Busy", ok, "status %s" % last)
    finally:
        with open(a.done, "w") as f:
            f.write("done\n")
        agent.stop()
    passed = sum(1 for c in checks if c)
    print("%d passed, %d failed" % (passed, len(checks) - passed), flush=True)
    return 0 if checks and all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
