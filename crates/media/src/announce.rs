//! The Announcement service's SIP user agent (sans-IO): it answers the calls the
//! front end sends it (calls to unassigned numbers), streams the announcement,
//! then hangs up (BYE) or transfers the caller (REFER, then BYE once the REFER is
//! accepted).
//!
//! It sits behind the front end like the chat service: the front end proxies the
//! INVITE over UDP with its signed Record-Route, so every request of the dialog,
//! both ways, passes the front end. Reliability over UDP is the UA's own: the 200
//! (and a refusal) is retransmitted until the ACK comes (RFC 3261 §13.3.1.4,
//! §17.2.1), our BYE and REFER until a response comes (Timer E/F).
//!
//! The runtime (`crate::service`) is asked to open an RTP port
//! ([`Out::OpenMedia`]) before the answer can be written ([`AnnouncementUa::answer`]),
//! starts the prompt on [`Out::Play`], stops it on [`Out::Close`], and tells the
//! UA when the prompt ended ([`AnnouncementUa::played`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::{HeaderName, Limits, Message, Method, RequestBuilder, ResponseBuilder, Uri};
use confab_voice::{Announcement, VoiceConfig};
use tracing::debug;

use crate::sdp::{self, Negotiated};

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// 64 × T1: how long a reliable message is retransmitted.
const GIVE_UP: Duration = Duration::from_secs(32);
/// How long the caller's phone may take to reach the transfer target (its
/// NOTIFY with a final status) before we hang up anyway.
const TRANSFER_WAIT: Duration = Duration::from_secs(30);
/// Calls at once (each holds an RTP port).
pub const MAX_CALLS: usize = 4096;

/// A call of the UA.
pub type CallId = u64;

/// Where the UA is reached and what it calls itself.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Our SIP address (Via, Contact).
    pub sip: SocketAddr,
    pub domain: String,
}

/// Work for the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Send {
        to: SocketAddr,
        data: Bytes,
    },
    /// Open an RTP port for this call, then call [`AnnouncementUa::answer`] (or
    /// [`AnnouncementUa::fail`]).
    OpenMedia {
        call: CallId,
        announcement: Announcement,
        negotiated: Negotiated,
    },
    /// The caller acknowledged the answer: start the prompt.
    Play {
        call: CallId,
    },
    /// The call is over: stop the prompt, close the port.
    Close {
        call: CallId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the runtime's RTP port.
    Opening,
    /// 200 sent, waiting for ACK.
    Answered,
    /// Playing.
    Confirmed,
    /// REFER sent after the prompt.
    Referring,
    /// BYE sent.
    Ending,
}

struct Call {
    id: CallId,
    key: String,
    state: State,
    invite: Message,
    src: SocketAddr,
    tag: String,
    announcement: Announcement,
    /// Remote target (the caller's Contact) and route set (the Record-Route).
    target: String,
    routes: Vec<String>,
    cseq: u32,
    refused_with: Option<u16>,
    /// REFER accepted: hang up when the caller's NOTIFY reports a final status,
    /// or at this time.
    transfer_until: Option<Instant>,
}

/// A message sent again until answered (or acknowledged).
struct Retransmit {
    call: CallId,
    /// (CSeq number, method) that stops it: the ACK of a response to the INVITE,
    /// any final response to our request.
    cseq: u32,
    method: Method,
    to: SocketAddr,
    data: Bytes,
    next: Instant,
    interval: Duration,
    until: Instant,
    /// Our own request (Timer E: the interval caps at T2) or a response to an
    /// INVITE (the same cap).
    ours: bool,
}

/// See the module documentation.
pub struct AnnouncementUa {
    cfg: UaConfig,
    voice: Arc<VoiceConfig>,
    calls: HashMap<CallId, Call>,
    by_key: HashMap<String, CallId>,
    retransmits: Vec<Retransmit>,
    out: Vec<Out>,
    next_id: CallId,
    rng: u64,
}

fn dialog_key(call_id: &str, from_tag: &str) -> String {
    format!("{call_id}\u{0}{from_tag}")
}

/// The number a Request-URI dials: `sip:+1425...@host;user=phone` or `tel:+1425...`.
fn dialed(ruri: &str) -> Option<String> {
    let uri = Uri::parse(ruri).ok()?;
    let user = uri.user_unescaped()?.into_owned();
    let number = user.split(';').next().unwrap_or("").to_owned();
    confab_voice::is_e164(&number).then_some(number)
}

impl AnnouncementUa {
    pub fn new(cfg: UaConfig, voice: Arc<VoiceConfig>, seed: u64) -> AnnouncementUa {
        AnnouncementUa {
            cfg,
            voice,
            calls: HashMap::new(),
            by_key: HashMap::new(),
            retransmits: Vec::new(),
            out: Vec::new(),
            next_id: 1,
            rng: seed | 1,
        }
    }

    /// New voice configuration (announcements and ranges); calls in progress keep
    /// theirs.
    pub fn set_voice(&mut self, voice: Arc<VoiceConfig>) {
        self.voice = voice;
    }

    pub fn take_output(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    /// Calls in progress.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: tags and branches only need to be unique.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn send(&mut self, to: SocketAddr, data: Bytes) {
        self.out.push(Out::Send { to, data });
    }

    /// A datagram from the front end.
    pub fn on_datagram(&mut self, data: Bytes, src: SocketAddr, now: Instant) {
        let msg = match Message::parse(data, &Limits::default()) {
            Ok(m) => m,
            Err(e) => {
                debug!(%src, reason = %e.reason, "announcement: malformed SIP dropped");
                return;
            }
        };
        if msg.is_request() {
            self.on_request(msg, src, now);
        } else {
            self.on_response(&msg, now);
        }
    }

    fn reply(&mut self, req: &Message, src: SocketAddr, code: u16, reason: &str) {
        let data = ResponseBuilder::new(req, code)
            .reason(reason)
            .to_tag(format!("{:x}", self.random()))
            .build();
        self.send(src, data);
    }

    fn on_request(&mut self, msg: Message, src: SocketAddr, now: Instant) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let key = dialog_key(msg.call_id(), msg.from_tag().unwrap_or(""));
        let existing = self.by_key.get(&key).copied();
        match (method, existing) {
            (Method::Invite, None) if msg.to_tag().is_none() => self.on_invite(msg, src, key),
            (Method::Invite, Some(id)) => {
                let in_dialog = msg.to_tag().is_some();
                let same = self
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.invite.cseq().0 == msg.cseq().0);
                if same && !in_dialog {
                    // A retransmitted INVITE: the retransmission timer resends our answer.
                    return;
                }
                self.reply(&msg, src, 488, "Not Acceptable Here (no re-negotiation)");
            }
            (Method::Ack, Some(id)) => self.on_ack(id, msg.cseq().0),
            (Method::Ack, None) => {}
            (Method::Bye, Some(id)) => {
                let data = ResponseBuilder::new(&msg, 200).build();
                self.send(src, data);
                self.end(id);
            }
            (Method::Cancel, Some(id)) => {
                let data = ResponseBuilder::new(&msg, 200).build();
                self.send(src, data);
                if self
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.state == State::Opening)
                {
                    self.refuse(id, 487, "Request Terminated", now);
                }
            }
            (Method::Notify, Some(id)) => {
                let data = ResponseBuilder::new(&msg, 200).build();
                self.send(src, data);
                self.on_notify(id, &msg, now);
            }
            (Method::Options | Method::Info | Method::Update, Some(_)) => {
                let data = ResponseBuilder::new(&msg, 200).build();
                self.send(src, data);
            }
            (_, None) => self.reply(&msg, src, 481, "Call/Transaction Does Not Exist"),
            (_, Some(_)) => self.reply(&msg, src, 405, "Method Not Allowed"),
        }
    }

    fn on_invite(&mut self, msg: Message, src: SocketAddr, key: String) {
        if self.calls.len() >= MAX_CALLS {
            self.reply(&msg, src, 503, "Announcement service busy");
            return;
        }
        let number = msg.request_uri().and_then(dialed);
        let found = number
            .as_deref()
            .and_then(|n| self.voice.unassigned(n))
            .map(|(_, a)| a.clone());
        let Some(announcement) = found else {
            debug!(ruri = ?msg.request_uri(), "announcement: no unassigned range for this number");
            self.reply(&msg, src, 404, "No announcement for this number");
            return;
        };
        let offer = std::str::from_utf8(msg.body()).unwrap_or("");
        let negotiated = match sdp::negotiate(offer) {
            Ok(n) => n,
            Err(e) => {
                debug!(reason = %e, "announcement: offer refused");
                let reason = format!("Not Acceptable Here ({e})");
                self.reply(&msg, src, 488, &reason);
                return;
            }
        };
        let target = msg.header(HeaderName::Contact).and_then(|c| {
            confab_sip::NameAddr::parse(c)
                .ok()
                .map(|n| n.uri.to_owned())
        });
        let Some(target) = target else {
            self.reply(&msg, src, 400, "Missing Contact");
            return;
        };
        let routes: Vec<String> = msg
            .header_values(HeaderName::RecordRoute)
            .map(str::to_owned)
            .collect();
        let id = self.next_id;
        self.next_id += 1;
        let tag = format!("{:x}", self.random());
        debug!(call = id, announcement = %announcement.name, number = ?number, "announcement: answering");
        self.out.push(Out::OpenMedia {
            call: id,
            announcement: announcement.clone(),
            negotiated,
        });
        self.by_key.insert(key.clone(), id);
        self.calls.insert(
            id,
            Call {
                id,
                key,
                state: State::Opening,
                invite: msg,
                src,
                tag,
                announcement,
                target,
                routes,
                cseq: 0,
                refused_with: None,
                transfer_until: None,
            },
        );
    }

    /// The RTP port is open at `local`: answer with `sdp`'s answer.
    pub fn answer(
        &mut self,
        call: CallId,
        local: SocketAddr,
        negotiated: &Negotiated,
        now: Instant,
    ) {
        let session = self.random() >> 16;
        let cfg_sip = self.cfg.sip;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != State::Opening {
            return;
        }
        c.state = State::Answered;
        let body = negotiated.answer(local, session);
        let data = ResponseBuilder::new(&c.invite, 200)
            .to_tag(c.tag.clone())
            .copy_record_route()
            .header(
                "Contact",
                format!("<sip:announcement@{cfg_sip};transport=udp>"),
            )
            .header("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY")
            .body("application/sdp", body)
            .build();
        let (to, cseq) = (c.src, c.invite.cseq().0);
        self.send(to, data.clone());
        self.retransmit(call, cseq, Method::Invite, to, data, now, false);
    }

    /// The runtime could not open media: refuse the call.
    pub fn fail(&mut self, call: CallId, now: Instant) {
        self.refuse(call, 503, "Media unavailable", now);
    }

    fn refuse(&mut self, call: CallId, code: u16, reason: &str, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != State::Opening {
            return;
        }
        c.state = State::Answered;
        c.refused_with = Some(code);
        let data = ResponseBuilder::new(&c.invite, code)
            .reason(reason)
            .to_tag(c.tag.clone())
            .build();
        let (to, cseq) = (c.src, c.invite.cseq().0);
        self.out.push(Out::Close { call });
        self.send(to, data.clone());
        self.retransmit(call, cseq, Method::Invite, to, data, now, false);
    }

    #[allow(clippy::too_many_arguments)]
    fn retransmit(
        &mut self,
        call: CallId,
        cseq: u32,
        method: Method,
        to: SocketAddr,
        data: Bytes,
        now: Instant,
        ours: bool,
    ) {
        self.retransmits.push(Retransmit {
            call,
            cseq,
            method,
            to,
            data,
            next: now + T1,
            interval: T1,
            until: now + GIVE_UP,
            ours,
        });
    }

    fn on_ack(&mut self, id: CallId, cseq: u32) {
        self.retransmits
            .retain(|r| !(r.call == id && r.cseq == cseq && !r.ours));
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.refused_with.is_some() {
            self.forget(id);
            return;
        }
        if c.state == State::Answered {
            c.state = State::Confirmed;
            self.out.push(Out::Play { call: id });
        }
    }

    /// The prompt ended: transfer or hang up.
    pub fn played(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != State::Confirmed {
            return;
        }
        match c.announcement.target.clone() {
            Some(target) => {
                let refer_to = match target.strip_prefix("tel:") {
                    Some(number) => format!("sip:{number}@{};user=phone", self.cfg.domain),
                    None => target,
                };
                self.request(
                    call,
                    Method::Refer,
                    &[("Refer-To", format!("<{refer_to}>"))],
                    now,
                );
                if let Some(c) = self.calls.get_mut(&call) {
                    c.state = State::Referring;
                }
            }
            None => self.hang_up(call, now),
        }
    }

    fn hang_up(&mut self, call: CallId, now: Instant) {
        self.request(call, Method::Bye, &[], now);
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = State::Ending;
        }
        self.out.push(Out::Close { call });
    }

    /// Sends an in-dialog request (RFC 3261 §12.2.1.1).
    fn request(&mut self, call: CallId, method: Method, extra: &[(&str, String)], now: Instant) {
        let branch = format!("z9hG4bK{:x}", self.random());
        let sip = self.cfg.sip;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.cseq += 1;
        let inv = &c.invite;
        let to_header = inv.header(HeaderName::From).unwrap_or("").to_owned();
        let from_header = format!("{};tag={}", inv.header(HeaderName::To).unwrap_or(""), c.tag);
        let mut b = RequestBuilder::new(method.clone(), c.target.clone())
            .header("Via", format!("SIP/2.0/UDP {sip};branch={branch};rport"))
            .header("Max-Forwards", "70");
        for r in &c.routes {
            b = b.header("Route", r.clone());
        }
        b = b
            .header("From", from_header)
            .header("To", to_header)
            .header("Call-ID", inv.call_id().to_owned())
            .header("CSeq", format!("{} {method}", c.cseq))
            .header("Contact", format!("<sip:announcement@{sip};transport=udp>"));
        for (k, v) in extra {
            b = b.header(*k, v.clone());
        }
        let data = b.build();
        let (to, cseq) = (c.src, c.cseq);
        self.send(to, data.clone());
        self.retransmit(call, cseq, method, to, data, now, true);
    }

    fn on_response(&mut self, msg: &Message, now: Instant) {
        let key = dialog_key(msg.call_id(), msg.to_tag().unwrap_or(""));
        let Some(&id) = self.by_key.get(&key) else {
            return;
        };
        let (cseq, method) = msg.cseq();
        let status = msg.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        let method = method.clone();
        self.retransmits
            .retain(|r| !(r.call == id && r.ours && r.cseq == cseq && r.method == method));
        match method {
            Method::Bye => self.forget(id),
            Method::Refer => {
                // Refused: hang up. Accepted: the caller's phone now calls the
                // target, and tells us how it went (NOTIFY, RFC 3515); hanging
                // up before that made baresip drop the new call, so wait for
                // its final NOTIFY (or its BYE, or TRANSFER_WAIT).
                let Some(c) = self.calls.get_mut(&id) else {
                    return;
                };
                if c.state != State::Referring {
                    return;
                }
                if status >= 300 {
                    debug!(call = id, status, "announcement: REFER refused, hanging up");
                    self.hang_up(id, now);
                } else {
                    debug!(call = id, status, "announcement: REFER accepted");
                    c.transfer_until = Some(now + TRANSFER_WAIT);
                }
            }
            _ => {}
        }
    }

    /// A NOTIFY of the transfer (a `message/sipfrag` status line): a final
    /// status, or the end of the subscription, ends our part of the call.
    fn on_notify(&mut self, id: CallId, msg: &Message, now: Instant) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        if c.state != State::Referring {
            return;
        }
        let body = std::str::from_utf8(msg.body()).unwrap_or("");
        let status = body
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|code| code.parse::<u16>().ok());
        let terminated = msg.header_str("Subscription-State").is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("terminated")
        });
        if status.is_some_and(|code| code >= 200) || terminated {
            debug!(
                call = id,
                ?status,
                "announcement: transfer done, hanging up"
            );
            self.hang_up(id, now);
        }
    }

    fn end(&mut self, id: CallId) {
        self.out.push(Out::Close { call: id });
        self.forget(id);
    }

    fn forget(&mut self, id: CallId) {
        if let Some(c) = self.calls.remove(&id) {
            self.by_key.remove(&c.key);
            debug!(call = c.id, "announcement: call over");
        }
        self.retransmits.retain(|r| r.call != id);
    }

    /// When [`AnnouncementUa::on_timer`] is next needed.
    pub fn next_timer(&self) -> Option<Instant> {
        let waits = self.calls.values().filter_map(|c| match c.state {
            State::Referring => c.transfer_until,
            _ => None,
        });
        self.retransmits.iter().map(|r| r.next).chain(waits).min()
    }

    /// Retransmissions due; calls whose message went unanswered end.
    pub fn on_timer(&mut self, now: Instant) {
        let mut expired = Vec::new();
        let mut resend = Vec::new();
        for r in &mut self.retransmits {
            if r.next > now {
                continue;
            }
            if now >= r.until {
                expired.push(r.call);
                continue;
            }
            resend.push((r.to, r.data.clone()));
            r.interval = (r.interval * 2).min(T2);
            r.next = now + r.interval;
        }
        self.retransmits.retain(|r| now < r.until);
        for (to, data) in resend {
            self.send(to, data);
        }
        for id in expired {
            debug!(
                call = id,
                "announcement: no answer from the peer, call dropped"
            );
            self.end(id);
        }
        let waited: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| c.state == State::Referring && c.transfer_until.is_some_and(|t| t <= now))
            .map(|c| c.id)
            .collect();
        for id in waited {
            debug!(
                call = id,
                "announcement: no final NOTIFY of the transfer, hanging up"
            );
            self.hang_up(id, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_voice::{Homes, UnassignedRange, VoiceData};

    const FE: &str = "127.0.0.1:5060";

    fn voice(target: Option<&str>) -> Arc<VoiceConfig> {
        let data = VoiceData {
            announcements: vec![Announcement {
                name: "gone".into(),
                audio_file: None,
                tones: Some("1000:200".into()),
                target: target.map(Into::into),
            }],
            unassigned: vec![UnassignedRange {
                name: "old".into(),
                start: "+14255550100".into(),
                end: "+14255550199".into(),
                announcement: "gone".into(),
                priority: 0,
            }],
            ..VoiceData::default()
        };
        Arc::new(VoiceConfig::build(data, Homes::default()).unwrap())
    }

    fn ua(target: Option<&str>) -> AnnouncementUa {
        AnnouncementUa::new(
            UaConfig {
                sip: "127.0.0.1:7000".parse().unwrap(),
                domain: "example.com".into(),
            },
            voice(target),
            42,
        )
    }

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 6676 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

    fn invite(call_id: &str, number: &str, sdp: &str) -> Bytes {
        Bytes::from(format!(
            "INVITE sip:{number}@example.com;user=phone SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfe1\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:20000;branch=z9hG4bKua1;rport\r\n\
             Record-Route: <sip:127.0.0.1:5060;lr;cfd=abc>\r\n\
             From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:{number}@example.com;user=phone>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:20000>\r\n\
             Max-Forwards: 69\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ))
    }

    fn ack(call_id: &str, to_tag: &str) -> Bytes {
        Bytes::from(format!(
            "ACK sip:announcement@127.0.0.1:7000 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfe2\r\n\
             From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:x@example.com>;tag={to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n"
        ))
    }

    fn sent(outs: &[Out]) -> Vec<Message> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Send { data, .. } => Message::parse(data.clone(), &Limits::default()).ok(),
                _ => None,
            })
            .collect()
    }

    /// INVITE → OpenMedia → answer → 200; the 200's To tag.
    fn answered(ua: &mut AnnouncementUa, call_id: &str, now: Instant) -> (CallId, String) {
        let src: SocketAddr = FE.parse().unwrap();
        ua.on_datagram(invite(call_id, "+14255550150", OFFER), src, now);
        let outs = ua.take_output();
        let Some(Out::OpenMedia {
            call,
            negotiated,
            announcement,
        }) = outs.first().cloned()
        else {
            panic!("{outs:?}");
        };
        assert_eq!(announcement.name, "gone");
        ua.answer(call, "127.0.0.1:40000".parse().unwrap(), &negotiated, now);
        let msgs = sent(&ua.take_output());
        assert_eq!(msgs.len(), 1);
        let ok = &msgs[0];
        assert_eq!(ok.status(), Some(200));
        assert!(ok.header(HeaderName::RecordRoute).is_some());
        assert!(
            std::str::from_utf8(ok.body())
                .unwrap()
                .contains("m=audio 40000 RTP/AVP 0 101")
        );
        (call, ok.to_tag().unwrap().to_owned())
    }

    #[test]
    fn answers_plays_then_hangs_up() {
        let t0 = Instant::now();
        let mut ua = ua(None);
        let (call, tag) = answered(&mut ua, "c1", t0);
        // No ACK yet: the 200 goes again after T1.
        ua.on_timer(t0 + T1);
        assert_eq!(sent(&ua.take_output())[0].status(), Some(200));
        ua.on_datagram(ack("c1", &tag), FE.parse().unwrap(), t0 + T1);
        assert_eq!(ua.take_output(), vec![Out::Play { call }]);
        assert!(ua.next_timer().is_none());
        ua.played(call, t0 + Duration::from_secs(1));
        let outs = ua.take_output();
        assert!(outs.contains(&Out::Close { call }));
        let bye = &sent(&outs)[0];
        assert_eq!(bye.method(), Some(&Method::Bye));
        assert_eq!(bye.request_uri(), Some("sip:alice@127.0.0.1:20000"));
        assert_eq!(
            bye.header(HeaderName::Route),
            Some("<sip:127.0.0.1:5060;lr;cfd=abc>")
        );
        assert_eq!(bye.from_tag(), Some(tag.as_str()));
        assert_eq!(bye.to_tag(), Some("a1"));
        // Answered: the call is gone.
        let ok = format!(
            "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: c1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
            bye.header(HeaderName::Via).unwrap(),
            bye.header(HeaderName::From).unwrap(),
            bye.header(HeaderName::To).unwrap()
        );
        ua.on_datagram(
            Bytes::from(ok),
            FE.parse().unwrap(),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(ua.calls(), 0);
        assert!(ua.next_timer().is_none());
    }

    #[test]
    fn transfers_with_refer_then_hangs_up() {
        let t0 = Instant::now();
        let mut ua = ua(Some("tel:+14255550100"));
        let (call, tag) = answered(&mut ua, "c2", t0);
        ua.on_datagram(ack("c2", &tag), FE.parse().unwrap(), t0);
        ua.take_output();
        ua.played(call, t0);
        let refer = sent(&ua.take_output()).remove(0);
        assert_eq!(refer.method(), Some(&Method::Refer));
        assert_eq!(
            refer.header_str("Refer-To"),
            Some("<sip:+14255550100@example.com;user=phone>")
        );
        let accepted = format!(
            "SIP/2.0 202 Accepted\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: c2\r\nCSeq: 1 REFER\r\nContent-Length: 0\r\n\r\n",
            refer.header(HeaderName::Via).unwrap(),
            refer.header(HeaderName::From).unwrap(),
            refer.header(HeaderName::To).unwrap()
        );
        ua.on_datagram(Bytes::from(accepted), FE.parse().unwrap(), t0);
        // Accepted: no BYE until the caller's phone reports the transfer.
        assert!(sent(&ua.take_output()).is_empty());
        let notify = |cseq: u32, frag: &str, state: &str| {
            Bytes::from(format!(
                "NOTIFY sip:announcement@127.0.0.1:7000 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKn{cseq}\r\n\
                 From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:x@example.com>;tag={tag}\r\n\
                 Call-ID: c2\r\nCSeq: {cseq} NOTIFY\r\nEvent: refer\r\n\
                 Subscription-State: {state}\r\nMax-Forwards: 69\r\n\
                 Content-Type: message/sipfrag\r\nContent-Length: {}\r\n\r\n{frag}",
                frag.len()
            ))
        };
        ua.on_datagram(
            notify(2, "SIP/2.0 100 Trying", "active;expires=60"),
            FE.parse().unwrap(),
            t0,
        );
        let msgs = sent(&ua.take_output());
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].status(), Some(200));
        ua.on_datagram(
            notify(3, "SIP/2.0 200 OK", "terminated;reason=noresource"),
            FE.parse().unwrap(),
            t0,
        );
        let msgs = sent(&ua.take_output());
        assert_eq!(msgs[0].status(), Some(200));
        let bye = &msgs[1];
        assert_eq!(bye.method(), Some(&Method::Bye));
        assert_eq!(bye.cseq().0, 2);
    }

    #[test]
    fn transfer_without_notify_hangs_up_after_a_while() {
        let t0 = Instant::now();
        let mut ua = ua(Some("sip:bob@example.com"));
        let (call, tag) = answered(&mut ua, "c5", t0);
        ua.on_datagram(ack("c5", &tag), FE.parse().unwrap(), t0);
        ua.take_output();
        ua.played(call, t0);
        let refer = sent(&ua.take_output()).remove(0);
        let accepted = format!(
            "SIP/2.0 202 Accepted\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: c5\r\nCSeq: 1 REFER\r\nContent-Length: 0\r\n\r\n",
            refer.header(HeaderName::Via).unwrap(),
            refer.header(HeaderName::From).unwrap(),
            refer.header(HeaderName::To).unwrap()
        );
        ua.on_datagram(Bytes::from(accepted), FE.parse().unwrap(), t0);
        assert!(ua.take_output().is_empty());
        assert_eq!(ua.next_timer(), Some(t0 + TRANSFER_WAIT));
        ua.on_timer(t0 + TRANSFER_WAIT);
        let outs = ua.take_output();
        assert!(outs.contains(&Out::Close { call }));
        assert_eq!(sent(&outs)[0].method(), Some(&Method::Bye));
    }

    #[test]
    fn bad_offers_and_unknown_numbers_are_refused_without_harm() {
        let t0 = Instant::now();
        let mut ua = ua(None);
        let (call, tag) = answered(&mut ua, "good", t0);
        let src: SocketAddr = FE.parse().unwrap();
        let opus = OFFER
            .replace("RTP/AVP 0 8 101", "RTP/AVP 96")
            .replace("101 telephone-event", "96 opus");
        for (id, number, sdp, code) in [
            ("b1", "+14255550150", "garbage", 488),
            ("b2", "+14255550150", opus.as_str(), 488),
            ("b3", "+14255550150", "", 488),
            ("b4", "+14255550300", OFFER, 404),
        ] {
            ua.on_datagram(invite(id, number, sdp), src, t0);
            let msgs = sent(&ua.take_output());
            assert_eq!(msgs.len(), 1, "{id}");
            assert_eq!(msgs[0].status(), Some(code), "{id}");
        }
        // Garbage datagrams are dropped.
        ua.on_datagram(Bytes::from_static(b"\x00\x01junk"), src, t0);
        assert!(ua.take_output().is_empty());
        // The good call goes on.
        ua.on_datagram(ack("good", &tag), src, t0);
        assert_eq!(ua.take_output(), vec![Out::Play { call }]);
        assert_eq!(ua.calls(), 1);
    }

    #[test]
    fn unacknowledged_answers_and_caller_bye() {
        let t0 = Instant::now();
        let mut ua = ua(None);
        let (call, _) = answered(&mut ua, "c3", t0);
        let mut t = t0;
        let mut resent = 0;
        while let Some(next) = ua.next_timer() {
            t = next;
            ua.on_timer(t);
            resent += sent(&ua.take_output()).len();
            assert!(t < t0 + Duration::from_secs(40));
        }
        assert!(resent >= 7, "{resent}");
        assert_eq!(ua.calls(), 0);
        // A BYE from the caller ends a call.
        let (call2, tag) = answered(&mut ua, "c4", t);
        assert_ne!(call, call2);
        let bye = format!(
            "BYE sip:announcement@127.0.0.1:7000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb\r\n\
             From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:x@example.com>;tag={tag}\r\n\
             Call-ID: c4\r\nCSeq: 2 BYE\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n"
        );
        ua.on_datagram(Bytes::from(bye), FE.parse().unwrap(), t);
        let outs = ua.take_output();
        assert!(outs.contains(&Out::Close { call: call2 }));
        assert_eq!(sent(&outs)[0].status(), Some(200));
        assert_eq!(ua.calls(), 0);
    }
}
