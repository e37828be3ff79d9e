#!/usr/bin/env python3
"""A TCP man-in-the-middle between a Lync-protocol client (SIPE) and a SIP server
that tampers with the MS-SIPAE signature of one request after sign-in.

usage: sig_mitm.py --listen PORT --target HOST:PORT --mode forge|strip|pass
                   [--timeout 60] [--grace 1.0] [--json FILE]

The client's `server` setting points at 127.0.0.1:PORT; every byte is relayed
unchanged to --target and back, except: on the first connection on which the
server sends a 200 to a REGISTER (the end of the NTLM sign-in), the first request
the client sends after that 200 is altered:
  forge  one hex digit of the checksum in `response="..."` of its
         `Authorization: NTLM ...` header is changed (a forged signature);
  strip  its `Authorization:` header is removed (a missing signature);
  pass   nothing is changed (to test the harness itself).
The script then watches that connection: when the server closes it (EOF or
reset) the time since the tampered request is recorded and the client side is
closed too; --grace seconds after that close (or after the client closed it
first) the script prints its result and exits.
Without a close it gives up after --timeout seconds (counted from the start).

Output (stdout, one line each, flushed): `LISTENING 127.0.0.1:PORT`, `EVENT ...`
lines while it runs, then a `SUMMARY key=value ...` line (tampered, server_closed,
client_closed_first: 0/1; close_after_s, response_to_tampered: number or -;
refused_before: how many; method: of the tampered request) and last
`RESULT {json}` (also written to --json FILE) with:
  tampered               whether a request was altered
  tampered_request       its first line, Call-ID and CSeq; tamper_detail what changed
  server_closed          whether the server closed the tampered connection (while the
                         client still had it open)
  close_after_s          seconds from forwarding the tampered request to the close
  client_closed_first    the client closed that connection before the server did
                         (client_closed_after_s: when, after the tampered request)
  response_to_tampered   status the server answered the tampered request with, or null
  responses_before       [[status, CSeq], ...] the server sent on that connection before
  refused_before         those of them that refuse a request (>= 300, except a 401 to a
                         REGISTER, which is the NTLM handshake)
  server_msgs_after      first lines of what the server sent after the tampered request
The exit status is 0 when the script ran (whatever it observed), 2 on bad usage.
"""
import argparse
import json
import re
import socket
import sys
import threading
import time

T0 = time.time()


def now():
    return round(time.time() - T0, 3)


def header(head, name):
    for line in head.split("\r\n")[1:]:
        k, sep, v = line.partition(":")
        if sep and k.strip().lower() == name.lower():
            return v.strip()
    return None


class Framer:
    """Splits a SIP byte stream (RFC 3261 §18.3 framing) into messages; CRLF
    keep-alives are returned as bare b"\\r\\n..." chunks."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while self.buf:
            if self.buf.startswith(b"\r\n"):
                n = len(self.buf) - len(self.buf.lstrip(b"\r\n"))
                out.append(self.buf[:n])
                self.buf = self.buf[n:]
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buf[:end].decode("utf-8", "replace")
            length = header(head, "Content-Length") or header(head, "l") or "0"
            try:
                length = int(length)
            except ValueError:
                length = 0
            total = end + 4 + length
            if len(self.buf) < total:
                break
            out.append(self.buf[:total])
            self.buf = self.buf[total:]
        return out


class State:
    def __init__(self, mode):
        self.mode = mode
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.result = {
            "mode": mode, "tampered": False, "tampered_request": None, "tamper_detail": None,
            "t_tamper": None, "server_closed": False, "close_after_s": None,
            "response_to_tampered": None, "responses_before": [], "refused_before": [],
            "server_msgs_after": [], "client_closed_first": False, "client_closed_after_s": None,
            "connections": 0,
        }
        self.target_conn = None     # id of the connection that got the tampered request
        self.tamper_key = None      # (Call-ID, CSeq) of the tampered request
        self.close_at = None


def event(text):
    print("EVENT t=%.3f %s" % (now(), text), flush=True)


def tamper(msg, mode):
    """Returns (new_bytes, detail) for one request."""
    head, sep, body = msg.partition(b"\r\n\r\n")
    text = head.decode("utf-8", "replace")
    lines = text.split("\r\n")
    auth = [i for i, l in enumerate(lines) if l.lower().startswith("authorization:")]
    if not auth:
        return msg, "request has no Authorization header (nothing to tamper with)"
    if mode == "strip":
        removed = [lines[i] for i in auth]
        lines = [l for i, l in enumerate(lines) if i not in auth]
        return ("\r\n".join(lines).encode() + sep + body,
                "removed %d Authorization header(s): %s" % (len(removed), removed[0][:120]))
    i = auth[0]
    m = re.search(r'response="([0-9A-Fa-f]{16,})"', lines[i])
    if not m:
        return msg, "Authorization without a hex response=: %s" % lines[i][:160]
    sig = m.group(1)
    k = 10 if len(sig) > 10 else len(sig) - 1       # inside the checksum bytes
    c = sig[k]
    forged = sig[:k] + ("1" if c == "0" else "0") + sig[k + 1:]
    lines[i] = lines[i][:m.start(1)] + forged + lines[i][m.end(1):]
    return ("\r\n".join(lines).encode() + sep + body,
            "response=%s -> %s" % (sig, forged))


def relay(cid, client, server, st, timeout):
    """Relays one client connection; tampering as described above."""
    reg_ok = threading.Event()
    up, down = Framer(), Framer()

    def c2s():
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                with st.lock:
                    if st.target_conn == cid and not st.result["server_closed"]:
                        st.result["client_closed_first"] = True
                        t = st.result["t_tamper"]
                        st.result["client_closed_after_s"] = round(now() - t, 3) if t is not None else None
                        st.close_at = time.time()
                event("conn %d: client closed" % cid)
                try:
                    server.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            out = b""
            for msg in up.feed(data):
                if msg.startswith(b"\r\n") or msg.startswith(b"SIP/2.0 "):
                    out += msg
                    continue
                with st.lock:
                    go = reg_ok.is_set() and st.target_conn is None and st.mode in ("forge", "strip", "pass")
                    if go:
                        st.target_conn = cid
                if go:
                    head = msg.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
                    first = head.split("\r\n", 1)[0]
                    if st.mode == "pass":
                        new, detail = msg, "passed unchanged (mode pass)"
                    else:
                        new, detail = tamper(msg, st.mode)
                    # Note the time, then send what came before and the altered
                    # request: the server may close the connection before sendall
                    # returns, and the close must find the time already noted.
                    with st.lock:
                        st.tamper_key = (header(head, "Call-ID"), header(head, "CSeq"))
                        st.result.update(tampered=new != msg, tampered_request={
                            "first_line": first, "call_id": st.tamper_key[0], "cseq": st.tamper_key[1]},
                            tamper_detail=detail, t_tamper=now())
                    try:
                        server.sendall(out + new)
                    except OSError:
                        pass
                    out = b""
                    event("conn %d: %s: %s" % (cid, first, detail))
                    continue
                out += msg
            if out:
                try:
                    server.sendall(out)
                except OSError:
                    pass

    def s2c():
        while True:
            try:
                data = server.recv(65536)
                err = None
            except OSError as e:
                data, err = b"", e
            if not data:
                with st.lock:
                    mine = st.target_conn == cid
                    if mine and not st.result["server_closed"] and not st.result["client_closed_first"]:
                        st.result["server_closed"] = True
                        t = st.result["t_tamper"]
                        st.result["close_after_s"] = round(now() - t, 3) if t is not None else None
                        st.close_at = time.time()
                event("conn %d: server closed the connection (%s)" % (cid, err or "EOF"))
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                client.close()
                return
            msgs = down.feed(data)
            for msg in msgs:
                head = msg.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
                first = head.split("\r\n", 1)[0]
                m = re.match(r"^SIP/2\.0 (\d{3})", first)
                cseq = header(head, "CSeq") or ""
                with st.lock:
                    after = st.target_conn == cid and st.tamper_key is not None
                    if after:
                        if not msg.startswith(b"\r\n"):
                            st.result["server_msgs_after"].append(first)
                        if m and (header(head, "Call-ID"), cseq) == st.tamper_key and int(m.group(1)) >= 200:
                            st.result["response_to_tampered"] = int(m.group(1))
                    elif m and st.target_conn is None:
                        code = int(m.group(1))
                        st.result["responses_before"].append([code, cseq])
                        is_reg = cseq.upper().endswith("REGISTER")
                        if code >= 300 and not (code == 401 and is_reg):
                            st.result["refused_before"].append([code, cseq])
                        if code == 200 and is_reg and not reg_ok.is_set():
                            # Arm before the client sees the 200: it answers at once.
                            reg_ok.set()
                            event("conn %d: REGISTER 200 from the server (sign-in done)" % cid)
            try:
                client.sendall(data)
            except OSError:
                pass

    threads = [threading.Thread(target=f, daemon=True) for f in (c2s, s2c)]
    for t in threads:
        t.start()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1 for the client")
    ap.add_argument("--target", required=True, help="HOST:PORT of the SIP server (TCP)")
    ap.add_argument("--mode", choices=["forge", "strip", "pass"], required=True)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--grace", type=float, default=1.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    host, _, port = a.target.rpartition(":")
    st = State(a.mode)

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.listen))
    ls.listen(8)
    ls.settimeout(0.2)
    print("LISTENING 127.0.0.1:%d -> %s (mode %s)" % (a.listen, a.target, a.mode), flush=True)
    socks = []
    end = T0 + a.timeout
    while time.time() < end:
        with st.lock:
            if st.close_at is not None and time.time() >= st.close_at + a.grace:
                break
        try:
            client, addr = ls.accept()
        except socket.timeout:
            continue
        try:
            server = socket.create_connection((host, int(port)), timeout=5)
            server.settimeout(None)
        except OSError as e:
            event("connect to %s failed: %s" % (a.target, e))
            client.close()
            continue
        client.settimeout(None)
        with st.lock:
            st.result["connections"] += 1
            cid = st.result["connections"]
        event("conn %d: client %s:%d connected" % (cid, addr[0], addr[1]))
        socks += [client, server]
        relay(cid, client, server, st, a.timeout)
    ls.close()
    with st.lock:
        res = dict(st.result)
    if not res["tampered_request"]:
        res["note"] = "no request after a REGISTER 200 within %.0fs" % a.timeout
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    req = res["tampered_request"] or {}
    summary = {
        "tampered": int(bool(res["tampered"])), "server_closed": int(bool(res["server_closed"])),
        "client_closed_first": int(bool(res["client_closed_first"])),
        "close_after_s": res["close_after_s"] if res["close_after_s"] is not None else "-",
        "response_to_tampered": res["response_to_tampered"] or "-",
        "refused_before": len(res["refused_before"]),
        "method": (req.get("first_line") or "-").split(" ")[0],
    }
    print("SUMMARY " + " ".join("%s=%s" % kv for kv in sorted(summary.items())), flush=True)
    line = json.dumps(res, sort_keys=True)
    if a.json:
        with open(a.json, "w") as f:
            f.write(line + "\n")
    print("RESULT " + line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
