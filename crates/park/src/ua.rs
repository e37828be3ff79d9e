//! The Call Park service's SIP user agent (sans-IO).
//!
//! It sits behind the front end like the Announcement service: the front end
//! proxies calls to orbit numbers to it (record-routed), and trusts its address
//! for the requests it sends (ring back INVITEs, MESSAGEs). Every leg is its own
//! dialog with its own Call-ID (the key of the leg):
//!
//! - **park**: an INVITE to an orbit number with the `parker=USER` URI parameter
//!   (what the parker's phone puts in the transfer's `Refer-To`, so that the
//!   parked caller's INVITE names who parked it): the call is answered, parked at
//!   the range's first free orbit, hears the orbit's music on hold, and the parker
//!   gets a MESSAGE naming the orbit;
//! - **retrieve**: an INVITE to an orbit number holding a parked call: answered
//!   with the parked call's codec and bridged to it ([`Out::Bridge`]: the runtime
//!   relays RTP both ways), the orbit is free again;
//! - **ring back**: a call parked longer than its range's timeout rings the
//!   parker (an INVITE from the service, with the parked call's codec only); no
//!   answer within [`ParkConfig::ring`] (or a refusal): the range's fallback
//!   destination is rung the same way; nobody: the parked call is hung up.
//!
//! Reliability over UDP is the UA's own, as in `confab_media::announce`: 2xx
//! answers until the ACK, requests until a response (Timer A/E), calls dropped
//! after 32 s without.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_media::sdp::{self, Negotiated};
use confab_sip::transaction::build_non2xx_ack;
use confab_sip::{
    HeaderName, Limits, Message, Method, NameAddr, RequestBuilder, ResponseBuilder, Uri,
};
use confab_voice::{ParkOrbit, VoiceConfig};
use tracing::debug;

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// 64 × T1: how long a message is retransmitted.
const GIVE_UP: Duration = Duration::from_secs(32);
/// Legs at once (each holds an RTP port).
pub const MAX_LEGS: usize = 4096;

/// One dialog of the service (a parked caller, a retriever, a ring back).
pub type LegId = u64;

/// Where the UA is reached.
#[derive(Debug, Clone)]
pub struct ParkConfig {
    /// Our SIP address (Via, Contact).
    pub sip: SocketAddr,
    pub domain: String,
    /// The front end, where requests we start go (it routes them to users).
    pub front_end: SocketAddr,
    /// How long a ring back rings before the next destination is tried.
    pub ring: Duration,
}

/// Work for the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Send {
        to: SocketAddr,
        data: Bytes,
    },
    /// Open an RTP port for the leg, then call [`ParkUa::media_ready`] (or
    /// [`ParkUa::media_failed`]).
    OpenMedia {
        leg: LegId,
    },
    /// Where the leg's party receives RTP, and the codec.
    Remote {
        leg: LegId,
        negotiated: Negotiated,
    },
    /// Play the orbit range's music on hold to the leg (looped).
    Hold {
        leg: LegId,
        orbit: ParkOrbit,
    },
    /// Stop any music of both legs and relay RTP between them.
    Bridge {
        a: LegId,
        b: LegId,
    },
    /// The leg is over: stop its media, close its port.
    Close {
        leg: LegId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Parked,
    Retriever,
    RingBack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// Waiting for the runtime's RTP port.
    Opening,
    /// 200 sent (UAS), waiting for ACK.
    Answered,
    /// INVITE sent (UAC), waiting for the answer.
    Inviting,
    /// Ring back given up: CANCEL sent, the final response still to come.
    Cancelled,
    Up,
    /// BYE sent.
    Ending,
}

/// What we need to send requests in a dialog.
#[derive(Debug, Clone)]
struct Dialog {
    /// Our From header value for requests we send (with our tag).
    local: String,
    /// The To header value (with their tag).
    remote: String,
    target: String,
    routes: Vec<String>,
    cseq: u32,
}

struct Leg {
    id: LegId,
    call_id: String,
    role: Role,
    park: u64,
    state: LegState,
    /// The INVITE received (UAS) or sent (UAC).
    invite: Message,
    /// Our tag (UAS: To tag of our answer; UAC: From tag).
    tag: String,
    dialog: Option<Dialog>,
    negotiated: Option<Negotiated>,
    /// Refused before answering: forget on ACK.
    refused: bool,
    /// The ACK of a 2xx we received (sent again if the 2xx is).
    ack: Option<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParkState {
    /// Answering the parked caller.
    Parking,
    Holding,
    /// A retriever is being answered.
    Retrieving(LegId),
    Ringing {
        leg: LegId,
        until: Instant,
    },
    Bridged(LegId),
}

struct Parked {
    orbit: String,
    range: ParkOrbit,
    /// The parker's address (`user@domain`).
    parker: Option<String>,
    caller: LegId,
    /// Who the caller is (its From), for the MESSAGE.
    caller_name: String,
    state: ParkState,
    deadline: Instant,
    /// Ring backs tried (0: none, 1: parker, 2: fallback).
    attempts: u8,
}

struct Retransmit {
    call_id: String,
    cseq: u32,
    method: Method,
    to: SocketAddr,
    data: Bytes,
    next: Instant,
    interval: Duration,
    until: Instant,
    /// A response to an INVITE (stopped by the ACK) rather than our request.
    answer: bool,
}

/// See the module documentation.
pub struct ParkUa {
    cfg: ParkConfig,
    voice: Arc<VoiceConfig>,
    legs: HashMap<LegId, Leg>,
    by_call_id: HashMap<String, LegId>,
    parks: HashMap<u64, Parked>,
    /// Orbit number → park.
    taken: HashMap<String, u64>,
    retransmits: Vec<Retransmit>,
    out: Vec<Out>,
    next_id: u64,
    rng: u64,
}

/// The parker named by a park request: `parker=alice` or `parker=alice@domain`.
fn parker_of(uri: &Uri<'_>, domain: &str) -> Result<Option<String>, &'static str> {
    let Some(value) = uri.param("parker") else {
        return Ok(None);
    };
    let v = value.unwrap_or("").replace("%40", "@");
    let (user, host) = v.split_once('@').unwrap_or((v.as_str(), domain));
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    };
    if !ok(user) || !ok(host) {
        return Err("Bad parker parameter");
    }
    Ok(Some(format!(
        "{}@{}",
        user.to_lowercase(),
        host.to_lowercase()
    )))
}

impl ParkUa {
    pub fn new(cfg: ParkConfig, voice: Arc<VoiceConfig>, seed: u64) -> ParkUa {
        ParkUa {
            cfg,
            voice,
            legs: HashMap::new(),
            by_call_id: HashMap::new(),
            parks: HashMap::new(),
            taken: HashMap::new(),
            retransmits: Vec::new(),
            out: Vec::new(),
            next_id: 1,
            rng: seed | 1,
        }
    }

    /// New voice configuration (orbit ranges); parked calls keep theirs.
    pub fn set_voice(&mut self, voice: Arc<VoiceConfig>) {
        self.voice = voice;
    }

    pub fn take_output(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    /// Calls parked or being retrieved or rung back.
    pub fn parked(&self) -> usize {
        self.parks.len()
    }

    /// The orbit a call waits at, by the parked caller's Call-ID.
    pub fn orbit_of(&self, call_id: &str) -> Option<&str> {
        let leg = self.by_call_id.get(call_id)?;
        let l = self.legs.get(leg)?;
        self.parks.get(&l.park).map(|p| p.orbit.as_str())
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: tags, branches and Call-IDs only need to be unique.
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

    fn contact(&self) -> String {
        format!("<sip:park@{};transport=udp>", self.cfg.sip)
    }

    /// A datagram from the front end.
    pub fn on_datagram(&mut self, data: Bytes, src: SocketAddr, now: Instant) {
        let msg = match Message::parse(data, &Limits::default()) {
            Ok(m) => m,
            Err(e) => {
                debug!(%src, reason = %e.reason, "park: malformed SIP dropped");
                return;
            }
        };
        if msg.is_request() {
            self.on_request(msg, src, now);
        } else {
            self.on_response(&msg, src, now);
        }
    }

    fn reply(&mut self, req: &Message, src: SocketAddr, code: u16, reason: &str) {
        let data = ResponseBuilder::new(req, code)
            .reason(reason)
            .to_tag(format!("{:x}", self.random()))
            .build();
        self.send(src, data);
    }

    fn ok(&mut self, req: &Message, src: SocketAddr) {
        let data = ResponseBuilder::new(req, 200).build();
        self.send(src, data);
    }

    fn on_request(&mut self, msg: Message, src: SocketAddr, now: Instant) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let existing = self.by_call_id.get(msg.call_id()).copied();
        match (method, existing) {
            (Method::Invite, None) if msg.to_tag().is_none() => self.on_invite(msg, src, now),
            (Method::Invite, Some(id)) => {
                let same = self
                    .legs
                    .get(&id)
                    .is_some_and(|l| l.invite.cseq().0 == msg.cseq().0);
                if same && msg.to_tag().is_none() {
                    return; // retransmitted: our answer is retransmitted by its timer
                }
                self.reply(&msg, src, 488, "Not Acceptable Here (no re-negotiation)");
            }
            (Method::Ack, Some(id)) => self.on_ack(id, &msg, now),
            (Method::Ack, None) => {}
            (Method::Bye, Some(id)) => {
                self.ok(&msg, src);
                self.leg_ended(id, now);
            }
            (Method::Cancel, Some(id)) => {
                self.ok(&msg, src);
                let opening = self
                    .legs
                    .get(&id)
                    .is_some_and(|l| l.state == LegState::Opening && l.role != Role::RingBack);
                if opening {
                    self.refuse(id, 487, "Request Terminated", now);
                }
            }
            (
                Method::Options | Method::Info | Method::Notify | Method::Update | Method::Message,
                Some(_),
            ) => self.ok(&msg, src),
            (_, None) => self.reply(&msg, src, 481, "Call/Transaction Does Not Exist"),
            (_, Some(_)) => self.reply(&msg, src, 405, "Method Not Allowed"),
        }
    }

    fn new_leg(
        &mut self,
        call_id: String,
        role: Role,
        park: u64,
        invite: Message,
        tag: String,
    ) -> LegId {
        let id = self.next_id;
        self.next_id += 1;
        self.by_call_id.insert(call_id.clone(), id);
        self.legs.insert(
            id,
            Leg {
                id,
                call_id,
                role,
                park,
                state: LegState::Opening,
                invite,
                tag,
                dialog: None,
                negotiated: None,
                refused: false,
                ack: None,
            },
        );
        id
    }

    fn on_invite(&mut self, msg: Message, src: SocketAddr, now: Instant) {
        if self.legs.len() >= MAX_LEGS {
            self.reply(&msg, src, 503, "Call Park service busy");
            return;
        }
        let ruri = msg.request_uri().unwrap_or("").to_owned();
        let Ok(uri) = Uri::parse(&ruri) else {
            self.reply(&msg, src, 400, "Bad Request-URI");
            return;
        };
        let number = uri
            .user_unescaped()
            .map(|u| u.split(';').next().unwrap_or("").to_owned())
            .unwrap_or_default();
        let Some(range) = self.voice.park_orbit(&number).cloned() else {
            self.reply(&msg, src, 404, "Not a call park orbit");
            return;
        };
        let parker = match parker_of(&uri, &self.cfg.domain) {
            Ok(p) => p,
            Err(reason) => {
                self.reply(&msg, src, 400, reason);
                return;
            }
        };
        let offer = std::str::from_utf8(msg.body()).unwrap_or("");
        let negotiated = match sdp::negotiate(offer) {
            Ok(n) => n,
            Err(e) => {
                let reason = format!("Not Acceptable Here ({e})");
                self.reply(&msg, src, 488, &reason);
                return;
            }
        };
        let contact = msg
            .header(HeaderName::Contact)
            .and_then(|c| NameAddr::parse(c).ok().map(|n| n.uri.to_owned()));
        let Some(target) = contact else {
            self.reply(&msg, src, 400, "Missing Contact");
            return;
        };
        let routes: Vec<String> = msg
            .header_values(HeaderName::RecordRoute)
            .map(str::to_owned)
            .collect();
        let tag = format!("{:x}", self.random());
        let dialog = Dialog {
            local: format!("{};tag={tag}", msg.header(HeaderName::To).unwrap_or("")),
            remote: msg.header(HeaderName::From).unwrap_or("").to_owned(),
            target,
            routes,
            cseq: 0,
        };
        let call_id = msg.call_id().to_owned();
        let caller_name = msg
            .from()
            .parsed_uri()
            .map(|u| u.aor())
            .unwrap_or_else(|_| "someone".to_owned());
        let id = if parker.is_some() {
            // Park: the range's first free orbit.
            let Some(orbit) = range.numbers().find(|n| !self.taken.contains_key(n)) else {
                self.reply(&msg, src, 486, "All call park orbits are busy");
                return;
            };
            let park = self.random();
            let id = self.new_leg(call_id, Role::Parked, park, msg, tag);
            self.taken.insert(orbit.clone(), park);
            debug!(leg = id, %orbit, parker = ?parker, "park: parking a call");
            self.parks.insert(
                park,
                Parked {
                    orbit,
                    deadline: now + Duration::from_secs(u64::from(range.timeout_secs)),
                    range,
                    parker,
                    caller: id,
                    caller_name,
                    state: ParkState::Parking,
                    attempts: 0,
                },
            );
            id
        } else {
            // Retrieve the call parked at this orbit.
            let park = self.taken.get(&number).copied();
            let found = park.and_then(|p| self.parks.get(&p).map(|x| (p, x)));
            let Some((park, parked)) = found else {
                self.reply(&msg, src, 404, "No call is parked at this orbit");
                return;
            };
            let state = parked.state;
            let caller_codec = self
                .legs
                .get(&parked.caller)
                .and_then(|l| l.negotiated.as_ref())
                .map(|n| n.codec);
            let available = matches!(state, ParkState::Holding | ParkState::Ringing { .. });
            if !available {
                self.reply(&msg, src, 486, "The parked call is being connected");
                return;
            }
            if caller_codec != Some(negotiated.codec) {
                self.reply(
                    &msg,
                    src,
                    488,
                    "Not Acceptable Here (the parked call uses another codec)",
                );
                return;
            }
            if let ParkState::Ringing { leg, .. } = state {
                self.cancel_ring_back(leg, now);
            }
            let id = self.new_leg(call_id, Role::Retriever, park, msg, tag);
            if let Some(p) = self.parks.get_mut(&park) {
                p.state = ParkState::Retrieving(id);
            }
            debug!(leg = id, orbit = %number, "park: retrieving a call");
            id
        };
        if let Some(l) = self.legs.get_mut(&id) {
            l.dialog = Some(dialog);
            l.negotiated = Some(negotiated.clone());
        }
        self.out.push(Out::Remote {
            leg: id,
            negotiated,
        });
        self.out.push(Out::OpenMedia { leg: id });
    }

    /// The leg's RTP port is open at `local`: answer (UAS) or call (UAC).
    pub fn media_ready(&mut self, leg: LegId, local: SocketAddr, now: Instant) {
        let session = self.random() >> 16;
        let contact = self.contact();
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.state != LegState::Opening {
            return;
        }
        if l.role == Role::RingBack {
            self.send_ring_back(leg, local, now);
            return;
        }
        let Some(n) = l.negotiated.clone() else {
            return;
        };
        l.state = LegState::Answered;
        let body = n.answer(local, session);
        let data = ResponseBuilder::new(&l.invite, 200)
            .to_tag(l.tag.clone())
            .copy_record_route()
            .header("Contact", contact)
            .header(
                "Allow",
                "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY, MESSAGE",
            )
            .body("application/sdp", body)
            .build();
        let to = self.cfg.front_end;
        let (call_id, cseq) = (l.call_id.clone(), l.invite.cseq().0);
        self.send(to, data.clone());
        self.retransmit(call_id, cseq, Method::Invite, to, data, now, true);
    }

    /// No RTP port for the leg.
    pub fn media_failed(&mut self, leg: LegId, now: Instant) {
        let role = self.legs.get(&leg).map(|l| l.role);
        match role {
            Some(Role::RingBack) => {
                self.forget(leg);
                self.out.push(Out::Close { leg });
                self.ring_back_failed(leg, now);
            }
            Some(_) => self.refuse(leg, 503, "Media unavailable", now),
            None => {}
        }
    }

    fn refuse(&mut self, leg: LegId, code: u16, reason: &str, now: Instant) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        l.refused = true;
        l.state = LegState::Answered;
        let data = ResponseBuilder::new(&l.invite, code)
            .reason(reason)
            .to_tag(l.tag.clone())
            .build();
        let (call_id, cseq, park, role) = (l.call_id.clone(), l.invite.cseq().0, l.park, l.role);
        let to = self.cfg.front_end;
        self.out.push(Out::Close { leg });
        self.send(to, data.clone());
        self.retransmit(call_id, cseq, Method::Invite, to, data, now, true);
        match role {
            Role::Parked => self.end_park(park),
            Role::Retriever => {
                if let Some(p) = self.parks.get_mut(&park)
                    && p.state == ParkState::Retrieving(leg)
                {
                    p.state = ParkState::Holding;
                }
            }
            Role::RingBack => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn retransmit(
        &mut self,
        call_id: String,
        cseq: u32,
        method: Method,
        to: SocketAddr,
        data: Bytes,
        now: Instant,
        answer: bool,
    ) {
        self.retransmits.push(Retransmit {
            call_id,
            cseq,
            method,
            to,
            data,
            next: now + T1,
            interval: T1,
            until: now + GIVE_UP,
            answer,
        });
    }

    fn on_ack(&mut self, id: LegId, msg: &Message, now: Instant) {
        let cseq = msg.cseq().0;
        let Some(l) = self.legs.get_mut(&id) else {
            return;
        };
        let call_id = l.call_id.clone();
        self.retransmits
            .retain(|r| !(r.answer && r.call_id == call_id && r.cseq == cseq));
        if l.refused {
            self.forget(id);
            return;
        }
        if l.state != LegState::Answered {
            return;
        }
        l.state = LegState::Up;
        let (role, park) = (l.role, l.park);
        match role {
            Role::Parked => {
                let Some(p) = self.parks.get_mut(&park) else {
                    return;
                };
                p.state = ParkState::Holding;
                p.deadline = now + Duration::from_secs(u64::from(p.range.timeout_secs));
                let orbit = p.range.clone();
                let text = format!(
                    "Call from {} parked at orbit {}. Dial {} to retrieve it.",
                    p.caller_name, p.orbit, p.orbit
                );
                let parker = p.parker.clone();
                self.out.push(Out::Hold { leg: id, orbit });
                if let Some(parker) = parker {
                    self.message(&parker, &text, now);
                }
            }
            Role::Retriever => {
                let Some(p) = self.parks.get_mut(&park) else {
                    return;
                };
                p.state = ParkState::Bridged(id);
                let (caller, orbit) = (p.caller, p.orbit.clone());
                self.taken.remove(&orbit);
                debug!(%orbit, "park: call retrieved");
                self.out.push(Out::Bridge { a: caller, b: id });
            }
            Role::RingBack => {}
        }
    }

    /// A page-mode MESSAGE to `aor` (the orbit, for the parker).
    fn message(&mut self, aor: &str, text: &str, now: Instant) {
        let call_id = format!("{:x}@park", self.random());
        let branch = format!("z9hG4bK{:x}", self.random());
        let tag = format!("{:x}", self.random());
        let sip = self.cfg.sip;
        let data = RequestBuilder::new(Method::Message, format!("sip:{aor}"))
            .header("Via", format!("SIP/2.0/UDP {sip};branch={branch};rport"))
            .header("Max-Forwards", "70")
            .header("From", format!("<sip:park@{}>;tag={tag}", self.cfg.domain))
            .header("To", format!("<sip:{aor}>"))
            .header("Call-ID", call_id.clone())
            .header("CSeq", "1 MESSAGE")
            .body("text/plain", text.to_owned())
            .build();
        let to = self.cfg.front_end;
        self.send(to, data.clone());
        self.retransmit(call_id, 1, Method::Message, to, data, now, false);
    }

    /// Sends an in-dialog request on `leg`.
    fn request(&mut self, leg: LegId, method: Method, now: Instant) {
        let branch = format!("z9hG4bK{:x}", self.random());
        let sip = self.cfg.sip;
        let contact = self.contact();
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let Some(d) = l.dialog.as_mut() else {
            return;
        };
        d.cseq += 1;
        let mut b = RequestBuilder::new(method.clone(), d.target.clone())
            .header("Via", format!("SIP/2.0/UDP {sip};branch={branch};rport"))
            .header("Max-Forwards", "70");
        for r in &d.routes {
            b = b.header("Route", r.clone());
        }
        let data = b
            .header("From", d.local.clone())
            .header("To", d.remote.clone())
            .header("Call-ID", l.call_id.clone())
            .header("CSeq", format!("{} {method}", d.cseq))
            .header("Contact", contact)
            .build();
        let (call_id, cseq) = (l.call_id.clone(), d.cseq);
        let to = self.cfg.front_end;
        self.send(to, data.clone());
        self.retransmit(call_id, cseq, method, to, data, now, false);
    }

    /// Hangs up an established leg (BYE) and closes its media.
    fn hang_up(&mut self, leg: LegId, now: Instant) {
        let up = self
            .legs
            .get(&leg)
            .is_some_and(|l| matches!(l.state, LegState::Up | LegState::Answered));
        if up {
            self.request(leg, Method::Bye, now);
            if let Some(l) = self.legs.get_mut(&leg) {
                l.state = LegState::Ending;
            }
        } else {
            self.forget(leg);
        }
        self.out.push(Out::Close { leg });
    }

    /// The leg's party hung up (BYE): what it was part of ends or goes back to
    /// holding.
    fn leg_ended(&mut self, leg: LegId, now: Instant) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        let (role, park) = (l.role, l.park);
        self.out.push(Out::Close { leg });
        self.forget(leg);
        let Some(p) = self.parks.get(&park) else {
            return;
        };
        let (state, caller) = (p.state, p.caller);
        match role {
            Role::Parked => {
                match state {
                    ParkState::Bridged(other) | ParkState::Retrieving(other) => {
                        self.hang_up(other, now)
                    }
                    ParkState::Ringing { leg: other, .. } => self.cancel_ring_back(other, now),
                    _ => {}
                }
                self.end_park(park);
            }
            Role::Retriever | Role::RingBack => {
                if state == ParkState::Bridged(leg) {
                    self.hang_up(caller, now);
                    self.end_park(park);
                } else if state == ParkState::Retrieving(leg)
                    && let Some(p) = self.parks.get_mut(&park)
                {
                    p.state = ParkState::Holding;
                }
            }
        }
    }

    fn end_park(&mut self, park: u64) {
        if let Some(p) = self.parks.remove(&park) {
            if self.taken.get(&p.orbit) == Some(&park) {
                self.taken.remove(&p.orbit);
            }
            debug!(orbit = %p.orbit, "park: parked call over");
        }
    }

    fn forget(&mut self, leg: LegId) {
        if let Some(l) = self.legs.remove(&leg) {
            self.by_call_id.remove(&l.call_id);
            let call_id = l.call_id;
            self.retransmits.retain(|r| r.call_id != call_id);
            debug!(leg = l.id, "park: leg over");
        }
    }

    /// Rings the next destination of a parked call whose time ran out: the
    /// parker, then the fallback; nobody left: the caller is hung up.
    fn ring_next(&mut self, park: u64, now: Instant) {
        let Some(p) = self.parks.get_mut(&park) else {
            return;
        };
        let mut target = None;
        while target.is_none() && p.attempts < 2 {
            p.attempts += 1;
            target = match p.attempts {
                1 => p.parker.as_ref().map(|a| format!("sip:{a}")),
                _ => p
                    .range
                    .fallback
                    .as_ref()
                    .map(|f| match f.strip_prefix("tel:") {
                        Some(n) => format!("sip:{n}@{};user=phone", self.cfg.domain),
                        None => f.clone(),
                    }),
            };
        }
        let Some(target) = target else {
            let caller = p.caller;
            debug!(orbit = %p.orbit, "park: nobody took the call, hanging up");
            self.hang_up(caller, now);
            self.end_park(park);
            return;
        };
        let (orbit, caller) = (p.orbit.clone(), p.caller);
        if self
            .legs
            .get(&caller)
            .and_then(|l| l.negotiated.as_ref())
            .is_none()
        {
            return;
        }
        let call_id = format!("{:x}@park", self.random());
        let tag = format!("{:x}", self.random());
        let domain = self.cfg.domain.clone();
        // The INVITE without its body and Via yet (both known once the port is
        // open); kept parsed for CANCEL and the non-2xx ACK.
        let placeholder = RequestBuilder::new(Method::Invite, target.clone())
            .header(
                "Via",
                format!("SIP/2.0/UDP {};branch=z9hG4bK0", self.cfg.sip),
            )
            .header("Max-Forwards", "70")
            .header("From", format!("<sip:{orbit}@{domain}>;tag={tag}"))
            .header("To", format!("<{target}>"))
            .header("Call-ID", call_id.clone())
            .header("CSeq", "1 INVITE")
            .build();
        let Ok(invite) = Message::parse(placeholder, &Limits::default()) else {
            return;
        };
        let leg = self.new_leg(call_id, Role::RingBack, park, invite, tag);
        if let Some(p) = self.parks.get_mut(&park) {
            p.state = ParkState::Ringing {
                leg,
                until: now + self.cfg.ring,
            };
        }
        debug!(%orbit, %target, "park: ringing back");
        self.out.push(Out::OpenMedia { leg });
    }

    fn send_ring_back(&mut self, leg: LegId, local: SocketAddr, now: Instant) {
        let branch = format!("z9hG4bK{:x}", self.random());
        let session = self.random() >> 16;
        let sip = self.cfg.sip;
        let contact = self.contact();
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        let codec = self
            .parks
            .get(&l.park)
            .and_then(|p| self.legs.get(&p.caller))
            .and_then(|c| c.negotiated.as_ref())
            .map(|n| n.codec);
        let Some(codec) = codec else {
            return;
        };
        let family = if local.is_ipv6() { "IP6" } else { "IP4" };
        let ip = local.ip();
        let pt = codec.payload_type();
        let offer = format!(
            "v=0\r\no=confab {session} {session} IN {family} {ip}\r\ns=confab\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {}/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\na=sendrecv\r\n",
            local.port(),
            codec.name()
        );
        let inv = &l.invite;
        let data = RequestBuilder::new(Method::Invite, inv.request_uri().unwrap_or("").to_owned())
            .header("Via", format!("SIP/2.0/UDP {sip};branch={branch};rport"))
            .header("Max-Forwards", "70")
            .header(
                "From",
                inv.header(HeaderName::From).unwrap_or("").to_owned(),
            )
            .header("To", inv.header(HeaderName::To).unwrap_or("").to_owned())
            .header("Call-ID", l.call_id.clone())
            .header("CSeq", "1 INVITE")
            .header("Contact", contact)
            .header(
                "Allow",
                "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY, MESSAGE",
            )
            .body("application/sdp", offer)
            .build();
        let Ok(sent) = Message::parse(data.clone(), &Limits::default()) else {
            return;
        };
        let call_id = l.call_id.clone();
        if let Some(l) = self.legs.get_mut(&leg) {
            l.invite = sent;
            l.state = LegState::Inviting;
        }
        let to = self.cfg.front_end;
        self.send(to, data.clone());
        self.retransmit(call_id, 1, Method::Invite, to, data, now, false);
    }

    /// Gives up a ring back that was not answered in time: CANCEL; the parked
    /// call moves on to the next destination at once.
    fn cancel_ring_back(&mut self, leg: LegId, now: Instant) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        match l.state {
            LegState::Inviting => {
                l.state = LegState::Cancelled;
                let inv = &l.invite;
                let mut b = RequestBuilder::new(Method::Cancel, inv.request_uri().unwrap_or(""))
                    .header("Via", inv.top_via_str())
                    .header("Max-Forwards", "70")
                    .header("From", inv.header(HeaderName::From).unwrap_or(""))
                    .header("To", inv.header(HeaderName::To).unwrap_or(""))
                    .header("Call-ID", inv.call_id())
                    .header("CSeq", format!("{} CANCEL", inv.cseq().0));
                for r in inv.headers_named(HeaderName::Route) {
                    b = b.header("Route", r);
                }
                let data = b.build();
                let call_id = l.call_id.clone();
                let cseq = inv.cseq().0;
                self.retransmits
                    .retain(|r| !(r.call_id == call_id && r.method == Method::Invite));
                let to = self.cfg.front_end;
                self.send(to, data.clone());
                self.retransmit(call_id, cseq, Method::Cancel, to, data, now, false);
            }
            LegState::Up | LegState::Answered => self.hang_up(leg, now),
            _ => {
                self.out.push(Out::Close { leg });
                self.forget(leg);
            }
        }
    }

    fn ring_back_failed(&mut self, leg: LegId, now: Instant) {
        let ringing = self.parks.iter().find_map(|(id, p)| match p.state {
            ParkState::Ringing { leg: l, .. } if l == leg => Some(*id),
            _ => None,
        });
        if let Some(park) = ringing {
            if let Some(p) = self.parks.get_mut(&park) {
                p.state = ParkState::Holding;
            }
            self.ring_next(park, now);
        }
    }

    fn on_response(&mut self, msg: &Message, src: SocketAddr, now: Instant) {
        let (cseq, method) = msg.cseq();
        let method = method.clone();
        let status = msg.status().unwrap_or(0);
        let call_id = msg.call_id().to_owned();
        if status >= 200 || method == Method::Invite {
            // Any response stops our request's retransmission (Timer A stops on
            // a provisional response too: the proxy is reliable from there).
            self.retransmits.retain(|r| {
                !(r.call_id == call_id && !r.answer && r.cseq == cseq && r.method == method)
            });
        }
        let Some(&leg) = self.by_call_id.get(&call_id) else {
            return;
        };
        match method {
            Method::Invite if status >= 200 => self.on_invite_response(leg, msg, src, now),
            Method::Bye if status >= 200 => self.forget(leg),
            _ => {}
        }
    }

    fn on_invite_response(&mut self, leg: LegId, msg: &Message, src: SocketAddr, now: Instant) {
        let status = msg.status().unwrap_or(0);
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.role != Role::RingBack {
            return;
        }
        if status >= 300 {
            let ack = build_non2xx_ack(&l.invite, msg);
            let state = l.state;
            self.send(src, ack);
            self.out.push(Out::Close { leg });
            self.forget(leg);
            if state == LegState::Inviting {
                debug!(leg, status, "park: ring back refused");
                self.ring_back_failed(leg, now);
            }
            return;
        }
        if let Some(ack) = l.ack.clone() {
            self.send(src, ack); // a retransmitted 2xx
            return;
        }
        // 2xx: the dialog, its ACK, then bridge (or hang up if given up).
        let mut routes: Vec<String> = msg
            .header_values(HeaderName::RecordRoute)
            .map(str::to_owned)
            .collect();
        routes.reverse();
        let target = msg
            .header(HeaderName::Contact)
            .and_then(|c| NameAddr::parse(c).ok().map(|n| n.uri.to_owned()))
            .unwrap_or_else(|| l.invite.request_uri().unwrap_or("").to_owned());
        let d = Dialog {
            local: l.invite.header(HeaderName::From).unwrap_or("").to_owned(),
            remote: msg.header(HeaderName::To).unwrap_or("").to_owned(),
            target,
            routes,
            cseq: 1,
        };
        let branch = format!("z9hG4bK{:x}", self.random());
        let mut b = RequestBuilder::new(Method::Ack, d.target.clone())
            .header(
                "Via",
                format!("SIP/2.0/UDP {};branch={branch};rport", self.cfg.sip),
            )
            .header("Max-Forwards", "70");
        for r in &d.routes {
            b = b.header("Route", r.clone());
        }
        let ack = b
            .header("From", d.local.clone())
            .header("To", d.remote.clone())
            .header("Call-ID", msg.call_id().to_owned())
            .header("CSeq", "1 ACK")
            .build();
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        l.dialog = Some(d);
        l.ack = Some(ack.clone());
        let (state, park) = (l.state, l.park);
        l.state = LegState::Up;
        let to = self.cfg.front_end;
        self.send(to, ack);
        let answer = std::str::from_utf8(msg.body()).unwrap_or("");
        let negotiated = sdp::negotiate(answer).ok();
        let ringing = self
            .parks
            .get(&park)
            .is_some_and(|p| matches!(p.state, ParkState::Ringing { leg: l, .. } if l == leg));
        match negotiated {
            Some(n) if state == LegState::Inviting && ringing => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.negotiated = Some(n.clone());
                }
                let Some(p) = self.parks.get_mut(&park) else {
                    return;
                };
                p.state = ParkState::Bridged(leg);
                let (caller, orbit) = (p.caller, p.orbit.clone());
                self.taken.remove(&orbit);
                debug!(%orbit, "park: ring back answered");
                self.out.push(Out::Remote { leg, negotiated: n });
                self.out.push(Out::Bridge { a: caller, b: leg });
            }
            other => {
                // Cancelled meanwhile, or an answer we cannot use.
                self.hang_up(leg, now);
                if other.is_none() && ringing {
                    self.ring_back_failed(leg, now);
                }
            }
        }
    }

    /// When [`ParkUa::on_timer`] is next needed.
    pub fn next_timer(&self) -> Option<Instant> {
        let r = self.retransmits.iter().map(|r| r.next);
        let p = self.parks.values().filter_map(|p| match p.state {
            ParkState::Holding => Some(p.deadline),
            ParkState::Ringing { until, .. } => Some(until),
            _ => None,
        });
        r.chain(p).min()
    }

    /// Retransmissions, ring backs and their time-outs.
    pub fn on_timer(&mut self, now: Instant) {
        let mut expired = Vec::new();
        let mut resend = Vec::new();
        for r in &mut self.retransmits {
            if r.next > now {
                continue;
            }
            if now >= r.until {
                expired.push(r.call_id.clone());
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
        for call_id in expired {
            if let Some(&leg) = self.by_call_id.get(&call_id) {
                debug!(leg, "park: no answer from the peer, leg dropped");
                let ringing = self
                    .legs
                    .get(&leg)
                    .is_some_and(|l| l.role == Role::RingBack);
                if ringing {
                    self.out.push(Out::Close { leg });
                    self.forget(leg);
                    self.ring_back_failed(leg, now);
                } else {
                    self.leg_ended(leg, now);
                }
            }
        }
        let due: Vec<(u64, Option<LegId>)> = self
            .parks
            .iter()
            .filter_map(|(id, p)| match p.state {
                ParkState::Holding if p.deadline <= now => Some((*id, None)),
                ParkState::Ringing { leg, until } if until <= now => Some((*id, Some(leg))),
                _ => None,
            })
            .collect();
        for (park, ringing) in due {
            if let Some(leg) = ringing {
                debug!(leg, "park: ring back not answered in time");
                self.cancel_ring_back(leg, now);
                if let Some(p) = self.parks.get_mut(&park) {
                    p.state = ParkState::Holding;
                }
            }
            self.ring_next(park, now);
        }
    }
}
