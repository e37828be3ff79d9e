//! A deliberately small SIP user agent for tests: message parsing/building and a
//! [`Ua`] that registers, sends requests with digest authentication and receives
//! requests, over UDP, TCP ([`UdpLink`], [`TcpLink`]) or WebSocket
//! ([`crate::ws::WsLink`]). It is written from RFC 3261 independently of confab's
//! own SIP stack, so it checks the server from the outside.

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::digest::pick_challenge;
use crate::{Context, Error, Result, unique_token};

/// A parsed SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `INVITE sip:bob@example.com SIP/2.0` or `SIP/2.0 200 OK`.
    pub first_line: String,
    /// Header lines in order, names as received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Expands a compact header name (RFC 3261 §7.3.3 and extensions) to its long form.
fn long_name(name: &str) -> &str {
    match name.to_ascii_lowercase().as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "e" => "content-encoding",
        "k" => "supported",
        "s" => "subject",
        "o" => "event",
        "u" => "allow-events",
        "r" => "refer-to",
        "b" => "referred-by",
        "x" => "session-expires",
        _ => name,
    }
}

fn same_header(a: &str, b: &str) -> bool {
    long_name(a).eq_ignore_ascii_case(long_name(b))
}

impl Message {
    /// Parses one complete message (headers + body by Content-Length if present).
    pub fn parse(bytes: &[u8]) -> Result<Message> {
        let split = find(bytes, b"\r\n\r\n")
            .map(|i| (i, i + 4))
            .or_else(|| find(bytes, b"\n\n").map(|i| (i, i + 2)))
            .ok_or_else(|| Error::new("SIP message without end of headers"))?;
        let head = String::from_utf8_lossy(&bytes[..split.0]).into_owned();
        let mut lines = Vec::<String>::new();
        for l in head.split('\n') {
            let l = l.trim_end_matches('\r');
            if (l.starts_with(' ') || l.starts_with('\t')) && !lines.is_empty() {
                // header folding
                if let Some(last) = lines.last_mut() {
                    last.push(' ');
                    last.push_str(l.trim());
                }
            } else {
                lines.push(l.to_string());
            }
        }
        let mut it = lines.into_iter().skip_while(|l| l.trim().is_empty());
        let first_line = it.next().ok_or_else(|| Error::new("empty SIP message"))?;
        let mut headers = Vec::new();
        for l in it {
            if let Some((n, v)) = l.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut body = bytes[split.1..].to_vec();
        let m = Message {
            first_line,
            headers,
            body: Vec::new(),
        };
        if let Some(n) = m
            .header("Content-Length")
            .and_then(|v| v.parse::<usize>().ok())
            && body.len() > n
        {
            body.truncate(n);
        }
        Ok(Message { body, ..m })
    }

    pub fn is_request(&self) -> bool {
        !self.first_line.starts_with("SIP/")
    }

    /// Method of a request (`None` for responses).
    pub fn method(&self) -> Option<&str> {
        if self.is_request() {
            self.first_line.split_whitespace().next()
        } else {
            None
        }
    }

    pub fn request_uri(&self) -> Option<&str> {
        if self.is_request() {
            self.first_line.split_whitespace().nth(1)
        } else {
            None
        }
    }

    /// Status code of a response (`None` for requests).
    pub fn status(&self) -> Option<u16> {
        if self.is_request() {
            None
        } else {
            self.first_line.split_whitespace().nth(1)?.parse().ok()
        }
    }

    /// The first header with this name (compact forms understood).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| same_header(n, name))
            .map(|(_, v)| v.as_str())
    }

    /// All header lines with this name, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| same_header(n, name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `(number, method)` from CSeq.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let v = self.header("CSeq")?;
        let mut it = v.split_whitespace();
        let n = it.next()?.parse().ok()?;
        Some((n, it.next()?.to_ascii_uppercase()))
    }

    /// A `;name=value` parameter of a header (first header of that name).
    pub fn header_param(&self, header: &str, param: &str) -> Option<String> {
        param_of(self.header(header)?, param)
    }

    /// Branch of the top Via.
    pub fn branch(&self) -> Option<String> {
        let top = self.header("Via")?.split(',').next()?.to_string();
        param_of(&top, "branch")
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{}\r\n", self.first_line);
        let mut has_len = false;
        for (n, v) in &self.headers {
            if same_header(n, "Content-Length") {
                has_len = true;
                s.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
            } else {
                s.push_str(&format!("{n}: {v}\r\n"));
            }
        }
        if !has_len {
            s.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        s.push_str("\r\n");
        let mut b = s.into_bytes();
        b.extend_from_slice(&self.body);
        b
    }

    /// A response to this request copying Via, From, To (adding `to_tag` when the
    /// To has none), Call-ID and CSeq.
    pub fn response(&self, code: u16, reason: &str, to_tag: &str) -> Message {
        let mut headers = Vec::new();
        for v in self.headers_named("Via") {
            headers.push(("Via".to_string(), v.to_string()));
        }
        if let Some(f) = self.header("From") {
            headers.push(("From".into(), f.into()));
        }
        if let Some(t) = self.header("To") {
            let t = if param_of(t, "tag").is_none() && code > 100 {
                format!("{t};tag={to_tag}")
            } else {
                t.to_string()
            };
            headers.push(("To".into(), t));
        }
        for h in ["Call-ID", "CSeq"] {
            if let Some(v) = self.header(h) {
                headers.push((h.into(), v.into()));
            }
        }
        headers.push(("Content-Length".into(), "0".into()));
        Message {
            first_line: format!("SIP/2.0 {code} {reason}"),
            headers,
            body: Vec::new(),
        }
    }

    /// One line for transcripts: first line + Call-ID/CSeq.
    pub fn summary(&self) -> String {
        format!(
            "{} [{} / {}]",
            self.first_line,
            self.header("CSeq").unwrap_or("-"),
            self.header("Call-ID").unwrap_or("-")
        )
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `;param=value` of a header value (outside the `<...>` of a name-addr), unquoted.
pub fn param_of(value: &str, param: &str) -> Option<String> {
    let after_uri = match (value.find('<'), value.find('>')) {
        (Some(_), Some(e)) => &value[e + 1..],
        _ => value,
    };
    for p in after_uri.split(';').skip(1) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        if k.trim().eq_ignore_ascii_case(param) {
            let v = v.split(',').next().unwrap_or("").trim().trim_matches('"');
            return Some(v.to_string());
        }
    }
    None
}

/// Splits one complete SIP message off the front of a stream buffer (TCP/TLS
/// framing by Content-Length); skips CRLF keep-alives. `None` until complete.
pub fn take_stream_message(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    while buf.starts_with(b"\r\n") {
        buf.drain(..2);
    }
    let end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            let n = n.trim();
            (n == "content-length" || n == "l").then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    if buf.len() < end + len {
        return None;
    }
    Some(buf.drain(..end + len).collect())
}

/// A request with `headers`, then `Content-Type` and `Content-Length` for `body`.
pub fn request_message(
    method: &str,
    request_uri: &str,
    mut headers: Vec<(String, String)>,
    body: Option<(&str, &str)>,
) -> Message {
    let mut body_bytes = Vec::new();
    if let Some((ctype, text)) = body {
        headers.push(("Content-Type".into(), ctype.into()));
        body_bytes = text.as_bytes().to_vec();
    }
    headers.push(("Content-Length".into(), body_bytes.len().to_string()));
    Message {
        first_line: format!("{method} {request_uri} SIP/2.0"),
        headers,
        body: body_bytes,
    }
}

/// The digest answer (`Authorization` or `Proxy-Authorization` and its value) to a
/// 401 or 407 `resp`; `None` for any other response.
pub fn digest_answer(
    resp: &Message,
    method: &str,
    request_uri: &str,
    user: &str,
    password: &str,
) -> Result<Option<(String, String)>> {
    let (challenge_h, answer_h) = match resp.status() {
        Some(401) => ("WWW-Authenticate", "Authorization"),
        Some(407) => ("Proxy-Authenticate", "Proxy-Authorization"),
        _ => return Ok(None),
    };
    let ch = pick_challenge(resp.headers_named(challenge_h))?;
    let value = ch.authorization(method, request_uri, user, password, &unique_token(), 1);
    Ok(Some((answer_h.to_string(), value)))
}

/// How a [`Ua`] reaches the server.
pub trait Link {
    /// Sends one SIP message.
    fn send(&mut self, data: &[u8]) -> Result<()>;
    /// Receives one SIP message, or `None` after `timeout`.
    fn recv(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>>;
    /// Via sent-by with transport, e.g. `SIP/2.0/UDP 127.0.0.1:40000`.
    fn via(&self) -> String;
    /// host[:port] for the Contact.
    fn contact_hostport(&self) -> String;
    /// `transport=` URI parameter for the Contact (`None` for UDP).
    fn transport_param(&self) -> Option<&'static str>;
    /// Reliable transports are not retransmitted.
    fn reliable(&self) -> bool;
}

/// SIP over UDP from an ephemeral 127.0.0.1 port to the server.
pub struct UdpLink {
    sock: UdpSocket,
    server: SocketAddr,
}

impl UdpLink {
    pub fn new(server: SocketAddr) -> Result<UdpLink> {
        let sock = UdpSocket::bind("127.0.0.1:0").ctx("binding a UDP socket")?;
        Ok(UdpLink { sock, server })
    }
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.sock.local_addr().ctx("local_addr")
    }
}

impl Link for UdpLink {
    fn send(&mut self, data: &[u8]) -> Result<()> {
        self.sock.send_to(data, self.server).ctx("UDP send")?;
        Ok(())
    }
    fn recv(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let end = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match self.sock.recv_from(&mut buf) {
                Ok((n, _from)) => {
                    let d = &buf[..n];
                    if d.iter().all(|b| b.is_ascii_whitespace()) {
                        continue; // keep-alive
                    }
                    return Ok(Some(d.to_vec()));
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Ok(None);
                }
                // ICMP port unreachable from an earlier send shows up here; ignore.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(Error(format!("UDP recv: {e}"))),
            }
        }
    }
    fn via(&self) -> String {
        format!("SIP/2.0/UDP {}", self.contact_hostport())
    }
    fn contact_hostport(&self) -> String {
        self.sock
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "127.0.0.1".into())
    }
    fn transport_param(&self) -> Option<&'static str> {
        None
    }
    fn reliable(&self) -> bool {
        false
    }
}

/// SIP over one TCP connection to the server.
pub struct TcpLink {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl TcpLink {
    /// Connects from the local address `from` (e.g. `127.0.0.2`, any port).
    pub fn connect_from(from: std::net::IpAddr, server: SocketAddr) -> Result<TcpLink> {
        let domain = if server.is_ipv4() {
            socket2::Domain::IPV4
        } else {
            socket2::Domain::IPV6
        };
        let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
            .ctx("TCP socket")?;
        s.bind(&SocketAddr::new(from, 0).into())
            .ctx(format!("binding {from}"))?;
        s.connect_timeout(&server.into(), Duration::from_secs(5))
            .ctx(format!("TCP connect {server} from {from}"))?;
        let stream: TcpStream = s.into();
        stream.set_nodelay(true)?;
        Ok(TcpLink {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn connect(server: SocketAddr) -> Result<TcpLink> {
        let stream = TcpStream::connect_timeout(&server, Duration::from_secs(5))
            .ctx(format!("TCP connect {server}"))?;
        stream.set_nodelay(true)?;
        Ok(TcpLink {
            stream,
            buf: Vec::new(),
        })
    }
}

impl Link for TcpLink {
    fn send(&mut self, data: &[u8]) -> Result<()> {
        self.stream.write_all(data).ctx("TCP send")
    }
    fn recv(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let end = Instant::now() + timeout;
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(m) = take_stream_message(&mut self.buf) {
                return Ok(Some(m));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Error::new("TCP connection closed by the server")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(Error(format!("TCP recv: {e}"))),
            }
        }
    }
    fn via(&self) -> String {
        format!("SIP/2.0/TCP {}", self.contact_hostport())
    }
    fn contact_hostport(&self) -> String {
        self.stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "127.0.0.1".into())
    }
    fn transport_param(&self) -> Option<&'static str> {
        Some("tcp")
    }
    fn reliable(&self) -> bool {
        true
    }
}

/// A minimal user agent: one AOR, digest credentials, one link to the server.
pub struct Ua<L: Link> {
    pub link: L,
    pub user: String,
    pub password: String,
    pub domain: String,
    /// Overall time limit of one request (incl. authentication) or wait.
    pub timeout: Duration,
    tag: String,
    reg_call_id: String,
    cseq: u32,
    pending: VecDeque<Message>,
    seen_requests: HashSet<(String, String, String)>,
    transcript: Vec<String>,
}

impl<L: Link> Ua<L> {
    pub fn new(link: L, user: &str, password: &str, domain: &str) -> Ua<L> {
        Ua {
            link,
            user: user.into(),
            password: password.into(),
            domain: domain.into(),
            timeout: Duration::from_secs(10),
            tag: unique_token(),
            reg_call_id: format!("reg-{}", unique_token()),
            cseq: 0,
            pending: VecDeque::new(),
            seen_requests: HashSet::new(),
            transcript: Vec::new(),
        }
    }

    /// `sip:user@domain`.
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }

    fn contact(&self) -> String {
        match self.link.transport_param() {
            Some(t) => format!(
                "<sip:{}@{};transport={t}>",
                self.user,
                self.link.contact_hostport()
            ),
            None => format!("<sip:{}@{}>", self.user, self.link.contact_hostport()),
        }
    }

    /// What this UA sent and received (first lines), for failure messages.
    pub fn transcript(&self) -> String {
        let mut s = String::new();
        for l in &self.transcript {
            s.push_str("    ");
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    fn note(&mut self, dir: &str, m: &Message) {
        self.transcript.push(format!("{dir} {}", m.summary()));
    }

    fn send_msg(&mut self, m: &Message) -> Result<()> {
        self.note(">>", m);
        self.link.send(&m.to_bytes())
    }

    /// Answers a request that arrived while we wait for something else (or in
    /// [`wait_request`](Self::wait_request)): 200 for MESSAGE, NOTIFY, OPTIONS, BYE,
    /// INFO; 486 for INVITE; 405 otherwise. Retransmissions are answered but queued once.
    fn handle_request(&mut self, m: Message) -> Result<()> {
        let method = m.method().unwrap_or("").to_ascii_uppercase();
        if method == "ACK" {
            return Ok(());
        }
        let (code, reason) = match method.as_str() {
            "MESSAGE" | "NOTIFY" | "OPTIONS" | "BYE" | "INFO" => (200, "OK"),
            "INVITE" => (486, "Busy Here"),
            _ => (405, "Method Not Allowed"),
        };
        let tag = self.tag.clone();
        let resp = m.response(code, reason, &tag);
        self.send_msg(&resp)?;
        let key = (
            m.header("Call-ID").unwrap_or("").to_string(),
            m.header("CSeq").unwrap_or("").to_string(),
            m.branch().unwrap_or_default(),
        );
        if self.seen_requests.insert(key) {
            self.pending.push_back(m);
        }
        Ok(())
    }

    fn recv_one(&mut self, timeout: Duration) -> Result<Option<Message>> {
        let Some(raw) = self.link.recv(timeout)? else {
            return Ok(None);
        };
        let m = Message::parse(&raw)
            .map_err(|e| Error(format!("{e}: {:?}", String::from_utf8_lossy(&raw))))?;
        self.note("<<", &m);
        Ok(Some(m))
    }

    /// Sends one request built from the arguments and returns the final response,
    /// answering one 401/407 challenge with digest credentials on the way.
    pub fn request(
        &mut self,
        method: &str,
        request_uri: &str,
        to: &str,
        call_id: &str,
        extra_headers: &[(&str, String)],
        body: Option<(&str, &str)>,
    ) -> Result<Message> {
        let mut auth: Option<(String, String)> = None;
        let mut last = None;
        for _attempt in 0..2 {
            self.cseq += 1;
            let branch = format!("z9hG4bK{}", unique_token());
            let mut headers: Vec<(String, String)> = vec![
                (
                    "Via".into(),
                    format!("{};branch={branch};rport", self.link.via()),
                ),
                ("Max-Forwards".into(), "70".into()),
                ("From".into(), format!("<{}>;tag={}", self.aor(), self.tag)),
                ("To".into(), format!("<{to}>")),
                ("Call-ID".into(), call_id.into()),
                ("CSeq".into(), format!("{} {method}", self.cseq)),
                ("Contact".into(), self.contact()),
                ("User-Agent".into(), "confab-acceptance".into()),
            ];
            for (n, v) in extra_headers {
                headers.push(((*n).to_string(), v.clone()));
            }
            if let Some((n, v)) = &auth {
                headers.push((n.clone(), v.clone()));
            }
            let req = request_message(method, request_uri, headers, body);
            let resp = self.transact(&req, &branch, method)?;
            if auth.is_none()
                && let Some(answer) =
                    digest_answer(&resp, method, request_uri, &self.user, &self.password)?
            {
                auth = Some(answer);
                last = Some(resp);
                continue;
            }
            return Ok(resp);
        }
        last.ok_or_else(|| Error::new("no response"))
    }

    /// Sends `req` (retransmitting over UDP, RFC 3261 timer E) and waits for its
    /// final response.
    fn transact(&mut self, req: &Message, branch: &str, method: &str) -> Result<Message> {
        self.send_msg(req)?;
        let end = Instant::now() + self.timeout;
        let mut interval = Duration::from_millis(500);
        let mut next_retx = Instant::now() + interval;
        loop {
            let now = Instant::now();
            if now >= end {
                return Err(Error(format!(
                    "no final response to {method} within {:?}; transcript:\n{}",
                    self.timeout,
                    self.transcript()
                )));
            }
            let wait = if self.link.reliable() {
                end - now
            } else {
                next_retx.min(end).saturating_duration_since(now)
            };
            match self.recv_one(wait.max(Duration::from_millis(1)))? {
                Some(m) if m.is_request() => self.handle_request(m)?,
                Some(m) => {
                    let matches = m.branch().as_deref() == Some(branch)
                        && m.cseq()
                            .is_some_and(|(_, meth)| meth.eq_ignore_ascii_case(method));
                    if !matches {
                        continue; // stray/late response
                    }
                    if m.status().unwrap_or(0) >= 200 {
                        return Ok(m);
                    }
                    // provisional: keep waiting; slow down retransmissions (timer T2)
                    interval = Duration::from_secs(4);
                    next_retx = Instant::now() + interval;
                }
                None => {
                    if !self.link.reliable() && Instant::now() >= next_retx {
                        self.note(
                            ">>",
                            &Message {
                                first_line: format!("(retransmission) {}", req.first_line),
                                headers: Vec::new(),
                                body: Vec::new(),
                            },
                        );
                        self.link.send(&req.to_bytes())?;
                        interval = (interval * 2).min(Duration::from_secs(4));
                        next_retx = Instant::now() + interval;
                    }
                }
            }
        }
    }

    /// REGISTER this UA's contact for `expires` seconds; returns the final response.
    pub fn register(&mut self, expires: u32) -> Result<Message> {
        let ruri = format!("sip:{}", self.domain);
        let aor = self.aor();
        let call_id = self.reg_call_id.clone();
        self.request(
            "REGISTER",
            &ruri,
            &aor,
            &call_id,
            &[("Expires", expires.to_string())],
            None,
        )
    }

    /// REGISTER and require `200`.
    pub fn register_ok(&mut self, expires: u32) -> Result<Message> {
        let r = self.register(expires)?;
        crate::ensure!(
            r.status() == Some(200),
            "REGISTER {} got `{}` instead of 200; transcript:\n{}",
            self.aor(),
            r.first_line,
            self.transcript()
        );
        Ok(r)
    }

    /// Out-of-dialog MESSAGE (text/plain) to `to_aor`; returns the final response.
    pub fn send_message(&mut self, to_aor: &str, text: &str) -> Result<Message> {
        let call_id = format!("msg-{}", unique_token());
        self.request(
            "MESSAGE",
            to_aor,
            to_aor,
            &call_id,
            &[],
            Some(("text/plain", text)),
        )
    }

    /// Waits for an incoming request with this method (answered automatically, see
    /// `handle_request`) and returns it.
    pub fn wait_request(&mut self, method: &str, timeout: Duration) -> Result<Message> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .pending
                .iter()
                .position(|m| m.method().is_some_and(|x| x.eq_ignore_ascii_case(method)))
                && let Some(m) = self.pending.remove(i)
            {
                return Ok(m);
            }
            let now = Instant::now();
            if now >= end {
                return Err(Error(format!(
                    "{}: no {method} within {timeout:?}; transcript:\n{}",
                    self.aor(),
                    self.transcript()
                )));
            }
            if let Some(m) = self.recv_one(end - now)?
                && m.is_request()
            {
                self.handle_request(m)?;
            }
        }
    }

    /// Waits for an incoming MESSAGE whose body contains `text`.
    pub fn wait_message_containing(&mut self, text: &str, timeout: Duration) -> Result<Message> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let m = self.wait_request("MESSAGE", left)?;
            if m.body_text().contains(text) {
                return Ok(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_respond() {
        let raw = b"MESSAGE sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\nf: <sip:alice@example.com>;tag=1\r\nt: <sip:bob@example.com>\r\ni: cid\r\nCSeq: 2 MESSAGE\r\nl: 5\r\n\r\nhelloEXTRA";
        let m = Message::parse(raw).unwrap();
        assert_eq!(m.method(), Some("MESSAGE"));
        assert_eq!(m.body_text(), "hello");
        assert_eq!(m.branch().as_deref(), Some("z9hG4bKabc"));
        assert_eq!(m.cseq(), Some((2, "MESSAGE".into())));
        let r = m.response(200, "OK", "t1");
        assert_eq!(r.headers_named("Via").len(), 2);
        assert_eq!(r.header_param("To", "tag").as_deref(), Some("t1"));
        let back = Message::parse(&r.to_bytes()).unwrap();
        assert_eq!(back.status(), Some(200));
    }

    #[test]
    fn stream_framing() {
        let mut b = b"\r\n\r\nSIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabcSIP/2.0 100 Trying\r\nl: 0\r\n\r\nSIP/2.0".to_vec();
        let m1 = take_stream_message(&mut b).unwrap();
        assert!(m1.ends_with(b"abc"));
        let m2 = take_stream_message(&mut b).unwrap();
        assert!(String::from_utf8_lossy(&m2).contains("100 Trying"));
        assert!(take_stream_message(&mut b).is_none());
        assert_eq!(b, b"SIP/2.0");
    }

    #[test]
    fn params() {
        assert_eq!(
            param_of("<sip:a@b;transport=tcp>;tag=xyz;expires=5", "tag").as_deref(),
            Some("xyz")
        );
        assert_eq!(param_of("<sip:a@b;tag=no>", "tag"), None);
    }
}
