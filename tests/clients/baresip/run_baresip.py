#!/usr/bin/env python3
"""Two headless baresip user agents (alice, bob) against a SIP server.

usage: run_baresip.py HOST PORT [--domain example.com]
                      [--alice alice:alicepw] [--bob bob:bobpw]
                      [--transport udp|tcp] [--timeout 15] [--call-hold 2]
                      [--ports SIP_A,SIP_B,CTRL_A,CTRL_B,RTP_A,RTP_B | --free-ports]
                      [--workdir DIR] [--skip-message] [--skip-call] [--sip-trace]

(confab copy of the shared client harness, adapted for parallel acceptance tests:
--workdir and --free-ports; crates/acceptance/tests/baresip.rs runs it.)

Both agents register sip:<user>@<domain> through the outbound proxy
sip:HOST:PORT (digest credentials user/password), then:
  1. alice sends a SIP MESSAGE to bob; bob's log must show the text;
  2. alice calls bob, bob auto-answers (answermode=auto), the call must be
     established on both sides, stay up for --call-hold seconds, then alice
     hangs up and both sides must see the call closed.
Audio: 'ausine' (440 Hz sine) as source and 'aubridge' as a null player, so
no sound device is needed.  Control: baresip's ctrl_tcp module (JSON in
netstrings) on 127.0.0.1.  Default local ports (loopback, all set by
--ports): SIP 5084 and 5086 (UDP+TCP; baresip 1.0 also opens SIP/TLS on
SIP+1: 5085, 5087), ctrl_tcp 6672/6673, RTP+RTCP 6676-6677 (alice) and
6678-6679 (bob).
--free-ports picks free loopback ports instead (each SIP port with SIP+1 free,
each RTP port even with RTP+1 free), so several runs can go on at once.
Config dirs and logs (baresip.log = everything the UA printed; with
--sip-trace every SIP message too) live in --workdir DIR (created if needed),
else in a fresh confab-baresip.* dir under the system temp dir; everything is
bounded by timeouts and both agents are stopped at the end.  Last line: "N passed, M failed"; exit 0 only if all passed.

The Agent class is reusable by other harnesses (the SIPE harness imports it; with
presence=True it loads baresip's presence module, PUBLISHes its own PIDF and
subscribes to the peer's presence, shown by Agent.contact_status()).
"""
import argparse
import json
import os
import pty
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

CONFIG = """\
poll_method		epoll
sip_listen		127.0.0.1:{sip}
call_local_timeout	120
call_max_calls		4
audio_player		aubridge,nil
audio_source		ausine,440
audio_alert		aubridge,nil
ausrc_srate		48000
auplay_srate		48000
ausrc_channels		2
auplay_channels		1
rtp_ports		{rtp}-{rtp1}
rtp_timeout		0
net_interface		127.0.0.1
module_path		{modules}
module			g711.so
module			ausine.so
module			aubridge.so
module			stdio.so
module_app		account.so
module_app		contact.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:{ctrl}
"""


def _bindable(port):
    """True if 127.0.0.1:port can be bound for both UDP and TCP right now."""
    socks = []
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            socks.append(s)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_ports():
    """SIP_A,SIP_B,CTRL_A,CTRL_B,RTP_A,RTP_B: free loopback ports below the kernel's
    ephemeral range; SIP ports with SIP+1 free (baresip's TLS), RTP even with +1 free."""
    taken = set()

    def pick(width, even):
        for _ in range(5000):
            p = random.randrange(20000, 32000 - width)
            if even:
                p &= ~1
            ps = list(range(p, p + width))
            if taken.isdisjoint(ps) and all(_bindable(q) for q in ps):
                taken.update(ps)
                return p
        raise RuntimeError("no free port block of %d found" % width)

    return [pick(2, False), pick(2, False), pick(1, False), pick(1, False), pick(2, True), pick(2, True)]


def module_path():
    """Where baresip's modules are (override: env BARESIP_MODULE_PATH)."""
    if os.environ.get("BARESIP_MODULE_PATH"):
        return os.environ["BARESIP_MODULE_PATH"]
    for d in ("/usr/lib/baresip/modules", "/usr/local/lib/baresip/modules",
              "/usr/lib/x86_64-linux-gnu/baresip/modules", "/usr/lib/aarch64-linux-gnu/baresip/modules"):
        if os.path.exists(os.path.join(d, "ctrl_tcp.so")):
            return d
    return "/usr/lib/baresip/modules"


class Agent:
    def __init__(self, name, user, password, domain, outbound, sip, ctrl, rtp, root, peer_uri=None,
                 sip_trace=False, presence=False):
        """presence=True: load baresip's presence module; the account PUBLISHes
        its PIDF (pubint=300: 'open' once registered) and the peer contact gets
        ;presence=p2p, so baresip SUBSCRIBEs to the peer's presence (see
        contact_status)."""
        self.name, self.user, self.domain = name, user, domain
        self.aor = "sip:%s@%s" % (user, domain)
        self.dir = os.path.join(root, name)
        self.ctrl = ctrl
        self.peer_uri = peer_uri
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(CONFIG.format(sip=sip, rtp=rtp, rtp1=rtp + 1, ctrl=ctrl, modules=module_path()))
            if presence:
                f.write("module_app\t\tpresence.so\n")
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write('<%s>;auth_user=%s;auth_pass=%s;outbound="%s";regint=600;answermode=auto;'
                    'audio_codecs=PCMU,PCMA%s\n' % (self.aor, user, password, outbound,
                                                     ";pubint=300" if presence else ""))
        with open(os.path.join(self.dir, "contacts"), "w") as f:
            if peer_uri:
                f.write('"peer" <%s>%s\n' % (peer_uri, ";presence=p2p" if presence else ""))
        self.log_path = os.path.join(self.dir, "baresip.log")
        self.sip_trace = sip_trace
        self.proc = None
        self.sock = None
        self.events = []
        self.responses = {}
        self.lock = threading.Lock()

    def start(self, lifetime):
        # baresip's stdio UI needs a terminal, and received MESSAGEs are only
        # printed through a UI, so run it on a pseudo-terminal and copy
        # everything it prints into baresip.log.
        self.logf = open(self.log_path, "wb")
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(["baresip", "-f", self.dir, "-t", str(int(lifetime))] +
                                     (["-s"] if self.sip_trace else []),
                                     stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.master = master
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        while True:
            try:
                d = os.read(self.master, 65536)
            except OSError:
                break
            if not d:
                break
            self.logf.write(d)
            self.logf.flush()

    def connect(self, timeout=8.0):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("%s: baresip exited (rc %s), see %s" % (self.name, self.proc.returncode,
                                                                        self.log_path))
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl), timeout=1.0)
                self.sock.settimeout(None)
                threading.Thread(target=self._reader, daemon=True).start()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("%s: ctrl_tcp 127.0.0.1:%d not reachable" % (self.name, self.ctrl))

    def _reader(self):
        buf = b""
        while True:
            try:
                d = self.sock.recv(65536)
            except OSError:
                return
            if not d:
                return
            buf += d
            while True:
                c = buf.find(b":")
                if c < 0 or not buf[:c].isdigit():
                    break
                n = int(buf[:c])
                if len(buf) < c + 1 + n + 1:
                    break
                payload = buf[c + 1:c + 1 + n]
                buf = buf[c + 1 + n + 1:]
                try:
                    obj = json.loads(payload.decode("utf-8", "replace"))
                except ValueError:
                    continue
                if os.environ.get("CONFAB_HARNESS_DEBUG"):
                    print("[%s ctrl] %s" % (self.name, obj), flush=True)
                with self.lock:
                    if obj.get("event"):
                        self.events.append((time.time(), obj))
                    elif obj.get("response"):
                        self.responses[obj.get("token")] = obj

    def command(self, cmd, params="", timeout=5.0):
        token = "t%06d" % random.randint(0, 999999)
        body = json.dumps({"command": cmd, "params": params, "token": token}).encode()
        self.sock.sendall(b"%d:%s," % (len(body), body))
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if token in self.responses:
                    return self.responses.pop(token)
            time.sleep(0.05)
        return None

    def send_message(self, text):
        """SIP MESSAGE to the contact from the contacts file (peer_uri)."""
        self.command("contact_next")
        return self.command("message", text)

    def wait_event(self, types, timeout, since=0.0):
        types = set([types] if isinstance(types, str) else types)
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                for t, ev in self.events:
                    if t >= since and ev.get("type") in types:
                        return ev
            if self.proc.poll() is not None:
                return None
            time.sleep(0.05)
        return None

    def contact_status(self, uri):
        """The presence baresip shows for contact `uri` in its `contacts` list
        (presence module: Online, Offline, Busy or Unknown), or None."""
        r = self.command("contacts", timeout=2.0)
        data = re.sub(r"\x1b\[[0-9;]*m", "", (r or {}).get("data", ""))
        for line in data.splitlines():
            if "<%s>" % uri in line:
                m = re.search(r"(Online|Offline|Busy|Unknown)", line)
                return m.group(1) if m else line.strip()
        return None

    def wait_contact_status(self, uri, status_re, timeout):
        """Polls contact_status until it matches status_re.  Returns (ok, last)."""
        end = time.time() + timeout
        last = None
        while True:
            last = self.contact_status(uri)
            if last and re.search(status_re, last):
                return True, last
            if time.time() >= end or self.proc.poll() is not None:
                return False, last
            time.sleep(0.5)

    def wait_registered(self, timeout):
        """Poll 'reginfo' (the REGISTER_OK event may fire before we connect)."""
        end = time.time() + timeout
        last = ""
        while time.time() < end:
            ev = self.wait_event(["REGISTER_FAIL"], 0.01)
            if ev:
                return False, "REGISTER_FAIL %s" % ev.get("param", "")
            r = self.command("reginfo", timeout=2.0)
            data = re.sub(r"\x1b\[[0-9;]*m", "", (r or {}).get("data", ""))
            for line in data.splitlines():
                if self.aor in line:
                    last = " ".join(line.replace(">", " ").split())
                    if re.search(r"\sOK\s", " %s " % last):
                        return True, last
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        ev = self.wait_event(["REGISTER_FAIL"], 0.01)
        tail = [l for l in self.log_text().splitlines() if self.user + "@" in l][-1:]
        return False, (("REGISTER_FAIL %s" % ev.get("param", "")) if ev else
                       "not registered after %.0fs: %s" % (timeout, last or "; ".join(tail) or "no status"))

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.sock:
            try:
                self.command("quit", timeout=1.0)
            except OSError:
                pass
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(3)
        if self.sock:
            self.sock.close()
        time.sleep(0.2)
        if getattr(self, "master", None) is not None:
            try:
                os.close(self.master)
            except OSError:
                pass
        if getattr(self, "logf", None):
            self.logf.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--domain", default="example.com")
    ap.add_argument("--alice", default="alice:alicepw", help="user:password")
    ap.add_argument("--bob", default="bob:bobpw", help="user:password")
    ap.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    ap.add_argument("--timeout", type=float, default=15.0, help="per-step timeout (s)")
    ap.add_argument("--call-hold", type=float, default=2.0)
    ap.add_argument("--ports", default="5084,5086,6672,6673,6676,6678",
                    help="SIP_A,SIP_B,CTRL_A,CTRL_B,RTP_A,RTP_B. baresip also binds SIP/TLS on SIP+1; "
                         "RTP uses the (even) port and port+1 for RTCP")
    ap.add_argument("--free-ports", action="store_true",
                    help="pick free loopback ports instead of --ports (parallel runs)")
    ap.add_argument("--workdir", help="directory for config dirs and logs (created if missing); "
                    "default: a fresh confab-baresip.* dir under the system temp dir")
    ap.add_argument("--skip-message", action="store_true")
    ap.add_argument("--skip-call", action="store_true")
    ap.add_argument("--sip-trace", action="store_true", help="baresip -s: log every SIP message "
                    "in baresip.log")
    a = ap.parse_args()

    if a.free_ports:
        sa, sb, ca, cb, ra, rb = free_ports()
    else:
        sa, sb, ca, cb, ra, rb = [int(x) for x in a.ports.split(",")]
    ua, pa = a.alice.split(":", 1)
    ub, pb = a.bob.split(":", 1)
    outbound = "sip:%s:%d;transport=%s" % (a.host, a.port, a.transport)
    if a.workdir:
        root = os.path.abspath(a.workdir)
        os.makedirs(root, exist_ok=True)
    else:
        root = tempfile.mkdtemp(prefix="confab-baresip.")
    bob = Agent("bob", ub, pb, a.domain, outbound, sb, cb, rb, root, sip_trace=a.sip_trace)
    alice = Agent("alice", ua, pa, a.domain, outbound, sa, ca, ra, root, peer_uri="sip:%s@%s" % (ub, a.domain),
                  sip_trace=a.sip_trace)
    lifetime = 30 + 6 * a.timeout
    checks = []

    def check(name, ok, detail=""):
        checks.append((name, bool(ok), detail))
        print("%-4s %-34s %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)

    print("# baresip alice/bob via %s (domain %s), work dir %s" % (outbound, a.domain, root), flush=True)
    print("# ports: SIP %d,%d ctrl %d,%d RTP %d,%d" % (sa, sb, ca, cb, ra, rb), flush=True)
    try:
        for ag in (bob, alice):
            ag.start(lifetime)
        for ag in (bob, alice):
            ag.connect()
        for ag in (bob, alice):
            ok, detail = ag.wait_registered(a.timeout)
            check("%s registers" % ag.name, ok, detail)
        registered = all(c[1] for c in checks)

        if registered and not a.skip_message:
            text = "confab-msg-%06d hello bob" % random.randint(0, 999999)
            r1 = alice.command("contact_next")
            r2 = alice.command("message", text)
            end = time.time() + a.timeout
            seen = False
            while time.time() < end and not seen:
                seen = text in bob.log_text()
                time.sleep(0.1)
            detail = "bob's log shows %r" % text if seen else \
                "text not in bob's log (alice: contact_next=%s message=%s)" % (
                    (r1 or {}).get("ok"), (r2 or {}).get("ok"))
            check("alice MESSAGE -> bob", seen, detail)

        if registered and not a.skip_call:
            t0 = time.time()
            r = alice.command("dial", "sip:%s@%s" % (ub, a.domain))
            # baresip 1.0 emits no CALL_INCOMING when it auto-answers, so any
            # incoming-call event on bob's side counts.
            ev_b = bob.wait_event(["CALL_INCOMING", "CALL_REMOTE_SDP", "CALL_ESTABLISHED", "CALL_CLOSED"],
                                  a.timeout, since=t0)
            check("bob receives the INVITE", ev_b is not None,
                  "from %s" % ev_b.get("peeruri") if ev_b else
                  "no call event at bob (dial ok=%s)" % (r or {}).get("ok"))
            ea = alice.wait_event(["CALL_ESTABLISHED", "CALL_CLOSED"], a.timeout, since=t0)
            eb = bob.wait_event(["CALL_ESTABLISHED", "CALL_CLOSED"], a.timeout, since=t0)
            est = (ea or {}).get("type") == "CALL_ESTABLISHED" and (eb or {}).get("type") == "CALL_ESTABLISHED"
            check("call established (auto-answer)", est,
                  "alice=%s bob=%s" % ((ea or {}).get("type"), (eb or {}).get("type")) +
                  ("" if est else " %s" % ((ea or eb or {}).get("param", ""))))
            if est:
                ra_ev = alice.wait_event(["CALL_RTPESTAB"], 5.0, since=t0)
                rb_ev = bob.wait_event(["CALL_RTPESTAB"], 5.0, since=t0)
                check("RTP flows both ways", ra_ev is not None and rb_ev is not None,
                      "alice rx=%s bob rx=%s" % (ra_ev is not None, rb_ev is not None))
                time.sleep(a.call_hold)
                alive = alice.wait_event(["CALL_CLOSED"], 0.1, since=t0) is None and \
                    bob.wait_event(["CALL_CLOSED"], 0.1, since=t0) is None
                check("call stays up %.0fs" % a.call_hold, alive)
                t1 = time.time()
                alice.command("hangup")
                ca_ev = alice.wait_event(["CALL_CLOSED"], a.timeout, since=t1)
                cb_ev = bob.wait_event(["CALL_CLOSED"], a.timeout, since=t1)
                check("hangup seen by both", ca_ev is not None and cb_ev is not None,
                      "bob: %s" % (cb_ev or {}).get("param", "no CALL_CLOSED"))
    except RuntimeError as e:
        check("agents running", False, str(e))
    finally:
        for ag in (alice, bob):
            ag.stop()

    npass = sum(1 for c in checks if c[1])
    nfail = len(checks) - npass
    if nfail:
        for ag in (alice, bob):
            print("---- last lines of %s (%s) ----" % (ag.name, ag.log_path))
            for l in ag.log_text().splitlines()[-25:]:
                print("  " + l)
    print("%d passed, %d failed" % (npass, nfail))
    return 0 if checks and nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
