//! One pidgin-sipe user (in its own bitlbee) driven step by step for group-chat
//! (Persistent Chat) tests, through `tests/clients/sipe/sipe_chat.py` (one JSON
//! command per line on its stdin, one JSON reply per line on its stdout).
//!
//! ```no_run
//! # use confab_acceptance::sipe_chat::ChatUser;
//! # fn f(server: &confab_acceptance::ConfabServer) -> confab_acceptance::Result<()> {
//! let mut alice = ChatUser::start(server, "alice@example.com", "pw", &[])?;
//! alice.sign_in()?;
//! let rooms = alice.chat_list()?;
//! alice.join("RoomOne", "#one")?;
//! alice.post("#one", "hello")?;
//! # Ok(()) }
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{ConfabServer, Context, Error, Result, free_port, tail, tests_dir};

/// A message in a channel as the IRC client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatLine {
    pub nick: String,
    pub text: String,
    /// bitlbee's `[HH:MM:SS]` / `[YYYY-MM-DD HH:MM:SS]` prefix of a delayed
    /// message (or an IRCv3 server-time tag); `None` for a live message.
    pub stamp: Option<String>,
}

/// One SIPE user: its bitlbee, the JSON driver and the IRC transcript.
pub struct ChatUser {
    pub user: String,
    /// The user's own IRC nick (`t<user>`).
    pub nick: String,
    /// The nick other users see for this user in a room (`sip<user>`).
    pub room_nick: String,
    dir: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    replies: Receiver<String>,
    stderr_path: PathBuf,
    bitlbee_dir: String,
}

fn as_lines(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl ChatUser {
    /// Starts the driver and bitlbee for `user` (SIP address) and adds its SIPE
    /// account towards `server`'s SIP TCP port with NTLM; `settings` are extra
    /// SIPE account settings. Not signed in yet (see [`sign_in`](Self::sign_in)).
    pub fn start(
        server: &ConfabServer,
        user: &str,
        password: &str,
        settings: &[(&str, &str)],
    ) -> Result<ChatUser> {
        let local = user.split('@').next().unwrap_or(user).to_string();
        let dir = server
            .work_dir()
            .join(format!("sipe-chat-{local}-{}", crate::unique_token()));
        std::fs::create_dir_all(&dir).ctx(format!("mkdir {}", dir.display()))?;
        let stderr_path = dir.join("driver.log");
        let err = std::fs::File::create(&stderr_path).ctx("creating driver.log")?;
        let mut child = Command::new("python3")
            .arg(tests_dir().join("clients/sipe/sipe_chat.py"))
            .env("TMPDIR", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .ctx("spawning sipe_chat.py")?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::new("sipe_chat.py: no stdout"))?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut u = ChatUser {
            user: user.to_string(),
            nick: format!("t{local}"),
            room_nick: format!("sip{local}"),
            dir,
            child: Some(child),
            stdin,
            replies: rx,
            stderr_path,
            bitlbee_dir: String::new(),
        };
        let mut s = serde_json::Map::new();
        for (k, v) in settings {
            s.insert((*k).to_string(), Value::String((*v).to_string()));
        }
        let r = u.call(
            json!({"op": "start", "user": user, "password": password,
                   "server": format!("127.0.0.1:{}", server.sip_port()),
                   "transport": "tcp", "auth": "ntlm", "irc_port": free_port(),
                   "nick": u.nick, "settings": Value::Object(s)}),
            Duration::from_secs(30),
        )?;
        u.bitlbee_dir = r["dir"].as_str().unwrap_or("").to_string();
        Ok(u)
    }

    /// The directory of this user's files (driver.log, the bitlbee work dir).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends one command and waits (bounded) for its reply; `ok: false` is an error.
    pub fn call(&mut self, cmd: Value, timeout: Duration) -> Result<Value> {
        let op = cmd["op"].as_str().unwrap_or("?").to_string();
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::new("sipe_chat.py: stdin closed"))?;
        let mut line = cmd.to_string();
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(|e| Error(format!("{}: sending {op}: {e}\n{}", self.user, self.logs())))?;
        let reply = match self.replies.recv_timeout(timeout + Duration::from_secs(5)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                return Err(Error(format!(
                    "{}: no reply to {op} within {timeout:?}\n{}",
                    self.user,
                    self.logs()
                )));
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error(format!(
                    "{}: sipe_chat.py exited during {op}\n{}",
                    self.user,
                    self.logs()
                )));
            }
        };
        let v: Value = serde_json::from_str(&reply)
            .map_err(|e| Error(format!("{}: bad reply to {op}: {e}: {reply}", self.user)))?;
        if v["ok"].as_bool() != Some(true) {
            return Err(Error(format!(
                "{}: {op} failed: {}\n{}",
                self.user,
                v["error"],
                self.logs()
            )));
        }
        Ok(v)
    }

    fn call_t(&mut self, cmd: Value, secs: u64) -> Result<Value> {
        self.call(cmd, Duration::from_secs(secs))
    }

    /// The tails of the driver's log and of the IRC transcript, for failure messages.
    pub fn logs(&self) -> String {
        let irc = crate::read_lossy(&Path::new(&self.bitlbee_dir).join("irc.log"));
        format!(
            "--- {} driver ({}) ---\n{}--- {} IRC transcript ---\n{}",
            self.user,
            self.stderr_path.display(),
            tail(&crate::read_lossy(&self.stderr_path), 15),
            self.user,
            tail(&irc, 40)
        )
    }

    /// The bitlbee/SIPE debug log (every SIP message SIPE sent and received).
    pub fn client_log(&self) -> String {
        crate::read_lossy(&Path::new(&self.bitlbee_dir).join("bitlbee.log"))
    }

    /// `account sipe on`; an error unless SIPE reports "Logged in".
    pub fn sign_in(&mut self) -> Result<()> {
        let r = self.call_t(json!({"op": "on", "timeout": 30}), 35)?;
        crate::ensure!(
            r["signed_in"].as_bool() == Some(true),
            "{}: sign-in failed: {:?}\n{}",
            self.user,
            as_lines(&r["lines"]),
            self.logs()
        );
        Ok(())
    }

    /// Waits until SIPE's group chat is connected: it processed `rpl:requri` and
    /// its INVITE of the chat-server URI got a 200 (it then sends `cmd:getinv`).
    pub fn wait_group_chat(&mut self) -> Result<()> {
        let r = self.call_t(
            json!({"op": "log_wait", "timeout": 20,
                   "pattern": "cmd:getinv"}),
            25,
        )?;
        crate::ensure!(
            r["found"].as_bool() == Some(true),
            "{}: SIPE's group chat did not connect within 20 s (no cmd:getinv sent)\n{}",
            self.user,
            self.logs()
        );
        Ok(())
    }

    /// `account sipe off` (SIPE BYEs its chat-server dialog).
    pub fn sign_out(&mut self) -> Result<Vec<String>> {
        let r = self.call_t(json!({"op": "off"}), 10)?;
        Ok(as_lines(&r["lines"]))
    }

    /// Any `&bitlbee` command; returns root's replies within `settle`.
    pub fn root(&mut self, cmd: &str, settle: f64) -> Result<Vec<String>> {
        let r = self.call_t(json!({"op": "root", "cmd": cmd, "settle": settle}), 30)?;
        Ok(as_lines(&r["lines"]))
    }

    /// `chat list sipe`: `(index, title, topic)` rows; an error when no list
    /// (not even "No existing chatrooms") arrives within 15 s.
    pub fn chat_list(&mut self) -> Result<Vec<(u64, String, String)>> {
        let r = self.call_t(json!({"op": "chat_list", "timeout": 15}), 20)?;
        let Some(rows) = r["rooms"].as_array() else {
            return Err(Error(format!(
                "{}: `chat list sipe` printed no room list within 15 s: {:?}\n{}",
                self.user,
                as_lines(&r["lines"]),
                self.logs()
            )));
        };
        Ok(rows
            .iter()
            .map(|row| {
                (
                    row[0].as_u64().unwrap_or(0),
                    row[1].as_str().unwrap_or("").to_string(),
                    row[2].as_str().unwrap_or("").to_string(),
                )
            })
            .collect())
    }

    /// `chat add` + `/join` of a room named in the last `chat list`. Returns
    /// whether the IRC JOIN came, and root's lines.
    pub fn join(&mut self, room: &str, channel: &str) -> Result<(bool, Vec<String>)> {
        let r = self.call_t(
            json!({"op": "join", "room": room, "channel": channel, "timeout": 15}),
            20,
        )?;
        Ok((r["joined"].as_bool() == Some(true), as_lines(&r["lines"])))
    }

    /// Joins `name` by its `ma-chan://` URI without listing (`chat add NAME`,
    /// `channel CH set purple_uri URI`, `/join`).
    pub fn join_uri(
        &mut self,
        name: &str,
        uri: &str,
        channel: &str,
    ) -> Result<(bool, Vec<String>)> {
        let r = self.call_t(
            json!({"op": "join", "room": name, "uri": uri, "channel": channel, "timeout": 15}),
            20,
        )?;
        Ok((r["joined"].as_bool() == Some(true), as_lines(&r["lines"])))
    }

    /// Like [`join`](Self::join), an error unless the JOIN came.
    pub fn join_ok(&mut self, room: &str, channel: &str) -> Result<()> {
        let (ok, lines) = self.join(room, channel)?;
        crate::ensure!(
            ok,
            "{} could not join {room} as {channel}: {lines:?}\n{}",
            self.user,
            self.logs()
        );
        Ok(())
    }

    /// `/join` of a channel bitlbee already knows (after a part).
    pub fn rejoin(&mut self, channel: &str) -> Result<(bool, Vec<String>)> {
        let r = self.call_t(
            json!({"op": "rejoin", "channel": channel, "timeout": 15}),
            20,
        )?;
        Ok((r["joined"].as_bool() == Some(true), as_lines(&r["lines"])))
    }

    pub fn set_channel(&mut self, channel: &str, key: &str, value: &str) -> Result<Vec<String>> {
        let r = self.call_t(
            json!({"op": "set_channel", "channel": channel, "key": key, "value": value}),
            10,
        )?;
        Ok(as_lines(&r["lines"]))
    }

    pub fn post(&mut self, channel: &str, text: &str) -> Result<()> {
        self.call_t(json!({"op": "post", "channel": channel, "text": text}), 10)
            .map(|_| ())
    }

    /// `/part`; returns whether the IRC PART came.
    pub fn part(&mut self, channel: &str) -> Result<bool> {
        let r = self.call_t(json!({"op": "part", "channel": channel}), 15)?;
        Ok(r["parted"].as_bool() == Some(true))
    }

    /// Index of the next IRC line (for `since`).
    pub fn mark(&mut self) -> Result<u64> {
        let r = self.call_t(json!({"op": "mark"}), 5)?;
        Ok(r["mark"].as_u64().unwrap_or(0))
    }

    pub fn root_lines(&mut self, since: u64) -> Result<Vec<String>> {
        let r = self.call_t(json!({"op": "root_lines", "since": since}), 5)?;
        Ok(as_lines(&r["lines"]))
    }

    /// Waits for a `&bitlbee` line matching `pattern` (regex) since `since`.
    pub fn wait_root(&mut self, pattern: &str, since: u64, secs: u64) -> Result<Option<String>> {
        // inline flags such as (?i) must open the whole expression (Python `re`)
        let (flags, pattern) = match pattern.strip_prefix("(?i)") {
            Some(rest) => ("(?i)", rest),
            None => ("", pattern),
        };
        let p = format!(r"{flags}^:root!\S+ (?:PRIVMSG|NOTICE) \S+ :.*{pattern}");
        let r = self.call_t(
            json!({"op": "wait", "pattern": p, "since": since, "timeout": secs}),
            secs + 5,
        )?;
        Ok(r["line"].as_str().map(str::to_string))
    }

    fn parse_messages(v: &Value) -> Vec<ChatLine> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|m| ChatLine {
                        nick: m[0].as_str().unwrap_or("").to_string(),
                        text: m[1].as_str().unwrap_or("").to_string(),
                        stamp: m[2].as_str().map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every message in `channel` since `since`.
    pub fn messages(&mut self, channel: &str, since: u64) -> Result<Vec<ChatLine>> {
        let r = self.call_t(
            json!({"op": "messages", "channel": channel, "since": since}),
            5,
        )?;
        Ok(Self::parse_messages(&r["messages"]))
    }

    /// Waits until `count` messages whose text matches `text_re` (from a nick
    /// matching `nick_re`) arrived in `channel` since `since`; returns those seen
    /// (fewer on timeout).
    pub fn wait_messages(
        &mut self,
        channel: &str,
        text_re: &str,
        nick_re: &str,
        since: u64,
        count: usize,
        secs: u64,
    ) -> Result<Vec<ChatLine>> {
        let r = self.call_t(
            json!({"op": "wait_message", "channel": channel, "text_re": text_re,
                   "nick_re": nick_re, "since": since, "count": count, "timeout": secs}),
            secs + 5,
        )?;
        Ok(Self::parse_messages(&r["messages"]))
    }

    /// Waits for a JOIN/PART/QUIT/KICK (`event` may be `PART|QUIT`) of a nick
    /// matching `nick_re` in `channel` since `since`.
    pub fn wait_event(
        &mut self,
        channel: &str,
        event: &str,
        nick_re: &str,
        since: u64,
        secs: u64,
    ) -> Result<Option<(String, String)>> {
        let r = self.call_t(
            json!({"op": "wait_event", "channel": channel, "event": event,
                   "nick_re": nick_re, "since": since, "timeout": secs}),
            secs + 5,
        )?;
        Ok(r["event"].as_array().map(|e| {
            (
                e[0].as_str().unwrap_or("").to_string(),
                e[1].as_str().unwrap_or("").to_string(),
            )
        }))
    }

    /// JOIN/PART/QUIT/KICK events of `channel` since `since`.
    pub fn events(&mut self, channel: &str, since: u64) -> Result<Vec<(String, String)>> {
        let r = self.call_t(
            json!({"op": "events", "channel": channel, "since": since}),
            5,
        )?;
        Ok(r["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e[0].as_str().unwrap_or("").to_string(),
                            e[1].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Nicks of a fresh NAMES reply for `channel`.
    pub fn names(&mut self, channel: &str) -> Result<Vec<String>> {
        let r = self.call_t(json!({"op": "names", "channel": channel}), 10)?;
        Ok(as_lines(&r["names"]))
    }

    /// Requests SIPE sent with `method` (body matching `body_re`), each with the
    /// final status it got.
    pub fn sip_sent(
        &mut self,
        method: &str,
        body_re: Option<&str>,
    ) -> Result<Vec<(String, Option<u16>)>> {
        let r = self.call_t(
            json!({"op": "sip", "method": method, "body_re": body_re}),
            20,
        )?;
        Ok(r["requests"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x[0].as_str().unwrap_or("").to_string(),
                            x[1].as_u64().and_then(|s| u16::try_from(s).ok()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// How many requests with `method` (body matching `body_re`) SIPE received.
    pub fn sip_received(&mut self, method: &str, body_re: Option<&str>) -> Result<u64> {
        let r = self.call_t(
            json!({"op": "sip_in", "method": method, "body_re": body_re}),
            20,
        )?;
        Ok(r["count"].as_u64().unwrap_or(0))
    }

    /// Stops bitlbee (account off first) and the driver.
    pub fn stop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.call_t(json!({"op": "stop"}), 20);
        }
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChatUser {
    fn drop(&mut self) {
        self.stop();
    }
}
