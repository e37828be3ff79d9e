#!/usr/bin/env python3
"""Manual check of SIP over WebSocket (RFC 7118) against a running server.

usage: ws_sip_check.py HOST:HTTP_PORT [--path /] [--domain example.com]
                       [--user alice --password alicepw]
                       [--to bob --text hello] [--timeout 10]
                       (--to alice: a MESSAGE to yourself comes back over the socket)

Opens ws://HOST:HTTP_PORT/PATH with Sec-WebSocket-Protocol: sip, REGISTERs
sip:USER@DOMAIN with digest authentication (MD5, qop=auth or none), optionally
sends one MESSAGE to sip:TO@DOMAIN (answering a 401/407 challenge), prints every
SIP message in both directions, and exits 0 only if everything got a 200.
Python 3 standard library only; every wait is bounded by --timeout.
The automated version of this check is crates/acceptance/tests/websocket.rs.
"""
import argparse
import base64
import hashlib
import os
import random
import re
import socket
import struct
import sys
import time


def ws_connect(host, port, path, timeout):
    s = socket.create_connection((host, port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
           % (path, host, port, key))
    s.sendall(req.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise RuntimeError("connection closed during the handshake: %r" % buf)
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    head = head.decode("latin-1")
    print(head + "\n")
    if " 101 " not in head.split("\r\n")[0] + " ":
        raise RuntimeError("handshake refused")
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    if ("sec-websocket-accept: " + accept.decode().lower()) not in head.lower():
        raise RuntimeError("bad Sec-WebSocket-Accept")
    if not re.search(r"(?im)^sec-websocket-protocol:\s*sip\s*$", head):
        raise RuntimeError("server did not select the sip subprotocol")
    return s, rest


class Ws:
    def __init__(self, sock, rest):
        self.s, self.buf = sock, rest

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                               bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                               bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        print(">>>>\n" + text)

    def _need(self, n, end):
        while len(self.buf) < n:
            self.s.settimeout(max(0.01, end - time.time()))
            d = self.s.recv(65536)
            if not d:
                raise RuntimeError("connection closed")
            self.buf += d

    def recv(self, timeout):
        end = time.time() + timeout
        data = b""
        while True:
            self._need(2, end)
            b0, b1 = self.buf[0], self.buf[1]
            n, pos = b1 & 0x7F, 2
            if n == 126:
                self._need(4, end)
                n, pos = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                self._need(10, end)
                n, pos = struct.unpack(">Q", self.buf[2:10])[0], 10
            mask = None
            if b1 & 0x80:
                self._need(pos + 4, end)
                mask, pos = self.buf[pos:pos + 4], pos + 4
            self._need(pos + n, end)
            payload = self.buf[pos:pos + n]
            self.buf = self.buf[pos + n:]
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            op = b0 & 0x0F
            if op == 0x9:
                self.s.sendall(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                continue
            if op == 0x8:
                raise RuntimeError("server closed the WebSocket")
            data += payload
            if b0 & 0x80:
                text = data.decode("utf-8", "replace")
                print("<<<<\n" + text)
                return text


def header(msg, name):
    m = re.search(r"(?im)^%s\s*:\s*(.*)$" % re.escape(name), msg)
    return m.group(1).strip() if m else None


def digest(challenge, method, uri, user, password):
    p = dict((k.lower(), v.strip('"')) for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', challenge))
    h = lambda s: hashlib.md5(s.encode()).hexdigest()
    ha1, ha2 = h("%s:%s:%s" % (user, p["realm"], password)), h("%s:%s" % (method, uri))
    cnonce = "%08x" % random.getrandbits(32)
    if "auth" in [q.strip() for q in p.get("qop", "").split(",")]:
        resp = h("%s:%s:00000001:%s:auth:%s" % (ha1, p["nonce"], cnonce, ha2))
        extra = ', qop=auth, nc=00000001, cnonce="%s"' % cnonce
    else:
        resp, extra = h("%s:%s:%s" % (ha1, p["nonce"], ha2)), ""
    if "opaque" in p:
        extra += ', opaque="%s"' % p["opaque"]
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5%s'
            % (user, p["realm"], p["nonce"], uri, resp, extra))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", help="HOST:HTTP_PORT")
    ap.add_argument("--path", default="/")
    ap.add_argument("--domain", default="example.com")
    ap.add_argument("--user", default="alice")
    ap.add_argument("--password", default="alicepw")
    ap.add_argument("--to")
    ap.add_argument("--text", default="hello from ws_sip_check.py")
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    sock, rest = ws_connect(host, int(port), a.path, a.timeout)
    ws = Ws(sock, rest)
    inv = "%08x.invalid" % random.getrandbits(32)
    tag = "%08x" % random.getrandbits(32)
    aor = "sip:%s@%s" % (a.user, a.domain)
    state = {"cseq": 0}

    def answer(req):
        if req.startswith("ACK "):
            return
        head = req.split("\r\n\r\n", 1)[0].split("\r\n")
        keep = [l for l in head[1:] if re.match(r"(?i)(via|v|from|f|to|t|call-id|i|cseq)\s*:", l)]
        keep = [l + (";tag=%s" % tag if re.match(r"(?i)(to|t)\s*:", l) and "tag=" not in l else "") for l in keep]
        ws.send("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n")

    def request(method, ruri, to, call_id, extra="", body="", ctype=None):
        auth = ""
        for _ in range(2):
            state["cseq"] += 1
            branch = "z9hG4bK%08x" % random.getrandbits(32)
            msg = ("%s %s SIP/2.0\r\nVia: SIP/2.0/WS %s;branch=%s\r\nMax-Forwards: 70\r\n"
                   "From: <%s>;tag=%s\r\nTo: <%s>\r\nCall-ID: %s\r\nCSeq: %d %s\r\n"
                   "Contact: <sip:%s@%s;transport=ws>\r\n%s%s%sContent-Length: %d\r\n\r\n%s"
                   % (method, ruri, inv, branch, aor, tag, to, call_id, state["cseq"], method,
                      a.user, inv, extra, auth, ("Content-Type: %s\r\n" % ctype) if ctype else "",
                      len(body.encode()), body))
            ws.send(msg)
            end = time.time() + a.timeout
            while True:
                r = ws.recv(max(0.01, end - time.time()))
                if not r.startswith("SIP/2.0"):
                    answer(r)  # a request to us (e.g. our own MESSAGE to ourselves)
                    continue
                if branch not in (header(r, "Via") or ""):
                    continue
                code = int(r.split()[1])
                if code >= 200:
                    break
            if code in (401, 407) and not auth:
                ch = header(r, "WWW-Authenticate" if code == 401 else "Proxy-Authenticate")
                auth = "%s: %s\r\n" % ("Authorization" if code == 401 else "Proxy-Authorization",
                                       digest(ch, method, ruri, a.user, a.password))
                continue
            return code
        return code

    ok = True
    code = request("REGISTER", "sip:" + a.domain, aor, "ws-check-%08x" % random.getrandbits(32), "Expires: 300\r\n")
    print("# REGISTER -> %d" % code)
    ok &= code == 200
    if ok and a.to:
        to = "sip:%s@%s" % (a.to, a.domain)
        code = request("MESSAGE", to, to, "ws-msg-%08x" % random.getrandbits(32), body=a.text, ctype="text/plain")
        print("# MESSAGE -> %d" % code)
        ok &= code == 200
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, RuntimeError, KeyError) as e:
        print("FAILED: %s" % e)
        sys.exit(1)
