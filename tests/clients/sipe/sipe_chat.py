#!/usr/bin/env python3
"""One pidgin-sipe user (inside its own bitlbee) driven step by step: a JSON-lines
driver for group-chat (Persistent Chat) tests.

usage: sipe_chat.py            (reads one JSON command per line on stdin, writes one
                                JSON reply per line on stdout; logs on stderr)

Every command is an object with "op" and its arguments; every reply is an object
with "ok": true and the results, or "ok": false and "error".  Commands:

  start    user password server [transport tcp] [auth ntlm] [irc_port] [nick]
           [settings {key: value}]   start bitlbee, connect over IRC, add the sipe
                                     account (dont-publish true unless overridden)
  on       [timeout]                 `account sipe on` -> {signed_in, lines}
  off                                `account sipe off`
  root     cmd [settle]              any &bitlbee command -> {lines}
  chat_list [timeout]                `chat list sipe` -> {rooms: [[index, title, topic]], lines}
  join     room channel [uri] [timeout]  `chat add ROOM CHANNEL` (+ purple_uri URI: join
                                     without listing) and /join
                                     -> {joined, lines (root lines since the command)}
  rejoin   channel [timeout]         /join of a known channel -> {joined, lines}
  set_channel channel key value      `channel CH set KEY VALUE` -> {lines}
  post     channel text              PRIVMSG to the channel
  part     channel [timeout]         /part -> {parted}
  mark                               -> {mark}: index of the next IRC line
  lines    [since]                   -> {lines}: raw IRC lines
  root_lines [since]                 -> {lines}: &bitlbee lines
  wait     pattern [since] [timeout] -> {line} (null on timeout): first raw IRC line
                                        matching the regex
  messages channel [since]           -> {messages: [[nick, text, stamp]]}
  wait_message channel text_re [nick_re] [since] [timeout] [count 1]
                                     -> {messages}: waits for `count` matching messages
  events   channel [since]           -> {events: [[JOIN|PART|QUIT|KICK, nick]]}
  wait_event channel event nick_re [since] [timeout] -> {event} or null
  names    channel                   -> {names}
  sip      method [body_re]          -> {requests: [[first 4000 chars, final status]]}
                                        (what SIPE sent, from its debug log)
  sip_in   method [body_re]          -> {count}: requests SIPE received
  log_count pattern                  -> {count}: lines of SIPE's debug log matching
  log_wait pattern [timeout]         -> {found}: waits for such a line
  stop                               stop bitlbee (also on EOF)

Work files (bitlbee.log with every SIP message, irc.log) go to a fresh
`confab-bitlbee.*` directory under $TMPDIR.
"""
import json
import os
import re
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from bitlbee_irc import BitlBee  # noqa: E402
import saxfix  # noqa: E402


def log(text):
    sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), text))
    sys.stderr.flush()


class Driver:
    def __init__(self):
        self.bb = None

    def need(self):
        if not self.bb:
            raise RuntimeError("not started")
        return self.bb

    def op_start(self, c):
        so, lines = saxfix.decide(c.get("saxfix", "auto"))
        for l in lines:
            log("saxfix: " + l)
        port = int(c["irc_port"])
        nick = c.get("nick") or "t" + c["user"].split("@")[0]
        self.bb = BitlBee(irc_port=port, nick=nick, preload=so, label=c["user"])
        self.bb.start()
        self.bb.connect()
        settings = {"dont-publish": "true"}
        settings.update(c.get("settings") or {})
        out = self.bb.add_sipe_account(c["user"], c["password"], c["server"],
                                       transport=c.get("transport", "tcp"),
                                       auth=c.get("auth", "ntlm"), login=c.get("login"),
                                       extra=sorted(settings.items()))
        return {"lines": out, "dir": self.bb.dir, "nick": nick}

    def op_on(self, c):
        ok, lines = self.need().account_on("sipe", timeout=float(c.get("timeout", 30)))
        return {"signed_in": ok, "lines": lines}

    def op_off(self, c):
        return {"lines": self.need().account_off("sipe")}

    def op_root(self, c):
        return {"lines": self.need().root(c["cmd"], settle=float(c.get("settle", 0.5)))}

    def op_chat_list(self, c):
        rooms, lines = self.need().chat_list("sipe", timeout=float(c.get("timeout", 15)))
        return {"rooms": rooms, "lines": lines}

    def op_join(self, c):
        bb = self.need()
        mk = bb.mark()
        joined = bb.join_room("sipe", c["room"], c["channel"], timeout=float(c.get("timeout", 15)),
                              uri=c.get("uri"))
        return {"joined": joined, "lines": bb.root_lines(mk)}

    def op_rejoin(self, c):
        bb = self.need()
        mk = bb.mark()
        joined = bb.irc_join(c["channel"], timeout=float(c.get("timeout", 15)))
        return {"joined": joined, "lines": bb.root_lines(mk)}

    def op_set_channel(self, c):
        return {"lines": self.need().root("channel %s set %s %s" % (c["channel"], c["key"], c["value"]))}

    def op_post(self, c):
        self.need().send_channel(c["channel"], c["text"])
        return {}

    def op_part(self, c):
        return {"parted": self.need().part_channel(c["channel"], timeout=float(c.get("timeout", 10)))}

    def op_mark(self, c):
        return {"mark": self.need().mark()}

    def op_lines(self, c):
        return {"lines": self.need().since(int(c.get("since", 0)))}

    def op_root_lines(self, c):
        return {"lines": self.need().root_lines(int(c.get("since", 0)))}

    def op_wait(self, c):
        m = self.need().wait_for(c["pattern"], float(c.get("timeout", 10)), since=int(c.get("since", 0)))
        return {"line": m.string if m else None}

    def op_messages(self, c):
        return {"messages": self.need().chat_messages(c["channel"], int(c.get("since", 0)))}

    def op_wait_message(self, c):
        bb = self.need()
        text_re = re.compile(c["text_re"])
        nick_re = re.compile(c.get("nick_re") or ".")
        count = int(c.get("count", 1))
        end = time.time() + float(c.get("timeout", 10))
        while True:
            got = [m for m in bb.chat_messages(c["channel"], int(c.get("since", 0)))
                   if text_re.search(m[1]) and nick_re.search(m[0])]
            if len(got) >= count or time.time() >= end or bb.closed:
                return {"messages": got}
            time.sleep(0.1)

    def op_events(self, c):
        return {"events": self.need().channel_events(c["channel"], int(c.get("since", 0)))}

    def op_wait_event(self, c):
        bb = self.need()
        nick_re = re.compile(c["nick_re"])
        kinds = c["event"].split("|")
        end = time.time() + float(c.get("timeout", 10))
        while True:
            for ev, nick in bb.channel_events(c["channel"], int(c.get("since", 0))):
                if ev in kinds and nick_re.search(nick):
                    return {"event": [ev, nick]}
            if time.time() >= end or bb.closed:
                return {"event": None}
            time.sleep(0.1)

    def op_names(self, c):
        return {"names": self.need().channel_names(c["channel"])}

    def op_sip(self, c):
        tx = self.need().sip_transactions(c["method"], c.get("body_re"))
        return {"requests": [[t[:4000], st] for t, st in tx]}

    def op_sip_in(self, c):
        rx = re.compile(c["body_re"]) if c.get("body_re") else None
        n = 0
        for d, text in self.need().sip_messages():
            if d == "in" and text.startswith(c["method"] + " ") and (rx is None or rx.search(text)):
                n += 1
        return {"count": n}

    def op_log_count(self, c):
        rx = re.compile(c["pattern"])
        return {"count": sum(1 for l in self.need().log_text().splitlines() if rx.search(l))}

    def op_log_wait(self, c):
        rx = re.compile(c["pattern"])
        end = time.time() + float(c.get("timeout", 10))
        while True:
            if any(rx.search(l) for l in self.need().log_text().splitlines()):
                return {"found": True}
            if time.time() >= end:
                return {"found": False}
            time.sleep(0.3)

    def op_stop(self, c):
        if self.bb:
            try:
                if self.bb.sock and not self.bb.closed:
                    self.bb.account_off("sipe")
            except Exception:  # noqa: BLE001
                pass
            self.bb.stop()
        return {}


def main():
    d = Driver()
    try:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            c = {}
            try:
                c = json.loads(line)
                op = c.get("op", "")
                f = getattr(d, "op_" + op, None)
                if f is None:
                    raise ValueError("unknown op %r" % op)
                log(">> " + line[:300])
                r = f(c)
                r["ok"] = True
            except Exception as e:  # noqa: BLE001
                log(traceback.format_exc())
                r = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
            out = json.dumps(r, default=str)
            log("<< " + out[:300])
            sys.stdout.write(out + "\n")
            sys.stdout.flush()
            if c.get("op") == "stop":
                break
    finally:
        d.op_stop({})


if __name__ == "__main__":
    main()
