//! `chat-load`: the Persistent Chat load generator of bench/chat.sh. It speaks
//! XCCOS (MS-XCCOSIP over SIP INFO) over UDP with digest authentication, like
//! pidgin-sipe does over TCP/TLS: per user INVITE `sip:ocschat@DOMAIN`,
//! `cmd:requri`, BYE, INVITE of the chat-server URI from `rpl:requri`, `cmd:join`.
//! Many users share a few UDP sockets (one router thread per socket answers every
//! server request 200 at once, counts the posts delivered and their latency: each
//! post carries its send time). With `--transport tcp` every user has its own TCP
//! connection instead, as a real client does (reader and writer tasks on a small
//! tokio runtime; the same dispatch), so the number of users is bounded by the
//! open-file limit of both processes.
//!
//! ```text
//! chat-load --server 127.0.0.1:5060 --domain bench.test --password pw \
//!   --user-prefix user --users 20000 --room big=0..16000 --room r150-%=16000..20000/150 \
//!   --server-pid PID --model r150-%:24:30 --ceiling r150-0 --ceiling big \
//!   --backfill r150-0 --out results.json
//! ```
//! Phases: join (every user joins its room; server PSS before/after -> bytes per
//! joined user), model (posts at N/s spread over the rooms matching a pattern for
//! S seconds; p50/p99/max post-to-delivery latency), ceiling (posts into one room
//! at a doubling rate until deliveries fall behind or p99 > 1 s; the highest
//! deliveries/s kept), backfill (`cmd:bccontext` last 25, time to the reply).
//! Prints a JSON document (also to --out).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use confab_acceptance::digest::pick_challenge;
use confab_acceptance::sip::{Message, take_stream_message};
use confab_acceptance::unique_token;
use confab_acceptance::xccos::{ack_for, elements, escape, posts, resp};

type Res<T> = std::result::Result<T, String>;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[derive(Default)]
struct Stats {
    deliveries: u64,
    /// Post-to-delivery latencies (µs) while `measuring`.
    lat_us: Vec<u32>,
    notices: u64,
    /// (Call-ID, CSeq) of the posts delivered: a retransmitted INFO (the front end
    /// retransmits over UDP when our 200 is late) is not a second delivery.
    seen: std::collections::HashSet<(String, String)>,
    /// Retransmitted post INFOs (answered, not counted).
    retransmitted: u64,
    first_ns: u128,
    last_ns: u128,
}

struct Shared {
    server: SocketAddr,
    domain: String,
    password: String,
    routes: RwLock<HashMap<String, Sender<Message>>>,
    stats: Mutex<Stats>,
    stop: AtomicBool,
    sent_responses: AtomicU64,
}

fn user_of(v: &str) -> Option<String> {
    let start = v.find("sip:")? + 4;
    let rest = &v[start..];
    let end = rest.find('@')?;
    Some(rest[..end].to_string())
}

/// One UDP socket's router: receives and hands every message to `dispatch`.
fn router(sh: Arc<Shared>, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 65536];
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    while !sh.stop.load(Ordering::Relaxed) {
        let (n, src) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        let Ok(m) = Message::parse(&buf[..n]) else {
            continue;
        };
        dispatch(&sh, m, |bytes| {
            let _ = sock.send_to(bytes, src);
        });
    }
}

/// Answers a server request 200 (through `reply`), counts deliveries, hands
/// responses and XCCOS replies to the user's channel.
fn dispatch(sh: &Shared, m: Message, reply: impl Fn(&[u8])) {
    if m.is_request() {
        if m.method() == Some("ACK") {
            return;
        }
        let r = m.response(200, "OK", "bench");
        reply(&r.to_bytes());
        sh.sent_responses.fetch_add(1, Ordering::Relaxed);
        let body = m.body_text();
        if body.contains("<grpchat") {
            let t = now_ns();
            let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
            let key = (
                m.header("Call-ID").unwrap_or("").to_string(),
                m.header("CSeq").unwrap_or("").to_string(),
            );
            if !st.seen.insert(key) {
                st.retransmitted += 1;
                return;
            }
            st.deliveries += 1;
            if st.first_ns == 0 {
                st.first_ns = t;
            }
            st.last_ns = t;
            for p in posts(&body) {
                if let Some(ts) = p
                    .text
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("bench-ts="))
                    .and_then(|v| v.parse::<u128>().ok())
                {
                    let us = t.saturating_sub(ts) / 1000;
                    st.lat_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            return;
        }
        if body.contains("<ntc") {
            let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
            st.notices += 1;
            return;
        }
        let who = m.header("To").and_then(user_of);
        if let Some(who) = who {
            let routes = sh.routes.read().unwrap_or_else(|e| e.into_inner());
            if let Some(tx) = routes.get(&who) {
                let _ = tx.send(m);
            }
        }
    } else if let Some(who) = m.header("From").and_then(user_of) {
        let routes = sh.routes.read().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = routes.get(&who) {
            let _ = tx.send(m);
        }
    }
}

/// Where a client's requests go out: a shared UDP socket, or the user's own TCP
/// connection (a writer task drains `tx`; a reader task feeds `dispatch`).
#[derive(Clone)]
enum Link {
    Udp(Arc<UdpSocket>),
    Tcp {
        tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
        local: SocketAddr,
    },
}

impl Link {
    fn send(&self, bytes: &[u8], server: SocketAddr) {
        match self {
            Link::Udp(s) => {
                let _ = s.send_to(bytes, server);
            }
            Link::Tcp { tx, .. } => {
                let _ = tx.send(bytes.to_vec());
            }
        }
    }

    fn local(&self) -> String {
        match self {
            Link::Udp(s) => s.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Link::Tcp { local, .. } => local.to_string(),
        }
    }

    /// The Via transport.
    fn via(&self) -> &'static str {
        match self {
            Link::Udp(_) => "UDP",
            Link::Tcp { .. } => "TCP",
        }
    }

    /// The Contact URI parameter that makes the server reuse the connection.
    fn contact_param(&self) -> &'static str {
        match self {
            Link::Udp(_) => "",
            Link::Tcp { .. } => ";transport=tcp",
        }
    }

    fn reliable(&self) -> bool {
        matches!(self, Link::Tcp { .. })
    }

    /// Opens the user's own TCP connection to `server`; its reader and writer
    /// run on `rt` and end when the server closes it or `tx` is dropped.
    fn connect_tcp(sh: &Arc<Shared>, rt: &tokio::runtime::Handle) -> Res<Link> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let s = std::net::TcpStream::connect(sh.server).map_err(|e| format!("connect: {e}"))?;
        let local = s.local_addr().map_err(|e| format!("local_addr: {e}"))?;
        let _ = s.set_nodelay(true);
        s.set_nonblocking(true)
            .map_err(|e| format!("set_nonblocking: {e}"))?;
        let _guard = rt.enter();
        let s = tokio::net::TcpStream::from_std(s).map_err(|e| format!("from_std: {e}"))?;
        let (mut rd, mut wr) = s.into_split();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        rt.spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
        });
        let (sh2, tx2) = (Arc::clone(sh), tx.clone());
        rt.spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            let mut chunk = vec![0u8; 16384];
            loop {
                let n = match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 1 << 20 {
                    break;
                }
                while let Some(one) = take_stream_message(&mut buf) {
                    if let Ok(m) = Message::parse(&one) {
                        dispatch(&sh2, m, |bytes| {
                            let _ = tx2.send(bytes.to_vec());
                        });
                    }
                }
            }
        });
        Ok(Link::Tcp { tx, local })
    }
}

/// A user's chat-server dialog.
#[derive(Clone)]
struct Session {
    user: String,
    call_id: String,
    local_tag: String,
    remote_uri: String,
    remote_tag: String,
    target: String,
    routes: Vec<String>,
    cseq: u32,
    envid: u64,
    chan: String,
}

struct Client {
    sh: Arc<Shared>,
    link: Link,
    rx: Receiver<Message>,
    /// Server requests that arrived while a response was awaited (a reply INFO
    /// may arrive before the 200 of the command it answers: two transactions).
    early: std::collections::VecDeque<Message>,
    user: String,
    cseq: u32,
}

impl Client {
    fn new(sh: &Arc<Shared>, link: &Link, user: &str) -> Client {
        let (tx, rx) = channel();
        sh.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.to_string(), tx);
        Client {
            sh: Arc::clone(sh),
            link: link.clone(),
            rx,
            early: std::collections::VecDeque::new(),
            user: user.to_string(),
            cseq: 0,
        }
    }

    fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.sh.domain)
    }

    fn local(&self) -> String {
        self.link.local()
    }

    /// Sends a request (retransmitted on UDP: 0.5, 1, 2, 4 s), answers one
    /// digest challenge; returns the final response.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        method: &str,
        ruri: &str,
        from_tag: &str,
        to: &str,
        call_id: &str,
        routes: &[String],
        extra: &[(&str, String)],
        body: Option<(&str, String)>,
    ) -> Res<Message> {
        let mut auth: Option<(String, String)> = None;
        for _ in 0..2 {
            self.cseq += 1;
            let branch = format!("z9hG4bK{}", unique_token());
            let mut h: Vec<(String, String)> = vec![
                (
                    "Via".into(),
                    format!(
                        "SIP/2.0/{} {};branch={branch};rport",
                        self.link.via(),
                        self.local()
                    ),
                ),
                ("Max-Forwards".into(), "70".into()),
                ("From".into(), format!("<{}>;tag={from_tag}", self.aor())),
                ("To".into(), to.to_string()),
                ("Call-ID".into(), call_id.to_string()),
                ("CSeq".into(), format!("{} {method}", self.cseq)),
                (
                    "Contact".into(),
                    format!(
                        "<sip:{}@{}{}>",
                        self.user,
                        self.local(),
                        self.link.contact_param()
                    ),
                ),
            ];
            for r in routes {
                h.push(("Route".into(), r.clone()));
            }
            for (n, v) in extra {
                h.push(((*n).to_string(), v.clone()));
            }
            if let Some((n, v)) = &auth {
                h.push((n.clone(), v.clone()));
            }
            let mut b = Vec::new();
            if let Some((ct, text)) = &body {
                h.push(("Content-Type".into(), (*ct).to_string()));
                b = text.as_bytes().to_vec();
            }
            h.push(("Content-Length".into(), b.len().to_string()));
            let req = Message {
                first_line: format!("{method} {ruri} SIP/2.0"),
                headers: h,
                body: b,
            };
            let bytes = req.to_bytes();
            let mut wait = Duration::from_millis(500);
            let mut tries = 0;
            let resp = 'outer: loop {
                // Over TCP the request goes out once (a reliable transport); the
                // loop only waits.
                if tries == 0 || !self.link.reliable() {
                    self.link.send(&bytes, self.sh.server);
                }
                let end = Instant::now() + wait;
                loop {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match self.rx.recv_timeout(left) {
                        Ok(m) => {
                            if m.is_request() {
                                self.early.push_back(m);
                            } else if m.branch().as_deref() == Some(branch.as_str())
                                && m.status().unwrap_or(0) >= 200
                            {
                                break 'outer m;
                            }
                        }
                        Err(_) => break,
                    }
                }
                tries += 1;
                if tries >= 6 {
                    return Err(format!("{}: no answer to {method}", self.user));
                }
                wait = (wait * 2).min(Duration::from_secs(4));
            };
            let code = resp.status().unwrap_or(0);
            if method == "INVITE" && code >= 300 {
                self.link
                    .send(&ack_for(&req, &resp).to_bytes(), self.sh.server);
            }
            if (code == 401 || code == 407) && auth.is_none() {
                let (ch, an) = if code == 401 {
                    ("WWW-Authenticate", "Authorization")
                } else {
                    ("Proxy-Authenticate", "Proxy-Authorization")
                };
                let c = pick_challenge(resp.headers_named(ch)).map_err(|e| e.0)?;
                let v = c.authorization(
                    method,
                    ruri,
                    &self.user,
                    &self.sh.password,
                    &unique_token(),
                    1,
                );
                auth = Some((an.into(), v));
                continue;
            }
            return Ok(resp);
        }
        Err(format!("{}: {method} challenged twice", self.user))
    }

    /// Waits for a server INFO (already answered 200 by the router) with rpl `id`.
    fn wait_rpl(&mut self, id: &str, timeout: Duration) -> Res<String> {
        let is_it = |b: &str| elements(b, "rpl").iter().any(|e| e.attr("id") == Some(id));
        if let Some(i) = self.early.iter().position(|m| is_it(&m.body_text()))
            && let Some(m) = self.early.remove(i)
        {
            return Ok(m.body_text());
        }
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{}: no {id}", self.user));
            }
            match self.rx.recv_timeout(left) {
                Ok(m) if m.is_request() => {
                    let b = m.body_text();
                    if elements(&b, "rpl").iter().any(|e| e.attr("id") == Some(id)) {
                        return Ok(b);
                    }
                }
                Ok(_) => {}
                Err(_) => return Err(format!("{}: no {id}", self.user)),
            }
        }
    }

    fn invite(&mut self, uri: &str) -> Res<Session> {
        let call_id = format!("cl-{}", unique_token());
        let tag = unique_token();
        let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=message 5060 sip null\r\na=accept-types:text/plain\r\n"
            .to_string();
        let r = self.request(
            "INVITE",
            uri,
            &tag,
            &format!("<{uri}>"),
            &call_id,
            &[],
            &[("Supported", "ms-sender".into())],
            Some(("application/sdp", sdp)),
        )?;
        if r.status() != Some(200) {
            return Err(format!("{}: INVITE {uri}: {}", self.user, r.first_line));
        }
        let target = r
            .header("Contact")
            .and_then(|c| {
                let a = c.find('<')?;
                let b = c.find('>')?;
                (b > a).then(|| c[a + 1..b].to_string())
            })
            .unwrap_or_else(|| uri.to_string());
        let mut routes = Vec::new();
        for rr in r.headers_named("Record-Route") {
            for p in rr.split(',') {
                routes.push(p.trim().to_string());
            }
        }
        routes.reverse();
        let s = Session {
            user: self.user.clone(),
            call_id,
            local_tag: tag,
            remote_uri: uri.to_string(),
            remote_tag: r.header_param("To", "tag").unwrap_or_default(),
            target,
            routes,
            cseq: self.cseq,
            envid: 1,
            chan: String::new(),
        };
        // ACK
        let mut h = vec![
            (
                "Via".to_string(),
                format!(
                    "SIP/2.0/{} {};branch=z9hG4bK{};rport",
                    self.link.via(),
                    self.local(),
                    unique_token()
                ),
            ),
            ("Max-Forwards".into(), "70".into()),
            (
                "From".into(),
                format!("<{}>;tag={}", self.aor(), s.local_tag),
            ),
            ("To".into(), format!("<{uri}>;tag={}", s.remote_tag)),
            ("Call-ID".into(), s.call_id.clone()),
            (
                "CSeq".into(),
                format!("{} ACK", r.cseq().map(|c| c.0).unwrap_or(self.cseq)),
            ),
        ];
        for rt in &s.routes {
            h.push(("Route".into(), rt.clone()));
        }
        h.push(("Content-Length".into(), "0".into()));
        let ack = Message {
            first_line: format!("ACK {} SIP/2.0", s.target),
            headers: h,
            body: Vec::new(),
        };
        self.link.send(&ack.to_bytes(), self.sh.server);
        Ok(s)
    }

    fn in_dialog(&mut self, s: &mut Session, method: &str, body: Option<String>) -> Res<Message> {
        self.cseq = self.cseq.max(s.cseq);
        let to = format!("<{}>;tag={}", s.remote_uri, s.remote_tag);
        let r = self.request(
            method,
            &s.target.clone(),
            &s.local_tag.clone(),
            &to,
            &s.call_id.clone(),
            &s.routes.clone(),
            &[],
            body.map(|b| ("text/plain", b)),
        );
        s.cseq = self.cseq;
        r
    }

    fn command(&mut self, s: &mut Session, name: &str, data: &str) -> Res<String> {
        s.envid += 1;
        let body = format!(
            "<xccos ver=\"1\" envid=\"{}\" xmlns=\"urn:parlano:xml:ns:xccos\"><cmd id=\"cmd:{name}\" seqid=\"1\">{data}</cmd></xccos>",
            s.envid
        );
        let r = self.in_dialog(s, "INFO", Some(body))?;
        if r.status() != Some(200) {
            return Err(format!("{}: cmd:{name}: {}", self.user, r.first_line));
        }
        self.wait_rpl(&format!("rpl:{name}"), Duration::from_secs(20))
    }

    /// Discovery + join of `chan`.
    fn sign_in_and_join(&mut self, register: bool, chan: &str) -> Res<Session> {
        if register {
            let call_id = format!("reg-{}", unique_token());
            let dom = format!("sip:{}", self.sh.domain);
            let to = format!("<{}>", self.aor());
            let r = self.request(
                "REGISTER",
                &dom,
                &unique_token(),
                &to,
                &call_id,
                &[],
                &[("Expires", "3600".into())],
                None,
            )?;
            if r.status() != Some(200) {
                return Err(format!("{}: REGISTER {}", self.user, r.first_line));
            }
        }
        let mut s = self.invite(&format!("sip:ocschat@{}", self.sh.domain))?;
        let b = self.command(&mut s, "requri", "<data/>")?;
        let uri = elements(&b, "uib")
            .into_iter()
            .find_map(|e| e.attr("uri").map(str::to_string))
            .ok_or_else(|| format!("rpl:requri without uri: {b}"))?;
        let _ = self.in_dialog(&mut s, "BYE", None)?;
        let mut s = self.invite(&uri)?;
        let (domain, id) = chan
            .strip_prefix("ma-chan://")
            .and_then(|r| r.split_once('/'))
            .ok_or_else(|| format!("bad room uri {chan}"))?;
        let b = self.command(
            &mut s,
            "join",
            &format!(
                "<data><chanid key=\"0\" domain=\"{}\" value=\"{}\"/></data>",
                escape(domain),
                escape(id)
            ),
        )?;
        match resp(&b) {
            Some((200, _)) => {}
            other => return Err(format!("{}: join {chan}: {other:?}", self.user)),
        }
        s.chan = chan.to_string();
        Ok(s)
    }
}

fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn pct(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    f64::from(v[i.min(v.len() - 1)]) / 1000.0
}

struct Args {
    server: SocketAddr,
    domain: String,
    password: String,
    prefix: String,
    users: usize,
    /// (room pattern or name, first user, end user, size per room)
    rooms: Vec<(String, usize, usize, usize)>,
    uris: HashMap<String, String>,
    pid: Option<u32>,
    sockets: usize,
    /// Each user on its own TCP connection instead of shared UDP sockets.
    tcp: bool,
    threads: usize,
    register: bool,
    model: Option<(String, f64, f64)>,
    ceilings: Vec<String>,
    step_secs: f64,
    start_rate: f64,
    max_rate: f64,
    backfill: Option<String>,
    out: Option<String>,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        server: "127.0.0.1:5060".parse().map_err(|e| format!("{e}"))?,
        domain: "bench.test".into(),
        password: "pw".into(),
        prefix: "user".into(),
        users: 0,
        rooms: Vec::new(),
        uris: HashMap::new(),
        pid: None,
        sockets: 16,
        tcp: false,
        threads: 16,
        register: false,
        model: None,
        ceilings: Vec::new(),
        step_secs: 5.0,
        start_rate: 2.0,
        max_rate: 4096.0,
        backfill: None,
        out: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let val = |i: &mut usize| -> Res<String> {
        *i += 1;
        argv.get(*i)
            .cloned()
            .ok_or_else(|| "missing value".to_string())
    };
    while i < argv.len() {
        let k = argv[i].clone();
        match k.as_str() {
            "--server" => a.server = val(&mut i)?.parse().map_err(|e| format!("--server: {e}"))?,
            "--domain" => a.domain = val(&mut i)?,
            "--password" => a.password = val(&mut i)?,
            "--user-prefix" => a.prefix = val(&mut i)?,
            "--users" => a.users = val(&mut i)?.parse().map_err(|e| format!("--users: {e}"))?,
            "--room" => {
                // NAME=A..B or PATTERN%=A..B/SIZE
                let v = val(&mut i)?;
                let (name, range) = v.split_once('=').ok_or("--room NAME=A..B[/SIZE]")?;
                let (range, size) = match range.split_once('/') {
                    Some((r, s)) => (r, s.parse::<usize>().map_err(|e| format!("{e}"))?),
                    None => (range, 0),
                };
                let (x, y) = range.split_once("..").ok_or("--room range A..B")?;
                let x: usize = x.parse().map_err(|e| format!("{e}"))?;
                let y: usize = y.parse().map_err(|e| format!("{e}"))?;
                a.rooms
                    .push((name.to_string(), x, y, if size == 0 { y - x } else { size }));
            }
            "--uri" => {
                let v = val(&mut i)?;
                let (n, u) = v.split_once('=').ok_or("--uri NAME=ma-chan://...")?;
                a.uris.insert(n.to_string(), u.to_string());
            }
            "--server-pid" => a.pid = Some(val(&mut i)?.parse().map_err(|e| format!("{e}"))?),
            "--sockets" => a.sockets = val(&mut i)?.parse().map_err(|e| format!("{e}"))?,
            "--transport" => {
                a.tcp = match val(&mut i)?.as_str() {
                    "udp" => false,
                    "tcp" => true,
                    t => return Err(format!("--transport {t}: udp or tcp")),
                }
            }
            "--threads" => a.threads = val(&mut i)?.parse().map_err(|e| format!("{e}"))?,
            "--register" => a.register = true,
            "--model" => {
                // PATTERN:POSTS_PER_S:SECS
                let v = val(&mut i)?;
                let p: Vec<&str> = v.split(':').collect();
                if p.len() != 3 {
                    return Err("--model PATTERN:RATE:SECS".into());
                }
                a.model = Some((
                    p[0].to_string(),
                    p[1].parse().map_err(|e| format!("{e}"))?,
                    p[2].parse().map_err(|e| format!("{e}"))?,
                ));
            }
            "--ceiling" => a.ceilings.push(val(&mut i)?),
            "--step-secs" => a.step_secs = val(&mut i)?.parse().map_err(|e| format!("{e}"))?,
            "--start-rate" => a.start_rate = val(&mut i)?.parse().map_err(|e| format!("{e}"))?,
            "--max-rate" => a.max_rate = val(&mut i)?.parse().map_err(|e| format!("{e}"))?,
            "--backfill" => a.backfill = Some(val(&mut i)?),
            "--out" => a.out = Some(val(&mut i)?),
            "-h" | "--help" => {
                println!(
                    "see the doc comment of crates/acceptance/src/bin/chat_load.rs and bench/chat.sh"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}")),
        }
        i += 1;
    }
    Ok(a)
}

/// (user index, room name) for every membership.
fn memberships(a: &Args) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (name, x, y, size) in &a.rooms {
        for u in *x..*y {
            let room = if name.contains('%') {
                name.replace('%', &((u - x) / size).to_string())
            } else {
                name.clone()
            };
            out.push((u, room));
        }
    }
    out
}

struct Poster {
    client: Client,
    session: Session,
}

fn post(p: &mut Poster, text: &str) {
    let s = &mut p.session;
    s.envid += 1;
    let c = &mut p.client;
    c.cseq = c.cseq.max(s.cseq) + 1;
    s.cseq = c.cseq;
    let body = format!(
        "<xccos ver=\"1\" envid=\"{}\" xmlns=\"urn:parlano:xml:ns:xccos\"><grpchat id=\"grpchat\" seqid=\"1\" chanUri=\"{}\" author=\"sip:{}@{}\" ts=\"2000-01-01T00:00:00Z\"><chat>{}</chat></grpchat></xccos>",
        s.envid,
        escape(&s.chan),
        s.user,
        c.sh.domain,
        escape(text)
    );
    let mut h = vec![
        (
            "Via".to_string(),
            format!(
                "SIP/2.0/{} {};branch=z9hG4bK{};rport",
                c.link.via(),
                c.local(),
                unique_token()
            ),
        ),
        ("Max-Forwards".into(), "70".into()),
        ("From".into(), format!("<{}>;tag={}", c.aor(), s.local_tag)),
        (
            "To".into(),
            format!("<{}>;tag={}", s.remote_uri, s.remote_tag),
        ),
        ("Call-ID".into(), s.call_id.clone()),
        ("CSeq".into(), format!("{} INFO", s.cseq)),
        (
            "Contact".into(),
            format!("<sip:{}@{}{}>", s.user, c.local(), c.link.contact_param()),
        ),
    ];
    for r in &s.routes {
        h.push(("Route".into(), r.clone()));
    }
    h.push(("Content-Type".into(), "text/plain".into()));
    h.push(("Content-Length".into(), body.len().to_string()));
    let m = Message {
        first_line: format!("INFO {} SIP/2.0", s.target),
        headers: h,
        body: body.into_bytes(),
    };
    c.link.send(&m.to_bytes(), c.sh.server);
    // drain responses
    while c.rx.try_recv().is_ok() {}
}

fn reset_stats(sh: &Shared) {
    let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
    *st = Stats::default();
}

/// Posts at `rate`/s for `secs` spread over `posters` (round robin), waits for the
/// deliveries to settle; returns (posts, deliveries, deliveries/s, p50, p99, max ms).
fn run_step(
    sh: &Shared,
    posters: &mut [Poster],
    rate: f64,
    secs: f64,
) -> (u64, u64, f64, f64, f64, f64) {
    reset_stats(sh);
    let n = (rate * secs).round().max(1.0) as u64;
    let t0 = Instant::now();
    for k in 0..n {
        let due = t0 + Duration::from_secs_f64(k as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let i = (k as usize) % posters.len().max(1);
        if let Some(p) = posters.get_mut(i) {
            let text = format!("bench-ts={} seq={k}", now_ns());
            post(p, &text);
        }
    }
    let send_end = Instant::now();
    // settle: until no new delivery for 1 s (at most 10 s)
    let mut last = 0;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        let d = sh.stats.lock().map(|s| s.deliveries).unwrap_or(0);
        if d == last || Instant::now() > end {
            break;
        }
        last = d;
    }
    let _ = send_end;
    let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
    let span = (st.last_ns.saturating_sub(st.first_ns)) as f64 / 1e9;
    let dps = if span > 0.0 {
        st.deliveries as f64 / span.max(secs)
    } else {
        0.0
    };
    let d = st.deliveries;
    if st.retransmitted > 0 {
        eprintln!(
            "  ({} retransmitted post INFOs answered, not counted)",
            st.retransmitted
        );
    }
    let mut lat = std::mem::take(&mut st.lat_us);
    let p50 = pct(&mut lat, 0.5);
    let p99 = pct(&mut lat, 0.99);
    let max = pct(&mut lat, 1.0);
    (n, d, dps, p50, p99, max)
}

fn main() {
    match real_main() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("chat-load: {e}");
            std::process::exit(1);
        }
    }
}

fn real_main() -> Res<()> {
    let mut a = parse_args()?;
    // A TCP user registers first, as clients do: its connection is then a
    // registered flow that the server keeps open. An unregistered connection that
    // sends nothing is closed after `limits.idle_timeout_secs` (120 s), and the
    // members of a quiet room would miss the posts that follow.
    if a.tcp {
        a.register = true;
    }
    let mut report = serde_json::Map::new();
    let sh = Arc::new(Shared {
        server: a.server,
        domain: a.domain.clone(),
        password: a.password.clone(),
        routes: RwLock::new(HashMap::new()),
        stats: Mutex::new(Stats::default()),
        stop: AtomicBool::new(false),
        sent_responses: AtomicU64::new(0),
    });
    let mut socks = Vec::new();
    let mut routers = Vec::new();
    // TCP: every user's connection is read and written by tasks of this runtime.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let rt_handle = rt.handle().clone();
    for _ in 0..a.sockets.max(1) {
        if a.tcp {
            break;
        }
        let s = Arc::new(UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?);
        let (sh2, s2) = (Arc::clone(&sh), Arc::clone(&s));
        routers.push(std::thread::spawn(move || router(sh2, s2)));
        socks.push(Link::Udp(s));
    }
    report.insert("transport".into(), if a.tcp { "tcp" } else { "udp" }.into());
    let members = memberships(&a);
    let joined_users = members.len();
    report.insert("users".into(), joined_users.into());

    // ---- join phase
    let pss0 = a.pid.and_then(pss_kib);
    let cpu0 = a.pid.and_then(cpu_ticks);
    let t0 = Instant::now();
    let work = Arc::new(Mutex::new(members.clone()));
    let sessions: Arc<Mutex<HashMap<usize, (Session, Link)>>> =
        Arc::new(Mutex::new(HashMap::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let first_err: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let mut workers = Vec::new();
    for w in 0..a.threads.max(1) {
        let work = Arc::clone(&work);
        let sessions = Arc::clone(&sessions);
        let errors = Arc::clone(&errors);
        let first_err = Arc::clone(&first_err);
        let sh = Arc::clone(&sh);
        let socks = socks.clone();
        let rt_handle = rt_handle.clone();
        let tcp = a.tcp;
        let uris = a.uris.clone();
        let prefix = a.prefix.clone();
        let register = a.register;
        workers.push(std::thread::spawn(move || {
            loop {
                let job = work.lock().ok().and_then(|mut v| v.pop());
                let Some((u, room)) = job else { break };
                let user = format!("{prefix}{u:04}");
                let link = if tcp {
                    Link::connect_tcp(&sh, &rt_handle)
                } else {
                    socks
                        .get((u + w) % socks.len().max(1))
                        .cloned()
                        .ok_or_else(|| "no socket".to_string())
                };
                let r = link.and_then(|link| {
                    let mut c = Client::new(&sh, &link, &user);
                    let uri = uris
                        .get(&room)
                        .ok_or_else(|| format!("no --uri for room {room}"))?;
                    c.sign_in_and_join(register, uri).map(|s| (s, link))
                });
                match r {
                    Ok(s) => {
                        if let Ok(mut m) = sessions.lock() {
                            m.insert(u, s);
                        }
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut f) = first_err.lock()
                            && f.is_none()
                        {
                            *f = Some(e);
                        }
                    }
                }
                sh.routes
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&user);
            }
        }));
    }
    for w in workers {
        let _ = w.join();
    }
    let join_secs = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let pss1 = a.pid.and_then(pss_kib);
    let cpu1 = a.pid.and_then(cpu_ticks);
    let ok_users = sessions.lock().map(|m| m.len()).unwrap_or(0);
    let mut j = serde_json::Map::new();
    j.insert("wanted".into(), joined_users.into());
    j.insert("joined".into(), ok_users.into());
    j.insert("errors".into(), errors.load(Ordering::Relaxed).into());
    if let Ok(f) = first_err.lock()
        && let Some(e) = f.as_ref()
    {
        j.insert("first_error".into(), e.clone().into());
    }
    j.insert("secs".into(), join_secs.into());
    j.insert("joins_per_s".into(), (ok_users as f64 / join_secs).into());
    if let (Some(p0), Some(p1)) = (pss0, pss1) {
        j.insert("pss_before_kib".into(), p0.into());
        j.insert("pss_after_kib".into(), p1.into());
        if ok_users > 0 {
            j.insert(
                "bytes_per_joined_user".into(),
                ((p1.saturating_sub(p0) * 1024) as f64 / ok_users as f64).into(),
            );
        }
    }
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        j.insert("server_cpu_secs".into(), ((c1 - c0) as f64 / 100.0).into());
    }
    let notices = sh.stats.lock().map(|s| s.notices).unwrap_or(0);
    j.insert("notices_received".into(), notices.into());
    eprintln!("join: {}", serde_json::Value::Object(j.clone()));
    report.insert("join".into(), j.into());

    // Posters: one member per room (the lowest user index).
    let sess = sessions.lock().map(|m| m.clone()).unwrap_or_default();
    let mut by_room: HashMap<String, Vec<usize>> = HashMap::new();
    for (u, room) in &members {
        if sess.contains_key(u) {
            by_room.entry(room.clone()).or_default().push(*u);
        }
    }
    let make_poster = |u: usize| -> Option<Poster> {
        let (s, link) = sess.get(&u)?.clone();
        let user = format!("{}{u:04}", a.prefix);
        let c = Client::new(&sh, &link, &user);
        Some(Poster {
            client: c,
            session: s,
        })
    };

    // ---- model load
    if let Some((pat, rate, secs)) = &a.model {
        let prefix = pat.replace('%', "");
        let mut posters: Vec<Poster> = by_room
            .iter()
            .filter(|(r, _)| {
                if pat.contains('%') {
                    r.starts_with(&prefix)
                } else {
                    *r == pat
                }
            })
            .filter_map(|(_, us)| us.iter().min().and_then(|u| make_poster(*u)))
            .collect();
        posters.sort_by(|x, y| x.session.user.cmp(&y.session.user));
        let c0 = a.pid.and_then(cpu_ticks);
        let (n, d, dps, p50, p99, max) = run_step(&sh, &mut posters, *rate, *secs);
        let c1 = a.pid.and_then(cpu_ticks);
        let mut m = serde_json::Map::new();
        m.insert("rooms".into(), posters.len().into());
        m.insert("posts_per_s".into(), (*rate).into());
        m.insert("secs".into(), (*secs).into());
        m.insert("posts".into(), n.into());
        m.insert("deliveries".into(), d.into());
        m.insert("deliveries_per_s".into(), dps.into());
        m.insert("p50_ms".into(), p50.into());
        m.insert("p99_ms".into(), p99.into());
        m.insert("max_ms".into(), max.into());
        if let (Some(c0), Some(c1)) = (c0, c1) {
            m.insert(
                "server_cores".into(),
                ((c1 - c0) as f64 / 100.0 / secs).into(),
            );
        }
        eprintln!("model: {}", serde_json::Value::Object(m.clone()));
        report.insert("model".into(), m.into());
    }

    // ---- ceilings
    let mut ceil = serde_json::Map::new();
    for room in &a.ceilings {
        let Some(us) = by_room.get(room) else {
            ceil.insert(room.clone(), "room has no joined members".into());
            continue;
        };
        let Some(mut p) = us.iter().min().and_then(|u| make_poster(*u)) else {
            continue;
        };
        let members_n = us.len();
        // Let the previous stage's deliveries drain, then warm up with one post a
        // second; every other member receives each post (a delivery still arriving
        // from the model load once inflated a measured fan-out, 174 for 150 members).
        std::thread::sleep(Duration::from_secs(3));
        let _ = run_step(&sh, std::slice::from_mut(&mut p), 1.0, 1.0);
        let fanout = members_n.saturating_sub(1).max(1) as u64;
        let mut steps = Vec::new();
        let mut best: Option<serde_json::Value> = None;
        let mut rate = a.start_rate;
        let mut lo = 0.0;
        let mut hi = f64::INFINITY;
        for _ in 0..14 {
            let (n, d, dps, p50, p99, max) =
                run_step(&sh, std::slice::from_mut(&mut p), rate, a.step_secs);
            let want = n * fanout;
            let pass = d as f64 >= 0.999 * want as f64 && p99 < 1000.0;
            let s = serde_json::json!({"posts_per_s": rate, "posts": n, "expected": want,
                "deliveries": d, "deliveries_per_s": dps, "p50_ms": p50, "p99_ms": p99,
                "max_ms": max, "pass": pass});
            eprintln!("ceiling {room}: {s}");
            if pass {
                lo = rate;
                best = Some(s.clone());
            } else {
                hi = rate;
            }
            steps.push(s);
            if hi.is_finite() && hi / lo.max(1e-9) < 1.15 {
                break;
            }
            rate = if hi.is_finite() {
                (lo + hi) / 2.0
            } else {
                rate * 2.0
            };
            if rate > a.max_rate || (lo == 0.0 && hi.is_finite()) {
                break;
            }
            // let the server drain between steps
            std::thread::sleep(Duration::from_secs(2));
        }
        ceil.insert(
            room.clone(),
            serde_json::json!({"members": members_n, "fanout_per_post": fanout,
                "best": best, "steps": steps}),
        );
    }
    if !ceil.is_empty() {
        report.insert("ceiling".into(), ceil.into());
    }

    // ---- backfill
    if let Some(room) = &a.backfill
        && let Some(us) = by_room.get(room)
        && let Some(mut p) = us.iter().min().and_then(|u| make_poster(*u))
    {
        // make sure there are 25 posts
        for k in 0..30 {
            post(&mut p, &format!("backfill filler {k}"));
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_secs(1));
        let mut times = Vec::new();
        let mut counts = Vec::new();
        let mut errs = 0;
        for _ in 0..20 {
            let t = Instant::now();
            let uri = p.session.chan.clone();
            let mut s = p.session.clone();
            let r = p.client.command(
                &mut s,
                "bccontext",
                &format!(
                    "<data><chanib uri=\"{}\"/><bcq><last cnt=\"25\"/></bcq></data>",
                    escape(&uri)
                ),
            );
            p.session = s;
            match r {
                Ok(b) => {
                    times.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    counts.push(posts(&b).len());
                }
                Err(_) => errs += 1,
            }
        }
        let mut t2 = times.clone();
        report.insert(
            "backfill".into(),
            serde_json::json!({"room": room, "requests": 20, "errors": errs,
                "messages_per_reply": counts.first().copied().unwrap_or(0),
                "p50_ms": pct(&mut times, 0.5), "p99_ms": pct(&mut t2, 0.99)}),
        );
    }

    sh.stop.store(true, Ordering::Relaxed);
    for r in routers {
        let _ = r.join();
    }
    let doc = serde_json::Value::Object(report);
    let text = serde_json::to_string_pretty(&doc).map_err(|e| format!("{e}"))?;
    println!("{text}");
    if let Some(o) = &a.out {
        std::fs::write(o, &text).map_err(|e| format!("{o}: {e}"))?;
    }
    Ok(())
}
