//! Test harness for the sans-IO front-end core: a fake clock, a directory of
//! users, and small user agents that build requests, answer digest challenges
//! and answer requests the core sends them. No sockets, no real time.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_auth::digest::{Algorithm, compute_response};
use confab_frontend::{
    ConnId, Core, CoreConfig, Dest, DirectoryChange, Metrics, Output, Transport, UserEntry,
};
use confab_sip::{HeaderName, Limits, Message, ResponseBuilder};

pub const DOMAIN: &str = "example.com";
/// The front end's advertised address.
pub const SERVER_HOST: &str = "192.0.2.1";
pub const SERVER_PORT: u16 = 5060;
/// Wall clock (ms since the epoch) at the start of every test.
pub const WALL0: u64 = 1_700_000_000_000;

/// Parsing limits for what the core emits (never refused).
pub fn unbounded() -> Limits {
    Limits {
        max_message_bytes: usize::MAX,
        max_headers: usize::MAX,
    }
}

/// Parses bytes the core produced; panics with the text when they do not parse.
pub fn parse(data: &Bytes) -> Message {
    match Message::parse(data.clone(), &unbounded()) {
        Ok(m) => m,
        Err(e) => panic!(
            "core produced an unparsable message ({e}):\n{}",
            String::from_utf8_lossy(data)
        ),
    }
}

/// One message the core sent.
#[derive(Clone, Debug)]
pub struct Sent {
    pub dest: Dest,
    pub msg: Message,
}

impl Sent {
    pub fn status(&self) -> Option<u16> {
        self.msg.status()
    }
    pub fn reason(&self) -> &str {
        self.msg.reason().unwrap_or("")
    }
    pub fn method(&self) -> Option<&str> {
        self.msg.method().map(|m| m.as_str())
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.msg.header_str(name)
    }
    /// Every value of a header, each line split on commas for list headers.
    pub fn headers(&self, name: HeaderName) -> Vec<String> {
        self.msg.header_values(name).map(str::to_owned).collect()
    }
    pub fn body(&self) -> String {
        String::from_utf8_lossy(self.msg.body()).into_owned()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.msg.as_bytes()).into_owned()
    }
}

/// Queries over what the core sent in one step.
pub trait SentExt {
    /// Messages sent to this user agent's address.
    fn to_ua(&self, ua: &Ua) -> Vec<Sent>;
    /// The only message sent to `ua`; panics otherwise.
    fn one_to(&self, ua: &Ua) -> Sent;
    /// Responses (to anyone).
    fn responses(&self) -> Vec<Sent>;
    /// Requests with this method (to anyone).
    fn requests(&self, method: &str) -> Vec<Sent>;
    fn dump(&self) -> String;
}

impl SentExt for [Sent] {
    fn to_ua(&self, ua: &Ua) -> Vec<Sent> {
        self.iter()
            .filter(|s| s.dest.addr == ua.addr)
            .cloned()
            .collect()
    }
    fn one_to(&self, ua: &Ua) -> Sent {
        let v = self.to_ua(ua);
        assert_eq!(
            v.len(),
            1,
            "expected exactly one message to {}, got:\n{}",
            ua.user,
            self.dump()
        );
        v.into_iter().next().unwrap_or_else(|| unreachable!())
    }
    fn responses(&self) -> Vec<Sent> {
        self.iter()
            .filter(|s| !s.msg.is_request())
            .cloned()
            .collect()
    }
    fn requests(&self, method: &str) -> Vec<Sent> {
        self.iter()
            .filter(|s| s.method() == Some(method))
            .cloned()
            .collect()
    }
    fn dump(&self) -> String {
        self.iter()
            .map(|s| format!("--> {:?} {}\n{}", s.dest.transport, s.dest.addr, s.text()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A request under construction: header lines in order.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub ruri: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<(String, String)>,
}

impl Req {
    /// Appends a header line.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
    /// Replaces every line of a header (or appends it).
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        if let Some(p) = self
            .headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            self.headers[p].1 = value;
            let mut i = p + 1;
            while i < self.headers.len() {
                if self.headers[i].0.eq_ignore_ascii_case(name) {
                    self.headers.remove(i);
                } else {
                    i += 1;
                }
            }
        } else {
            self.headers.push((name.to_owned(), value));
        }
        self
    }
    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn body(mut self, content_type: &str, body: impl Into<String>) -> Self {
        self.body = Some((content_type.to_owned(), body.into()));
        self
    }
    pub fn cseq(&self) -> u32 {
        self.get("CSeq")
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }
    pub fn bytes(&self) -> Bytes {
        let mut s = format!("{} {} SIP/2.0\r\n", self.method, self.ruri);
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        match &self.body {
            Some((ct, b)) => {
                s.push_str(&format!(
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                ));
            }
            None => s.push_str("Content-Length: 0\r\n\r\n"),
        }
        Bytes::from(s)
    }
}

/// A test user agent at its own address.
#[derive(Clone, Debug)]
pub struct Ua {
    pub user: String,
    pub password: String,
    pub addr: SocketAddr,
    pub transport: Transport,
    pub conn: Option<ConnId>,
    pub tag: String,
    /// Digest algorithm to answer with.
    pub algorithm: Algorithm,
    seq: u32,
    nc: u32,
}

impl Ua {
    pub fn new(user: &str, password: &str, addr: &str) -> Ua {
        Ua {
            user: user.to_owned(),
            password: password.to_owned(),
            addr: addr
                .parse()
                .unwrap_or_else(|e| panic!("bad address {addr}: {e}")),
            transport: Transport::Udp,
            conn: None,
            tag: format!("{user}-tag"),
            algorithm: Algorithm::Md5,
            seq: 0,
            nc: 0,
        }
    }

    /// The same user agent over a TCP connection.
    pub fn tcp(mut self, conn: u64) -> Ua {
        self.transport = Transport::Tcp;
        self.conn = Some(ConnId(conn));
        self
    }

    pub fn aor(&self) -> String {
        format!("{}@{DOMAIN}", self.user)
    }
    pub fn uri(&self) -> String {
        format!("sip:{}@{DOMAIN}", self.user)
    }
    /// `sip:user@ip:port` (with `;transport=tcp` over TCP).
    pub fn contact_uri(&self) -> String {
        match self.transport {
            Transport::Udp => format!("sip:{}@{}", self.user, self.addr),
            t => format!(
                "sip:{}@{};transport={}",
                self.user,
                self.addr,
                t.uri_param()
            ),
        }
    }
    pub fn dest(&self) -> Dest {
        Dest {
            transport: self.transport,
            addr: self.addr,
            conn: self.conn,
        }
    }
    pub fn new_branch(&mut self) -> String {
        self.seq += 1;
        format!("z9hG4bK{}{}x{}", self.user, self.addr.port(), self.seq)
    }
    pub fn via(&mut self) -> String {
        let b = self.new_branch();
        format!(
            "SIP/2.0/{} {};branch={b};rport",
            self.transport.via_name(),
            self.addr
        )
    }
    pub fn new_call_id(&mut self) -> String {
        self.seq += 1;
        format!(
            "{}-{}-{}@{}",
            self.user,
            self.addr.port(),
            self.seq,
            self.addr.ip()
        )
    }

    /// A new out-of-dialog request (new Call-ID, CSeq 1) with a Contact.
    pub fn request(&mut self, method: &str, ruri: &str, to: &str) -> Req {
        let via = self.via();
        let call_id = self.new_call_id();
        Req {
            method: method.to_owned(),
            ruri: ruri.to_owned(),
            headers: Vec::new(),
            body: None,
        }
        .header("Via", via)
        .header("Max-Forwards", "70")
        .header("From", format!("<{}>;tag={}", self.uri(), self.tag))
        .header("To", format!("<{to}>"))
        .header("Call-ID", call_id)
        .header("CSeq", format!("1 {method}"))
        .header("Contact", format!("<{}>", self.contact_uri()))
    }

    /// REGISTER for this user's own address.
    pub fn register(&mut self, expires: u32) -> Req {
        let uri = self.uri();
        self.request("REGISTER", &format!("sip:{DOMAIN}"), &uri)
            .header("Expires", expires.to_string())
    }

    /// The next request of the same call: CSeq + 1, new branch (a re-sent
    /// request after a challenge, or a refresh).
    pub fn next(&mut self, req: &Req) -> Req {
        let via = self.via();
        let n = req.cseq() + 1;
        let method = req.method.clone();
        req.clone()
            .set("Via", via)
            .set("CSeq", format!("{n} {method}"))
    }

    /// The digest credentials answering `challenge` (a 401 or 407) for `req`.
    pub fn credentials(&mut self, req: &Req, challenge: &Message) -> (String, String) {
        let (hname, cname) = match challenge.status() {
            Some(401) => ("WWW-Authenticate", "Authorization"),
            Some(407) => ("Proxy-Authenticate", "Proxy-Authorization"),
            other => panic!(
                "not a challenge: {other:?}\n{}",
                String::from_utf8_lossy(challenge.as_bytes())
            ),
        };
        let name = HeaderName::from_bytes(hname.as_bytes());
        let wanted = self.algorithm.name();
        let value = challenge
            .headers_named(name)
            .find(|v| {
                confab_auth::params::parse(v).ok().is_some_and(|p| {
                    p.get("algorithm")
                        .unwrap_or("MD5")
                        .eq_ignore_ascii_case(wanted)
                })
            })
            .unwrap_or_else(|| {
                panic!(
                    "no {wanted} challenge in\n{}",
                    String::from_utf8_lossy(challenge.as_bytes())
                )
            })
            .to_owned();
        let p = match confab_auth::params::parse(&value) {
            Ok(p) => p,
            Err(e) => panic!("bad challenge {value}: {e}"),
        };
        let realm = p.get("realm").unwrap_or_default().to_owned();
        let nonce = p.get("nonce").unwrap_or_default().to_owned();
        let opaque = p.get("opaque").map(str::to_owned);
        self.nc += 1;
        let nc = format!("{:08x}", self.nc);
        let cnonce = format!("cn{}{}", self.user, self.nc);
        let ha1 = if self.algorithm == Algorithm::Sha256 {
            confab_auth::credentials::ha1_sha256(&self.user, &realm, &self.password)
        } else {
            confab_auth::credentials::ha1_md5(&self.user, &realm, &self.password)
        };
        let response = compute_response(
            self.algorithm,
            &ha1,
            &nonce,
            Some(&nc),
            Some(&cnonce),
            Some("auth"),
            &req.method,
            &req.ruri,
        );
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{}\", response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
            self.user, req.ruri, wanted
        );
        if let Some(o) = opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        (cname.to_owned(), v)
    }

    /// `req` re-sent with credentials answering `challenge`.
    pub fn authorize(&mut self, req: &Req, challenge: &Message) -> Req {
        let next = self.next(req);
        let (name, value) = self.credentials(&next, challenge);
        next.without("Authorization")
            .without("Proxy-Authorization")
            .header(&name, value)
    }

    /// A response of this user agent to a request the core sent it.
    pub fn response(&self, req: &Message, code: u16) -> Bytes {
        self.response_with(req, code, |b| b)
    }

    pub fn response_with(
        &self,
        req: &Message,
        code: u16,
        f: impl FnOnce(ResponseBuilder<'_>) -> ResponseBuilder<'_>,
    ) -> Bytes {
        let id: String = self
            .addr
            .to_string()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let mut b = ResponseBuilder::new(req, code).to_tag(format!("{}-{id}", self.tag));
        if (200..300).contains(&code) && req.method().is_some_and(|m| m.as_str() == "INVITE") {
            b = b
                .header("Contact", format!("<{}>", self.contact_uri()))
                .copy_record_route();
        }
        f(b).build()
    }
}

/// The core with a fake clock.
pub struct Harness {
    pub core: Core,
    pub metrics: Arc<Metrics>,
    pub t0: Instant,
    pub now: Instant,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut CoreConfig)) -> Harness {
        let mut cfg = CoreConfig::new(DOMAIN, SERVER_HOST, SERVER_PORT);
        f(&mut cfg);
        let metrics = Arc::new(Metrics::default());
        let t0 = Instant::now();
        let core = Core::new(cfg, [7u8; 32], [9u8; 32], metrics.clone(), t0);
        let mut h = Harness {
            core,
            metrics,
            t0,
            now: t0,
        };
        for (u, p) in [
            ("alice", "alice-pw"),
            ("bob", "bob-pw"),
            ("carol", "carol-pw"),
        ] {
            h.add_user(u, p, true);
        }
        h
    }

    /// Milliseconds since the epoch, advancing with the monotonic clock.
    pub fn wall_ms(&self) -> u64 {
        WALL0 + u64::try_from((self.now - self.t0).as_millis()).unwrap_or(u64::MAX)
    }

    pub fn add_user(&mut self, user: &str, password: &str, enabled: bool) {
        let entry = UserEntry {
            address: format!("{user}@{DOMAIN}"),
            display_name: Some(user.to_uppercase()),
            enabled,
            credentials: confab_auth::credentials::derive(user, DOMAIN, password),
        };
        let now = self.now;
        self.core
            .apply_directory_change(DirectoryChange::Upsert(entry), now);
    }

    /// A user agent of a known user (password as set up by [`Harness::with`]).
    pub fn ua(&self, user: &str, addr: &str) -> Ua {
        Ua::new(user, &format!("{user}-pw"), addr)
    }

    /// What the core produced so far, parsed.
    pub fn outputs(&mut self) -> Vec<Sent> {
        self.core
            .take_output()
            .into_iter()
            .filter_map(|o| match o {
                Output::Send { dest, data } => Some(Sent {
                    dest,
                    msg: parse(&data),
                }),
                Output::Close { .. } => None,
            })
            .collect()
    }

    /// Feeds raw bytes as if received from `src` (parse errors included).
    pub fn receive(&mut self, src: Dest, data: Bytes) -> Vec<Sent> {
        let (now, wall) = (self.now, self.wall_ms());
        match Message::parse(data, &Limits::default()) {
            Ok(m) => self.core.on_message(m, src, now, wall),
            Err(e) => self.core.on_parse_error(&e, src),
        }
        self.outputs()
    }

    /// Sends a request from `ua`.
    pub fn send(&mut self, ua: &Ua, req: &Req) -> Vec<Sent> {
        self.receive(ua.dest(), req.bytes())
    }

    /// `ua` answers a request the core sent it.
    pub fn answer(&mut self, ua: &Ua, req: &Sent, code: u16) -> Vec<Sent> {
        let bytes = ua.response(&req.msg, code);
        self.receive(ua.dest(), bytes)
    }

    /// Sends `req`; when the answer to `ua` is a 401/407, answers the challenge
    /// once. Returns the request actually sent last and what the core produced.
    pub fn send_authed(&mut self, ua: &mut Ua, req: Req) -> (Req, Vec<Sent>) {
        let out = self.send(ua, &req);
        let challenge = out
            .to_ua(ua)
            .into_iter()
            .find(|s| matches!(s.status(), Some(401 | 407)));
        let Some(ch) = challenge else {
            return (req, out);
        };
        if req.method == "INVITE" {
            // The ACK for the challenge (absorbed by the transaction layer).
            let ack = ack_for_non2xx(&req, &ch.msg);
            let absorbed = self.send(ua, &ack);
            assert!(
                absorbed.is_empty(),
                "ACK for 407 not absorbed:\n{}",
                absorbed.dump()
            );
        }
        let authed = ua.authorize(&req, &ch.msg);
        let out = self.send(ua, &authed);
        (authed, out)
    }

    /// Registers `ua` for `expires` seconds; asserts the 200.
    pub fn register(&mut self, ua: &mut Ua, expires: u32) -> Sent {
        let out = self.register_out(ua, expires);
        out.one_to(ua)
    }

    /// Registers `ua`; returns everything the core sent (e.g. NOTIFYs to watchers).
    pub fn register_out(&mut self, ua: &mut Ua, expires: u32) -> Vec<Sent> {
        let req = ua.register(expires);
        let (_, out) = self.send_authed(ua, req);
        let r = out.one_to(ua);
        assert_eq!(r.status(), Some(200), "REGISTER failed:\n{}", out.dump());
        out
    }

    /// Moves the clock to `now + d`, firing every timer on the way in order.
    /// Also checks that the core never reports a deadline it has already passed
    /// (which would make the server loop spin).
    pub fn advance(&mut self, d: Duration) -> Vec<Sent> {
        let end = self.now + d;
        let mut out = Vec::new();
        for _ in 0..100_000 {
            match self.core.next_deadline() {
                Some(at) if at <= end => {
                    let at = at.max(self.now);
                    self.now = at;
                    let wall = self.wall_ms();
                    self.core.on_tick(at, wall);
                    out.extend(self.outputs());
                    if let Some(next) = self.core.next_deadline() {
                        assert!(
                            next > at,
                            "deadline {:?} not after the tick that should have handled it",
                            next - self.t0
                        );
                    }
                }
                _ => {
                    self.now = end;
                    let wall = self.wall_ms();
                    self.core.on_tick(end, wall);
                    out.extend(self.outputs());
                    return out;
                }
            }
        }
        panic!("timers never settled");
    }

    pub fn secs(&mut self, s: u64) -> Vec<Sent> {
        self.advance(Duration::from_secs(s))
    }

    pub fn metric(&self, f: impl Fn(&Metrics) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.metrics).load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

/// The ACK a UAC sends for a non-2xx final response to `invite`.
pub fn ack_for_non2xx(invite: &Req, resp: &Message) -> Req {
    let mut ack = Req {
        method: "ACK".into(),
        ruri: invite.ruri.clone(),
        headers: Vec::new(),
        body: None,
    };
    for (n, v) in &invite.headers {
        let v = match n.to_ascii_lowercase().as_str() {
            "via" | "from" | "call-id" | "max-forwards" | "route" => v.clone(),
            "to" => resp.header(HeaderName::To).unwrap_or("").to_owned(),
            "cseq" => format!("{} ACK", invite.cseq()),
            _ => continue,
        };
        ack.headers.push((n.clone(), v));
    }
    ack
}

/// Header value parameter (`;name=value`) of a header line.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=').unwrap_or((p, ""));
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The URI inside `<...>` of a name-addr (or the value itself).
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}
