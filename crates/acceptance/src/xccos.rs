//! A protocol-level Persistent Chat client (MS-XCCOSIP over SIP INFO) for what
//! pidgin-sipe cannot show: it signs in with digest over TCP, performs SIPE's
//! discovery (INVITE `sip:ocschat@DOMAIN`, `cmd:requri`, INVITE of the URI in
//! `rpl:requri`), then sends XCCOS commands and posts in that dialog and collects
//! the server's replies, notices and posts. Written from the research notes on
//! the wire format (docs/persistent-chat.md), independently of the server.
//!
//! Also a tiny tolerant XML reader ([`elements`], [`inner_text`]) for the bodies.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::sip::{Link, Message, TcpLink, UdpLink, digest_answer, param_of, request_message};
use crate::{Error, Result, unique_token};

/// XML-escapes text for an attribute or element.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// Undoes XML escaping (the five entities and numeric references).
pub fn unescape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        o.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(end) = after.find(';').filter(|e| *e <= 10) else {
            o.push('&');
            rest = &after[1..];
            continue;
        };
        let ent = &after[1..end];
        let rep = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") => u32::from_str_radix(&ent[2..], 16)
                .ok()
                .and_then(char::from_u32),
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match rep {
            Some(c) => {
                o.push(c);
                rest = &after[end + 1..];
            }
            None => {
                o.push('&');
                rest = &after[1..];
            }
        }
    }
    o.push_str(rest);
    o
}

/// One start tag found by [`elements`]: its attributes (unescaped) and the
/// byte offset just after the tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub attrs: Vec<(String, String)>,
    pub end: usize,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every start (or empty) tag `<name ...>` in `xml`, in order.
pub fn elements(xml: &str, name: &str) -> Vec<Element> {
    let mut out = Vec::new();
    let open = format!("<{name}");
    let mut from = 0;
    while let Some(i) = xml[from..].find(&open) {
        let start = from + i + open.len();
        from = start;
        let next = xml[start..].chars().next();
        if !matches!(next, Some(' ' | '>' | '/' | '\t' | '\r' | '\n')) {
            continue;
        }
        let Some(close) = xml[start..].find('>') else {
            break;
        };
        let tag = &xml[start..start + close];
        out.push(Element {
            attrs: parse_attrs(tag),
            end: start + close + 1,
        });
    }
    out
}

fn parse_attrs(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = tag;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches('/').trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let Some(endq) = after[1..].find(q) else {
            break;
        };
        out.push((key, unescape(&after[1..1 + endq])));
        rest = &after[endq + 2..];
    }
    out
}

/// Unescaped text of the first `<name ...>text</name>` in `xml`.
pub fn inner_text(xml: &str, name: &str) -> Option<String> {
    let el = elements(xml, name).into_iter().next()?;
    let close = format!("</{name}>");
    let end = xml[el.end..].find(&close)?;
    Some(unescape(&xml[el.end..el.end + end]))
}

/// The `<resp code="N">TEXT</resp>` of a reply: (code, text).
pub fn resp(xml: &str) -> Option<(u16, String)> {
    let el = elements(xml, "resp").into_iter().next()?;
    let code = el.attr("code")?.parse().ok()?;
    Some((code, inner_text(xml, "resp").unwrap_or_default()))
}

/// A post as the server delivered it (`grpchat` INFO or a `msg` in `rpl:bccontext`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Post {
    pub chan_uri: String,
    pub author: String,
    pub ts: String,
    pub text: String,
}

/// The posts (`<grpchat ...>` or `<msg id="grpchat" ...>`) in a body, in order.
pub fn posts(xml: &str) -> Vec<Post> {
    let mut out = Vec::new();
    for tagname in ["grpchat", "msg"] {
        for el in elements(xml, tagname) {
            if tagname == "msg" && el.attr("id") != Some("grpchat") {
                continue;
            }
            let rest = &xml[el.end..];
            let text = inner_text(rest, "chat").unwrap_or_default();
            out.push(Post {
                chan_uri: el.attr("chanUri").unwrap_or("").to_string(),
                author: el.attr("author").unwrap_or("").to_string(),
                ts: el.attr("ts").unwrap_or("").to_string(),
                text,
            });
        }
    }
    out
}

/// The ACK of a non-2xx final response to an INVITE (RFC 3261 §17.1.1.3): same
/// Request-URI, top Via, From, Call-ID and CSeq number as the INVITE, the
/// response's To (with its tag).
pub fn ack_for(invite: &Message, resp: &Message) -> Message {
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(v) = invite.header("Via") {
        headers.push(("Via".into(), v.to_string()));
    }
    headers.push(("Max-Forwards".into(), "70".into()));
    for h in ["From", "Call-ID"] {
        if let Some(v) = invite.header(h) {
            headers.push((h.into(), v.to_string()));
        }
    }
    if let Some(v) = resp.header("To") {
        headers.push(("To".into(), v.to_string()));
    }
    let n = invite.cseq().map(|c| c.0).unwrap_or(1);
    headers.push(("CSeq".into(), format!("{n} ACK")));
    for r in invite.headers_named("Route") {
        headers.push(("Route".into(), r.to_string()));
    }
    headers.push(("Content-Length".into(), "0".into()));
    let ruri = invite.request_uri().unwrap_or("").to_string();
    Message {
        first_line: format!("ACK {ruri} SIP/2.0"),
        headers,
        body: Vec::new(),
    }
}

#[derive(Clone, Debug)]
struct Dialog {
    call_id: String,
    local_tag: String,
    remote_tag: String,
    /// Where in-dialog requests go (the server's Contact).
    target: String,
    /// Route set (from Record-Route, reversed for a UAC).
    routes: Vec<String>,
    /// The remote URI (To of our INVITE).
    remote_uri: String,
}

/// The XCCOS client: one user, one connection (TCP, or a UDP socket), one
/// chat-server dialog.
pub struct XccosClient {
    link: Box<dyn Link + Send>,
    /// Server `rpl:*` INFOs that arrived while the 200 of one of our INFOs was
    /// still awaited (a reply overtaking the answer to its command).
    pub early_replies: u32,
    awaiting_info: bool,
    pub user: String,
    password: String,
    pub domain: String,
    pub timeout: Duration,
    cseq: u32,
    envid: u64,
    dialog: Option<Dialog>,
    /// Requests from the server not consumed yet (answered 200 already).
    inbox: VecDeque<Message>,
    transcript: Vec<String>,
    /// Session-Expires of the lookup 200, if any.
    pub session_expires: Option<u32>,
    /// The chat-server URI from `rpl:requri`.
    pub server_uri: String,
    /// Status of the last answer to the lookup INVITE (e.g. 403 when disabled).
    pub lookup_status: u16,
    pub lookup_reason: String,
}

impl XccosClient {
    /// Connects over TCP and REGISTERs (digest).
    pub fn connect(server: SocketAddr, user: &str, password: &str) -> Result<XccosClient> {
        Self::connect_with(Box::new(TcpLink::connect(server)?), user, password)
    }

    /// Over UDP (no retransmissions: loopback tests only) and REGISTERs (digest).
    pub fn connect_udp(server: SocketAddr, user: &str, password: &str) -> Result<XccosClient> {
        Self::connect_with(Box::new(UdpLink::new(server)?), user, password)
    }

    fn connect_with(link: Box<dyn Link + Send>, user: &str, password: &str) -> Result<XccosClient> {
        let (local, domain) = user
            .split_once('@')
            .ok_or_else(|| Error(format!("{user}: not user@domain")))?;
        let mut c = XccosClient {
            link,
            early_replies: 0,
            awaiting_info: false,
            user: local.to_string(),
            password: password.to_string(),
            domain: domain.to_string(),
            timeout: Duration::from_secs(10),
            cseq: 0,
            envid: 1_000_000 + u64::from(unique_token().len() as u32),
            dialog: None,
            inbox: VecDeque::new(),
            transcript: Vec::new(),
            session_expires: None,
            server_uri: String::new(),
            lookup_status: 0,
            lookup_reason: String::new(),
        };
        let ruri = format!("sip:{}", c.domain);
        let aor = c.aor();
        let call_id = format!("reg-{}", unique_token());
        let r = c.request_out(
            "REGISTER",
            &ruri,
            &aor,
            &call_id,
            &[("Expires", "600".into())],
            None,
        )?;
        crate::ensure!(
            r.status() == Some(200),
            "REGISTER {aor}: {}\n{}",
            r.first_line,
            c.transcript()
        );
        Ok(c)
    }

    /// The chat server's Contact URI in the chat-server dialog (which server of a
    /// chat pool serves this client), if there is one.
    pub fn server_target(&self) -> Option<&str> {
        self.dialog.as_ref().map(|d| d.target.as_str())
    }

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

    /// First lines of what was sent and received, for failure messages.
    pub fn transcript(&self) -> String {
        let start = self.transcript.len().saturating_sub(60);
        let mut s = String::new();
        for l in &self.transcript[start..] {
            s.push_str("    ");
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    fn send(&mut self, m: &Message) -> Result<()> {
        self.transcript.push(format!(">> {}", m.summary()));
        self.link.send(&m.to_bytes())
    }

    /// Receives one message (answering requests: 200, queued in the inbox).
    /// Returns responses only.
    fn recv_response(&mut self, until: Instant) -> Result<Option<Message>> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let Some(raw) = self.link.recv(left)? else {
                return Ok(None);
            };
            let m = Message::parse(&raw)?;
            self.transcript.push(format!("<< {}", m.summary()));
            if m.is_request() {
                self.answer(m)?;
                continue;
            }
            return Ok(Some(m));
        }
    }

    fn answer(&mut self, m: Message) -> Result<()> {
        let method = m.method().unwrap_or("").to_ascii_uppercase();
        if method == "ACK" {
            return Ok(());
        }
        let (code, reason) = match method.as_str() {
            "INFO" | "BYE" | "UPDATE" | "MESSAGE" | "NOTIFY" | "OPTIONS" => (200, "OK"),
            _ => (405, "Method Not Allowed"),
        };
        let tag = self
            .dialog
            .as_ref()
            .map(|d| d.local_tag.clone())
            .unwrap_or_else(unique_token);
        if self.awaiting_info && method == "INFO" && m.body_text().contains("<rpl") {
            self.early_replies += 1;
        }
        // like SIPE: every INFO is answered 200 before it is looked at
        let r = m.response(code, reason, &tag);
        self.send(&r)?;
        if method != "OPTIONS" {
            self.inbox.push_back(m);
        }
        Ok(())
    }

    /// Sends a request (out of dialog, or in `dialog`), answers one digest
    /// challenge, returns the final response. A dialog without a remote tag is a
    /// dialog-creating request with our chosen From tag (no To tag).
    #[allow(clippy::too_many_arguments)]
    fn request_in(
        &mut self,
        method: &str,
        dialog: Option<&Dialog>,
        ruri: &str,
        to: &str,
        call_id: &str,
        extra: &[(&str, String)],
        body: Option<(&str, &str)>,
    ) -> Result<Message> {
        let from_tag = dialog
            .map(|d| d.local_tag.clone())
            .unwrap_or_else(|| format!("x{}", unique_token()));
        let mut auth: Option<(String, String)> = None;
        for _ in 0..2 {
            self.cseq += 1;
            let branch = format!("z9hG4bK{}", unique_token());
            let mut headers: Vec<(String, String)> = vec![
                (
                    "Via".into(),
                    format!("{};branch={branch};rport", self.link.via()),
                ),
                ("Max-Forwards".into(), "70".into()),
                ("From".into(), format!("<{}>;tag={from_tag}", self.aor())),
                (
                    "To".into(),
                    match dialog {
                        Some(d) if !d.remote_tag.is_empty() => {
                            format!("<{}>;tag={}", d.remote_uri, d.remote_tag)
                        }
                        Some(d) => format!("<{}>", d.remote_uri),
                        None => format!("<{to}>"),
                    },
                ),
                ("Call-ID".into(), call_id.into()),
                ("CSeq".into(), format!("{} {method}", self.cseq)),
                ("Contact".into(), self.contact()),
                ("User-Agent".into(), "confab-acceptance-xccos".into()),
            ];
            if let Some(d) = dialog {
                for r in &d.routes {
                    headers.push(("Route".into(), r.clone()));
                }
            }
            for (n, v) in extra {
                headers.push(((*n).to_string(), v.clone()));
            }
            if let Some((n, v)) = &auth {
                headers.push((n.clone(), v.clone()));
            }
            let req = request_message(method, ruri, headers, body);
            self.send(&req)?;
            let end = Instant::now() + self.timeout;
            self.awaiting_info = method == "INFO";
            let got = loop {
                let Some(m) = self.recv_response(end)? else {
                    break None;
                };
                if m.branch().as_deref() == Some(branch.as_str()) && m.status().unwrap_or(0) >= 200
                {
                    break Some(m);
                }
            };
            self.awaiting_info = false;
            let resp = match got {
                Some(m) => m,
                None => {
                    return Err(Error(format!(
                        "{}: no final response to {method} within {:?}\n{}",
                        self.aor(),
                        self.timeout,
                        self.transcript()
                    )));
                }
            };
            if method == "INVITE" && resp.status().unwrap_or(0) >= 300 {
                let ack = ack_for(&req, &resp);
                self.send(&ack)?;
            }
            if auth.is_none()
                && let Some(answer) =
                    digest_answer(&resp, method, ruri, &self.user, &self.password)?
            {
                auth = Some(answer);
                continue;
            }
            return Ok(resp);
        }
        Err(Error(format!(
            "{}: {method} challenged twice\n{}",
            self.aor(),
            self.transcript()
        )))
    }

    fn request_out(
        &mut self,
        method: &str,
        ruri: &str,
        to: &str,
        call_id: &str,
        extra: &[(&str, String)],
        body: Option<(&str, &str)>,
    ) -> Result<Message> {
        self.request_in(method, None, ruri, to, call_id, extra, body)
    }

    /// INVITE `uri` like SIPE (SDP m=message); on 200: ACK and returns the dialog.
    fn invite(&mut self, uri: &str) -> Result<(Message, Option<Dialog>)> {
        let call_id = format!("xccos-{}", unique_token());
        let local_tag = format!("x{}", unique_token());
        let sdp = format!(
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=message {} sip null\r\na=accept-types:text/plain text/html image/gif \
             multipart/related application/im-iscomposing+xml application/ms-imdn+xml\r\n",
            self.link
                .contact_hostport()
                .rsplit(':')
                .next()
                .unwrap_or("5060")
        );
        let d0 = Dialog {
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: String::new(),
            target: uri.to_string(),
            routes: Vec::new(),
            remote_uri: uri.to_string(),
        };
        // out-of-dialog request with our chosen From tag: build via request_in
        // with a pseudo dialog whose remote tag is empty
        let resp = self.request_initial(
            "INVITE",
            &d0,
            &[("Supported", "ms-sender".into())],
            Some(("application/sdp", &sdp)),
        )?;
        if resp.status() != Some(200) {
            return Ok((resp, None));
        }
        let remote_tag = resp.header_param("To", "tag").unwrap_or_default();
        let target = resp
            .header("Contact")
            .map(|c| {
                let c = c.trim();
                match (c.find('<'), c.find('>')) {
                    (Some(a), Some(b)) if b > a => c[a + 1..b].to_string(),
                    _ => c.split(';').next().unwrap_or(c).to_string(),
                }
            })
            .unwrap_or_else(|| uri.to_string());
        let mut routes: Vec<String> = Vec::new();
        for rr in resp.headers_named("Record-Route") {
            for part in rr.split(',') {
                routes.push(part.trim().to_string());
            }
        }
        routes.reverse();
        let d = Dialog {
            call_id,
            local_tag,
            remote_tag,
            target,
            routes,
            remote_uri: uri.to_string(),
        };
        // ACK of the 2xx (same CSeq number), along the route set
        let (n, _) = resp.cseq().unwrap_or((self.cseq, "INVITE".into()));
        let mut headers: Vec<(String, String)> = vec![
            (
                "Via".into(),
                format!("{};branch=z9hG4bK{};rport", self.link.via(), unique_token()),
            ),
            ("Max-Forwards".into(), "70".into()),
            (
                "From".into(),
                format!("<{}>;tag={}", self.aor(), d.local_tag),
            ),
            (
                "To".into(),
                format!("<{}>;tag={}", d.remote_uri, d.remote_tag),
            ),
            ("Call-ID".into(), d.call_id.clone()),
            ("CSeq".into(), format!("{n} ACK")),
        ];
        for r in &d.routes {
            headers.push(("Route".into(), r.clone()));
        }
        headers.push(("Content-Length".into(), "0".into()));
        let ack = Message {
            first_line: format!("ACK {} SIP/2.0", d.target),
            headers,
            body: Vec::new(),
        };
        self.send(&ack)?;
        Ok((resp, Some(d)))
    }

    /// An initial request with a chosen From tag (no To tag).
    fn request_initial(
        &mut self,
        method: &str,
        d: &Dialog,
        extra: &[(&str, String)],
        body: Option<(&str, &str)>,
    ) -> Result<Message> {
        let mut pseudo = d.clone();
        pseudo.remote_tag.clear();
        pseudo.routes.clear();
        let (target, call_id) = (pseudo.target.clone(), pseudo.call_id.clone());
        self.request_in(method, Some(&pseudo), &target, "", &call_id, extra, body)
    }

    /// A request inside the chat-server dialog.
    fn in_dialog(&mut self, method: &str, body: Option<&str>) -> Result<Message> {
        let d = self
            .dialog
            .clone()
            .ok_or_else(|| Error::new("no chat-server dialog"))?;
        self.request_in(
            method,
            Some(&d),
            &d.target.clone(),
            "",
            &d.call_id.clone(),
            &[],
            body.map(|b| ("text/plain", b)),
        )
    }

    /// SIPE's discovery: INVITE ocschat, `cmd:requri`, `rpl:requri`, BYE, INVITE
    /// of the chat-server URI. Returns the lookup INVITE's final status (an
    /// error only for transport problems; a refused lookup is `Ok(403)` etc.).
    pub fn discover(&mut self) -> Result<u16> {
        let lookup = format!("sip:ocschat@{}", self.domain);
        self.discover_at(&lookup)
    }

    /// [`XccosClient::discover`] through another lookup URI (a Persistent Chat
    /// pool's own, as SIPE's `groupchat_user` setting names one).
    pub fn discover_at(&mut self, lookup: &str) -> Result<u16> {
        let (resp, d) = self.invite(lookup)?;
        self.lookup_status = resp.status().unwrap_or(0);
        self.lookup_reason = resp
            .first_line
            .splitn(3, ' ')
            .nth(2)
            .unwrap_or("")
            .to_string();
        let Some(d) = d else {
            return Ok(self.lookup_status);
        };
        self.session_expires = resp
            .header("Session-Expires")
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse().ok());
        self.dialog = Some(d);
        let envid = self.command("requri", "<data/>")?;
        let reply = self.wait_reply("rpl:requri", envid)?;
        let uri = elements(&reply, "uib")
            .into_iter()
            .find_map(|e| e.attr("uri").map(str::to_string))
            .ok_or_else(|| Error(format!("rpl:requri without uib@uri: {reply}")))?;
        let bye = self.in_dialog("BYE", None)?;
        crate::ensure!(
            bye.status() == Some(200),
            "BYE of the lookup dialog: {}",
            bye.first_line
        );
        self.dialog = None;
        self.server_uri = uri.clone();
        let (resp, d) = self.invite(&uri)?;
        crate::ensure!(
            d.is_some(),
            "INVITE {uri}: {}\n{}",
            resp.first_line,
            self.transcript()
        );
        self.dialog = d;
        Ok(self.lookup_status)
    }

    fn next_envid(&mut self) -> u64 {
        self.envid += 1;
        self.envid
    }

    /// Sends `<cmd id="cmd:NAME" seqid="1">DATA</cmd>`; the INFO must get 200.
    /// Returns the envid.
    pub fn command(&mut self, name: &str, data: &str) -> Result<u64> {
        let envid = self.next_envid();
        let body = format!(
            "<xccos ver=\"1\" envid=\"{envid}\" xmlns=\"urn:parlano:xml:ns:xccos\">\
             <cmd id=\"cmd:{name}\" seqid=\"1\">{data}</cmd></xccos>"
        );
        let r = self.in_dialog("INFO", Some(&body))?;
        crate::ensure!(
            r.status() == Some(200),
            "INFO cmd:{name} answered `{}` (XCCOS errors belong in the reply)\n{}",
            r.first_line,
            self.transcript()
        );
        Ok(envid)
    }

    /// Posts `text` in `chan_uri`; returns the INFO's final status.
    pub fn post(&mut self, chan_uri: &str, text: &str) -> Result<Message> {
        let envid = self.next_envid();
        let body = format!(
            "<xccos ver=\"1\" envid=\"{envid}\" xmlns=\"urn:parlano:xml:ns:xccos\">\
             <grpchat id=\"grpchat\" seqid=\"1\" chanUri=\"{}\" author=\"{}\" ts=\"2000-01-01T00:00:00Z\">\
             <chat>{}</chat></grpchat></xccos>",
            escape(chan_uri),
            escape(&self.aor()),
            escape(text)
        );
        self.in_dialog("INFO", Some(&body))
    }

    /// Sends a raw INFO body in the dialog; returns the response.
    pub fn raw_info(&mut self, body: &str) -> Result<Message> {
        self.in_dialog("INFO", Some(body))
    }

    /// UPDATE in the dialog (session refresh).
    pub fn update(&mut self) -> Result<Message> {
        self.in_dialog("UPDATE", None)
    }

    /// BYE of the chat-server dialog.
    pub fn bye(&mut self) -> Result<()> {
        if self.dialog.is_some() {
            let r = self.in_dialog("BYE", None)?;
            self.dialog = None;
            crate::ensure!(r.status() == Some(200), "BYE: {}", r.first_line);
        }
        Ok(())
    }

    /// Pumps the connection for up to `wait`, answering requests.
    fn pump(&mut self, wait: Duration) -> Result<()> {
        let end = Instant::now() + wait;
        while let Some(m) = self.recv_response(end)? {
            self.transcript
                .push(format!("(stray response {})", m.first_line));
        }
        Ok(())
    }

    /// Waits for a server INFO whose body satisfies `pred`; removes and returns
    /// the body.
    pub fn wait_info(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl FnMut(&str) -> bool,
    ) -> Result<String> {
        match self.maybe_info(timeout, pred)? {
            Some(b) => Ok(b),
            None => Err(Error(format!(
                "{}: no {what} within {timeout:?}; transcript:\n{}",
                self.aor(),
                self.transcript()
            ))),
        }
    }

    /// Like [`wait_info`](Self::wait_info) but `Ok(None)` on timeout.
    pub fn maybe_info(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<Option<String>> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self.inbox.iter().position(|m| {
                m.method().is_some_and(|x| x.eq_ignore_ascii_case("INFO")) && pred(&m.body_text())
            }) && let Some(m) = self.inbox.remove(i)
            {
                return Ok(Some(m.body_text()));
            }
            let now = Instant::now();
            if now >= end {
                return Ok(None);
            }
            self.pump((end - now).min(Duration::from_millis(200)))?;
        }
    }

    /// Drops every queued server request (notices seen so far).
    pub fn clear_inbox(&mut self) {
        self.inbox.clear();
    }

    /// Bodies of the queued server INFOs (not consumed).
    pub fn inbox_bodies(&self) -> Vec<String> {
        self.inbox.iter().map(Message::body_text).collect()
    }

    /// Waits for the reply `rpl:X` (whose `commandid@envid`, when present,
    /// is `envid`).
    pub fn wait_reply(&mut self, id: &str, envid: u64) -> Result<String> {
        let id = id.to_string();
        let env = envid.to_string();
        let t = self.timeout;
        self.wait_info(&format!("{id} (envid {envid})"), t, |b| {
            elements(b, "rpl")
                .iter()
                .any(|e| e.attr("id") == Some(id.as_str()))
                && elements(b, "commandid")
                    .first()
                    .and_then(|c| c.attr("envid"))
                    .is_none_or(|e| e == env)
        })
    }

    /// Sends `cmd:NAME` and returns its `rpl:NAME` body.
    pub fn call(&mut self, name: &str, data: &str) -> Result<String> {
        let envid = self.command(name, data)?;
        self.wait_reply(&format!("rpl:{name}"), envid)
    }

    /// `cmd:join` of a `ma-chan://DOMAIN/ID` room; returns the reply body.
    pub fn join(&mut self, chan_uri: &str) -> Result<String> {
        let (domain, id) = split_chan(chan_uri)?;
        self.call(
            "join",
            &format!(
                "<data><chanid key=\"0\" domain=\"{}\" value=\"{}\"/></data>",
                escape(domain),
                escape(id)
            ),
        )
    }

    /// `cmd:join`, requiring `<resp code="200">`.
    pub fn join_ok(&mut self, chan_uri: &str) -> Result<String> {
        let r = self.join(chan_uri)?;
        match resp(&r) {
            Some((200, _)) => Ok(r),
            other => Err(Error(format!(
                "{}: join {chan_uri} refused: {other:?}: {r}",
                self.aor()
            ))),
        }
    }

    /// `cmd:bccontext` for the last `cnt` posts; returns them (oldest first as sent).
    pub fn backfill(&mut self, chan_uri: &str, cnt: u32) -> Result<Vec<Post>> {
        let r = self.call(
            "bccontext",
            &format!(
                "<data><chanib uri=\"{}\"/><bcq><last cnt=\"{cnt}\"/></bcq></data>",
                escape(chan_uri)
            ),
        )?;
        Ok(posts(&r))
    }

    /// `cmd:part`; returns the reply body.
    pub fn part(&mut self, chan_uri: &str) -> Result<String> {
        self.call(
            "part",
            &format!("<data><chanib uri=\"{}\"/></data>", escape(chan_uri)),
        )
    }

    /// `cmd:chansrch` with criteria "" (all rooms); returns (name, uri) pairs.
    pub fn room_list(&mut self) -> Result<Vec<(String, String)>> {
        let r = self.call(
            "chansrch",
            "<data><qib qtype=\"BYNAME\" criteria=\"\" extended=\"false\"/></data>",
        )?;
        Ok(elements(&r, "chanib")
            .iter()
            .map(|e| {
                (
                    e.attr("name").unwrap_or("").to_string(),
                    e.attr("uri").unwrap_or("").to_string(),
                )
            })
            .collect())
    }

    /// Waits for a post (grpchat INFO) whose text contains `needle`.
    pub fn wait_post(&mut self, needle: &str, timeout: Duration) -> Result<Post> {
        let n = needle.to_string();
        let body = self.wait_info(&format!("post containing {needle:?}"), timeout, |b| {
            posts(b).iter().any(|p| p.text.contains(&n))
        })?;
        posts(&body)
            .into_iter()
            .find(|p| p.text.contains(needle))
            .ok_or_else(|| Error::new("post vanished"))
    }

    /// Whether a post containing `needle` arrives within `timeout`.
    pub fn got_post(&mut self, needle: &str, timeout: Duration) -> Result<bool> {
        let n = needle.to_string();
        Ok(self
            .maybe_info(timeout, |b| posts(b).iter().any(|p| p.text.contains(&n)))?
            .is_some())
    }
}

/// `ma-chan://DOMAIN/ID` -> (DOMAIN, ID).
pub fn split_chan(uri: &str) -> Result<(&str, &str)> {
    let rest = uri
        .strip_prefix("ma-chan://")
        .ok_or_else(|| Error(format!("not a ma-chan:// URI: {uri}")))?;
    rest.split_once('/')
        .ok_or_else(|| Error(format!("no id in {uri}")))
}

/// `;param=` of a header (re-exported helper for tests).
pub fn header_param(value: &str, param: &str) -> Option<String> {
    param_of(value, param)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_helpers() {
        let b = r#"<xccos ver="1" envid="7" xmlns="urn:parlano:xml:ns:xccos"><rpl id="rpl:join" seqid="1"><commandid seqid="1" envid="5"/><resp code="403">ERR_NO_PERMISSION &amp; more</resp><data><chanib uri="ma-chan://d/1" name="A&lt;b"/></data></rpl></xccos>"#;
        assert_eq!(resp(b), Some((403, "ERR_NO_PERMISSION & more".into())));
        let c = elements(b, "chanib");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].attr("name"), Some("A<b"));
        assert_eq!(elements(b, "chan").len(), 0);
        let p = r#"<rpl id="rpl:bccontext"><data><chanib uri="u"><msg id="grpchat" chanUri="u" author="sip:b@d" ts="2024-01-01T00:00:00Z"><chat>a &lt;b&gt; &#233;</chat></msg><msg id="grpchat" chanUri="u" author="sip:c@d" ts="t2"><chat>two</chat></msg></chanib></data></rpl>"#;
        let ps = posts(p);
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].text, "a <b> é");
        assert_eq!(ps[1].author, "sip:c@d");
        assert_eq!(escape("<&\">"), "&lt;&amp;&quot;&gt;");
        assert_eq!(unescape("&amp;lt;"), "&lt;");
        assert_eq!(split_chan("ma-chan://d/x-y").unwrap(), ("d", "x-y"));
    }
}
