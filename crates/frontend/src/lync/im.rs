//! IM gateway between Lync session IM and SIP pager mode.
//!
//! A Lync client always starts an IM with an INVITE (SDP `m=message`) and sends
//! the text as MESSAGEs inside that dialog; standards-based clients such as
//! baresip only take page-mode MESSAGEs (RFC 3428) and refuse such an INVITE.
//! When a Lync user invites a user none of whose registered endpoints speaks the
//! Lync protocol, this server answers the INVITE itself and turns every text of
//! the session into a page-mode MESSAGE to that user:
//!
//! * the first text, carried in the INVITE's `ms-text-format` header
//!   (`ms-body=` base64), is paged first, and the INVITE is answered with the
//!   page's outcome (200 with `Supported: ms-text-format`, so the client counts
//!   the text as delivered; otherwise the page's error, e.g. 480);
//! * each in-dialog MESSAGE is paged and answered with the page's outcome;
//! * typing notifications (INFO) are answered 200 and not passed on;
//! * BYE ends the session.
//!
//! The other direction needs no gateway: a Lync client shows page-mode MESSAGEs
//! outside any dialog, so they are relayed as they are.

use std::time::{Duration, Instant};

use base64::Engine as _;
use confab_sip::transaction::{ClientKey, ServerKey};
use confab_sip::{Message, Method, RequestBuilder};
use rustc_hash::FxHashMap;
use tracing::debug;

use crate::core::Core;
use crate::metrics::Metrics;
use crate::types::{Dest, Transport};

/// A session idle this long is forgotten (its client re-INVITEs when needed).
const IDLE: Duration = Duration::from_secs(30 * 60);
/// Bound on live sessions.
const MAX_SESSIONS: usize = 100_000;

struct Session {
    /// Transport the caller reached us over (for our Contact).
    transport: Transport,
    caller: String,
    callee: String,
    /// Call-ID and CSeq of the pages sent to the callee.
    page_call_id: String,
    page_from_tag: String,
    page_cseq: u32,
    last_used: Instant,
}

/// A page in flight: answers the request that caused it when it completes.
struct Page {
    server: Option<(ServerKey, Message)>,
    /// Dialog to create when the page succeeds (the INVITE case).
    create: Option<(String, String, Session)>,
    outstanding: usize,
    best: u16,
}

#[derive(Default)]
pub(crate) struct Gateway {
    sessions: FxHashMap<(String, String), Session>,
    pages: FxHashMap<u64, Page>,
    by_client: FxHashMap<ClientKey, u64>,
    next_page: u64,
    next_prune: Option<Instant>,
}

/// Whether an SDP body offers an IM (`m=message`) session.
pub(crate) fn is_im_offer(msg: &Message) -> bool {
    msg.content_type()
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/sdp"))
        && msg
            .body()
            .split(|b| *b == b'\n')
            .any(|l| l.starts_with(b"m=message"))
}

/// The first text of a Lync IM INVITE (`ms-text-format: ...;ms-body=<base64>`).
fn first_text(msg: &Message) -> Option<(String, Vec<u8>)> {
    let v = msg.header_str("ms-text-format")?;
    let mut parts = v.split(';').map(str::trim);
    let ct = parts.next()?.to_owned();
    let mut charset = None;
    let mut body = None;
    for p in parts {
        if let Some((k, val)) = p.split_once('=') {
            if k.eq_ignore_ascii_case("ms-body") {
                body = base64::engine::general_purpose::STANDARD
                    .decode(val.trim())
                    .ok();
            } else if k.eq_ignore_ascii_case("charset") {
                charset = Some(val.trim().to_owned());
            }
        }
    }
    let body = body.filter(|b| !b.is_empty())?;
    let ct = match charset {
        Some(c) => format!("{ct};charset={c}"),
        None => ct,
    };
    Some((ct, body))
}

/// The content type to page with: the Lync `msgr=` formatting parameter dropped.
fn page_content_type(ct: &str) -> String {
    ct.split(';')
        .map(str::trim)
        .filter(|p| !p.to_ascii_lowercase().starts_with("msgr="))
        .collect::<Vec<_>>()
        .join(";")
}

impl Core {
    /// Whether `target`'s registered endpoints are all non-Lync (so an IM INVITE from
    /// a Lync client must go through the gateway).
    pub(crate) fn lync_needs_im_gateway(&self, bindings: &[(String, Dest)]) -> bool {
        !bindings.is_empty()
            && bindings
                .iter()
                .all(|(_, d)| d.conn.is_none_or(|c| !self.lync.is_signed(c)))
    }

    /// An IM INVITE from Lync user `caller` to pager-mode user `callee`.
    pub(crate) fn lync_im_invite(
        &mut self,
        key: &ServerKey,
        msg: &Message,
        src: Dest,
        caller: &str,
        callee: &str,
        bindings: Vec<(String, Dest)>,
    ) {
        self.lync_im_prune();
        if self.lync.im.sessions.len() >= MAX_SESSIONS {
            self.reply(key, msg, 503, |b| b.reason("Too many IM sessions"));
            return;
        }
        let our_tag = self.new_tag();
        let session = Session {
            transport: src.transport,
            caller: caller.to_owned(),
            callee: callee.to_owned(),
            page_call_id: format!("gw-{}", self.random_hex(12)),
            page_from_tag: self.new_tag(),
            page_cseq: 0,
            last_used: self.now,
        };
        let create = (msg.call_id().to_owned(), our_tag, session);
        match first_text(msg) {
            Some((ct, body)) => {
                let server = Some((key.clone(), msg.clone()));
                self.lync_page(bindings, server, Some(create), None, &ct, body);
            }
            None => self.lync_im_accept(key, msg, create),
        }
    }

    fn lync_im_accept(
        &mut self,
        key: &ServerKey,
        msg: &Message,
        create: (String, String, Session),
    ) {
        let (call_id, tag, session) = create;
        let callee = session.callee.clone();
        let t = session.transport;
        let user = callee.split('@').next().unwrap_or("").to_owned();
        let contact = format!(
            "<sip:{user}@{}:{};transport={}>",
            self.cfg.advertise.host,
            self.port_for(t),
            t.uri_param()
        );
        let sdp = format!(
            "v=0\r\no=- 0 0 IN IP4 {h}\r\ns=session\r\nc=IN IP4 {h}\r\nt=0 0\r\nm=message {p} sip sip:{callee}\r\na=accept-types:text/plain text/html\r\n",
            h = self.cfg.advertise.host,
            p = self.port_for(t),
        );
        self.lync
            .im
            .sessions
            .insert((call_id, tag.clone()), session);
        self.reply_tagged(key, msg, 200, &tag, |b| {
            b.header("Contact", contact)
                .header("Supported", "ms-text-format")
                .body("application/sdp", sdp)
        });
    }

    /// A request inside a gateway session. Returns `false` if it is not one.
    pub(crate) fn lync_im_in_dialog(&mut self, key: &ServerKey, msg: &Message) -> bool {
        let Some(tag) = msg.to_tag() else {
            return false;
        };
        let id = (msg.call_id().to_owned(), tag.to_owned());
        let Some(s) = self.lync.im.sessions.get_mut(&id) else {
            return false;
        };
        s.last_used = self.now;
        let callee = s.callee.clone();
        match msg.method() {
            Some(Method::Message) => {
                let ct = page_content_type(msg.content_type().unwrap_or("text/plain"));
                let bindings: Vec<(String, Dest)> = self
                    .registrar
                    .lookup(&callee, self.now)
                    .into_iter()
                    .map(|b| (b.uri.clone(), b.flow))
                    .collect();
                if bindings.is_empty() {
                    self.reply(key, msg, 480, |b| b.reason("User is offline"));
                    return true;
                }
                Metrics::inc(&self.metrics.messages_relayed_total);
                let server = Some((key.clone(), msg.clone()));
                self.lync_page(bindings, server, None, Some(id), &ct, msg.body().to_vec());
            }
            Some(Method::Bye) => {
                self.lync.im.sessions.remove(&id);
                self.reply_tagged(key, msg, 200, tag, |b| b);
            }
            Some(Method::Info | Method::Invite | Method::Update | Method::Options) => {
                // Typing notifications and session refreshes: nothing to pass on.
                self.reply_tagged(key, msg, 200, tag, |b| b);
            }
            _ => self.reply_tagged(key, msg, 501, tag, |b| b),
        }
        true
    }

    /// Whether an ACK belongs to a gateway session (it ends there).
    pub(crate) fn lync_im_is_session(&self, msg: &Message) -> bool {
        msg.to_tag().is_some_and(|t| {
            self.lync
                .im
                .sessions
                .contains_key(&(msg.call_id().to_owned(), t.to_owned()))
        })
    }

    /// Sends one text as page-mode MESSAGE to every binding of the callee.
    fn lync_page(
        &mut self,
        bindings: Vec<(String, Dest)>,
        server: Option<(ServerKey, Message)>,
        create: Option<(String, String, Session)>,
        existing: Option<(String, String)>,
        content_type: &str,
        body: Vec<u8>,
    ) {
        let (caller, callee, call_id, from_tag, cseq) = {
            let s = match (&create, &existing) {
                (Some((_, _, s)), _) => Some(s),
                (None, Some(id)) => self.lync.im.sessions.get(id),
                _ => None,
            };
            let Some(s) = s else { return };
            (
                s.caller.clone(),
                s.callee.clone(),
                s.page_call_id.clone(),
                s.page_from_tag.clone(),
                s.page_cseq + 1,
            )
        };
        if let Some(id) = &existing
            && let Some(s) = self.lync.im.sessions.get_mut(id)
        {
            s.page_cseq = cseq;
        }
        let mut create = create;
        if let Some((_, _, s)) = create.as_mut() {
            s.page_cseq = cseq;
        }
        self.lync.im.next_page += 1;
        let page_id = self.lync.im.next_page;
        let mut outstanding = 0;
        let body = bytes::Bytes::from(body);
        for (ruri, dest) in bindings {
            let branch = self.new_branch();
            let req = RequestBuilder::new(Method::Message, ruri)
                .header("Via", self.our_via(dest.transport, &branch))
                .header("Max-Forwards", "70")
                .header("From", format!("<sip:{caller}>;tag={from_tag}"))
                .header("To", format!("<sip:{callee}>"))
                .header("Call-ID", call_id.clone())
                .header("CSeq", format!("{cseq} MESSAGE"))
                .body(content_type.to_owned(), body.clone())
                .build();
            let key = ClientKey {
                branch: branch.into(),
                method: Method::Message,
            };
            self.tx.start_client(
                key.clone(),
                req.clone(),
                dest,
                dest.transport.reliable(),
                self.now,
            );
            self.send(dest, req);
            self.lync.im.by_client.insert(key, page_id);
            outstanding += 1;
        }
        self.lync.im.pages.insert(
            page_id,
            Page {
                server,
                create,
                outstanding,
                best: 0,
            },
        );
    }

    /// A response to a page. Returns whether it was one.
    pub(crate) fn lync_im_response(&mut self, key: &ClientKey, resp: &Message) -> bool {
        let code = resp.status().unwrap_or(0);
        let Some(&page_id) = self.lync.im.by_client.get(key) else {
            return false;
        };
        if code < 200 {
            return true;
        }
        self.lync.im.by_client.remove(key);
        self.lync_page_result(page_id, code);
        true
    }

    /// A page timed out. Returns whether it was one.
    pub(crate) fn lync_im_timeout(&mut self, key: &ClientKey) -> bool {
        let Some(page_id) = self.lync.im.by_client.remove(key) else {
            return false;
        };
        self.lync_page_result(page_id, 408);
        true
    }

    fn lync_page_result(&mut self, page_id: u64, code: u16) {
        let Some(p) = self.lync.im.pages.get_mut(&page_id) else {
            return;
        };
        p.outstanding = p.outstanding.saturating_sub(1);
        let better = p.best == 0 || (200..300).contains(&code) || (p.best >= 300 && code < p.best);
        if better && !(200..300).contains(&p.best) {
            p.best = code;
        }
        let done = p.outstanding == 0 || (200..300).contains(&code);
        if !done {
            return;
        }
        let Some(p) = self.lync.im.pages.remove(&page_id) else {
            return;
        };
        // Forget the other branches of this page.
        self.lync.im.by_client.retain(|_, id| *id != page_id);
        let Some((key, req)) = p.server else {
            return;
        };
        debug!(code = p.best, "IM gateway page finished");
        if (200..300).contains(&p.best) {
            match p.create {
                Some(create) => self.lync_im_accept(&key, &req, create),
                None => {
                    let tag = req.to_tag().unwrap_or("").to_owned();
                    self.reply_tagged(&key, &req, 200, &tag, |b| b);
                }
            }
        } else {
            let code = if p.best >= 300 { p.best } else { 500 };
            match req.to_tag().map(str::to_owned) {
                Some(tag) => self.reply_tagged(&key, &req, code, &tag, |b| b),
                None => self.reply(&key, &req, code, |b| b),
            }
        }
    }

    /// Forgets idle sessions (at most once a minute).
    fn lync_im_prune(&mut self) {
        let now = self.now;
        if self.lync.im.next_prune.is_some_and(|t| t > now) {
            return;
        }
        self.lync.im.next_prune = Some(now + Duration::from_secs(60));
        self.lync
            .im
            .sessions
            .retain(|_, s| now.saturating_duration_since(s.last_used) < IDLE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_drops_msgr() {
        assert_eq!(
            page_content_type("text/plain; charset=UTF-8;msgr=WAAtAE0A"),
            "text/plain;charset=UTF-8"
        );
    }
}
