//! Enterprise Voice routing: the application behind the front end that owns calls
//! to phone numbers and calls from PSTN gateways. Called from one place in the
//! dispatcher: [`classify`] tells whether a request is a voice call, then
//! [`inbound`] or [`outbound`] (after the core authenticated the caller) return
//! the [`Verdict`] the core carries out. The decisions are `confab_voice`'s
//! (sans-IO, tested there); this module only turns them into SIP:
//!
//! - **Calls to a number** from a local user (`tel:+E164`,
//!   `sip:+E164@domain;user=phone`, or a dial string such as `sip:5550100@domain`
//!   that names no user): authenticated like any call, normalized with the caller's
//!   dial plan; a user's line URI reaches that user's contacts; any other number
//!   goes, record-routed, to the trunks the caller's voice policy and the routes
//!   allow, one after the other (failover on 503, 408 or a timeout), with the
//!   trunk's translation of the number in the Request-URI and the caller's line URI
//!   in `P-Asserted-Identity`. Nothing allowed: `403` with the reason.
//! - **Calls from a gateway**: accepted only from a trunk's address (anything else
//!   is refused like any request from another domain), normalized with the global
//!   dial plan, sent to the user owning the number, `404` otherwise.
//!
//! With a Mediation server (`CoreConfig::mediation`, collocated by default), the
//! call to the PSTN is handed to it instead, record-routed, as
//! `sip:+E164@mediation;user=phone`: the Mediation server's back-to-back user
//! agent (crates/mediation) places its own call to the trunks with failover.
//! Without one, signalling is proxied straight to the gateways (media bypass).

use std::net::SocketAddr;

use confab_sip::uri::Scheme;
use confab_sip::{HeaderName, Message, Method, Rewriter, Uri};
use confab_voice::{VoiceConfig, is_dial_string};
use tracing::debug;

use crate::directory::Directory;
use crate::types::{Dest, Transport};
use crate::verdict::{Forward, Verdict};

/// A request that is Enterprise Voice's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VoiceCall {
    /// A call from the PSTN gateway of `trunk` to `dialed`.
    Inbound { trunk: String, dialed: String },
    /// A local user's call to `dialed` (the caller is authenticated next).
    Outbound { dialed: String },
}

/// What the dispatcher knows of a request when it asks [`classify`].
pub(crate) struct Request<'a> {
    pub msg: &'a Message,
    pub src: SocketAddr,
    pub ruri: &'a Uri<'a>,
    /// The Request-URI's host is ours.
    pub ruri_ours: bool,
    /// The From address is of our domain.
    pub from_local: bool,
}

/// The number a Request-URI dials, if it dials one: a `tel:` URI, a `sip:` URI
/// with `user=phone`, or a dial string at our domain that is no user's name.
fn dialed_number(req: &Request<'_>, domain: &str, directory: &Directory) -> Option<String> {
    let ruri = req.ruri;
    let user = ruri.user_unescaped()?.into_owned();
    if ruri.scheme == Scheme::Tel {
        // tel:+1-425-555-0100;phone-context=... : the number is before any ';'.
        return Some(user);
    }
    let user_phone = ruri
        .param("user")
        .flatten()
        .is_some_and(|v| v.eq_ignore_ascii_case("phone"));
    // `sip:+14255550100;ext=1@host` keeps user parameters in the user part.
    let number = user.split(';').next().unwrap_or("").to_owned();
    if user_phone && is_dial_string(&number) {
        return Some(number);
    }
    if req.ruri_ours && is_dial_string(&number) {
        let aor = format!("{}@{}", user.to_lowercase(), domain);
        if directory.get(&aor).is_none() {
            return Some(number);
        }
    }
    None
}

/// The user owning the number `caller` dialed and that number normalized with the
/// caller's dial plan (what [`outbound`] would call); for call records.
pub(crate) fn number_owner(
    voice: &VoiceConfig,
    caller: &str,
    dialed: &str,
) -> Option<(String, String)> {
    if voice.is_empty() || !is_dial_string(dialed) {
        return None;
    }
    let number = voice.normalize(Some(caller), dialed).ok()?.number;
    let user = voice.user_by_number(&number)?.to_owned();
    Some((user, number))
}

/// Whether an out-of-dialog request is Enterprise Voice's (see the module
/// documentation); `None` for any other request.
pub(crate) fn classify(
    voice: &VoiceConfig,
    domain: &str,
    directory: &Directory,
    req: &Request<'_>,
) -> Option<VoiceCall> {
    if req.msg.method() != Some(&Method::Invite) || voice.is_empty() {
        return None;
    }
    let dialed = dialed_number(req, domain, directory)?;
    if let Some(trunk) = voice.trunk_at(req.src) {
        return Some(VoiceCall::Inbound {
            trunk: trunk.to_owned(),
            dialed,
        });
    }
    // Not from a trunk, not from a local user: refused by the dispatcher like any
    // request from another domain.
    req.from_local.then_some(VoiceCall::Outbound { dialed })
}

/// A call to an unassigned number (Lync's unassigned-number ranges) goes to the
/// Announcement service, when it runs: proxied there record-routed, with the
/// normalized number in the Request-URI (the service finds the announcement by it).
fn to_announcement(
    voice: &VoiceConfig,
    service: Option<Dest>,
    domain: &str,
    number: &str,
) -> Option<Verdict> {
    let dest = service?;
    let (range, announcement) = voice.unassigned(number)?;
    debug!(%number, range = %range.name, announcement = %announcement.name, "call to an unassigned number");
    Some(Verdict::Forward(Forward {
        rewritten: None,
        targets: vec![(format!("sip:{number}@{domain};user=phone"), dest)],
        record_route: true,
        serial: false,
    }))
}

/// A local user's call to a Call Park orbit number goes to the Call Park service
/// when it runs (crates/park): proxied there record-routed with the Request-URI
/// unchanged (a transfer to park names the parker in it: `;parker=user`).
pub(crate) fn to_park(
    voice: &VoiceConfig,
    service: Option<Dest>,
    msg: &Message,
    dialed: &str,
) -> Option<Verdict> {
    let dest = service?;
    let orbit = voice.park_orbit(dialed)?;
    let ruri = msg.request_uri()?.to_owned();
    debug!(%dialed, orbit = %orbit.name, "call to a call park orbit");
    Some(Verdict::Forward(Forward {
        rewritten: None,
        targets: vec![(ruri, dest)],
        record_route: true,
        serial: false,
    }))
}

/// A call from a gateway's trunk to `dialed`; `announcement` is where the
/// Announcement service listens.
pub(crate) fn inbound(
    voice: &VoiceConfig,
    domain: &str,
    announcement: Option<Dest>,
    trunk: &str,
    dialed: &str,
) -> Verdict {
    let number = match voice.normalize(None, dialed) {
        Ok(n) => n.number,
        Err(e) => {
            debug!(%trunk, %dialed, reason = %e, "inbound call: number not normalized");
            return Verdict::reply(404, "No user has this number");
        }
    };
    let Some(user) = voice.user_by_number(&number) else {
        if let Some(v) = to_announcement(voice, announcement, domain, &number) {
            return v;
        }
        debug!(%trunk, %number, "inbound call: no user has this number");
        return Verdict::reply(404, "No user has this number");
    };
    debug!(%trunk, %number, %user, "inbound call from a gateway");
    Verdict::ToUser(user.to_owned())
}

/// The authenticated local user `caller`'s call to `dialed`.
pub(crate) fn outbound(
    voice: &VoiceConfig,
    domain: &str,
    mediation: Option<SocketAddr>,
    announcement: Option<Dest>,
    msg: &Message,
    caller: &str,
    dialed: &str,
) -> Verdict {
    let number = match voice.normalize(Some(caller), dialed) {
        Ok(n) => n.number,
        Err(e) => return Verdict::reply(404, e.to_string()),
    };
    if let Some(user) = voice.user_by_number(&number) {
        return Verdict::ToUser(user.to_owned());
    }
    if let Some(v) = to_announcement(voice, announcement, domain, &number) {
        return v;
    }
    let trunks = match voice.route(caller, &number) {
        Ok(t) => t,
        Err(refusal) => {
            let reason = refusal.to_string();
            debug!(%caller, %number, %reason, "call to the PSTN refused");
            return Verdict::reply(403, reason);
        }
    };
    // Caller ID: the caller's line URI (route() refuses callers without one).
    let line = voice
        .user(caller)
        .and_then(|u| u.line_uri.clone())
        .unwrap_or_default();
    let rewritten = Rewriter::new(msg)
        .remove(HeaderName::PAssertedIdentity)
        .append(
            "P-Asserted-Identity",
            format!("<sip:{line}@{domain};user=phone>"),
        )
        .build();
    if let Some(med) = mediation {
        debug!(%caller, %number, %med, "call to the PSTN through the Mediation server");
        let dest = Dest {
            transport: Transport::Udp,
            addr: med,
            conn: None,
        };
        return Verdict::Forward(Forward {
            rewritten: Some(rewritten),
            targets: vec![(format!("sip:{number}@{med};user=phone"), dest)],
            record_route: true,
            serial: false,
        });
    }
    let targets: Vec<(String, Dest)> = trunks
        .iter()
        .map(|t| {
            let transport = match t.transport {
                confab_voice::TrunkTransport::Udp => Transport::Udp,
                confab_voice::TrunkTransport::Tcp => Transport::Tcp,
                confab_voice::TrunkTransport::Tls => Transport::Tls,
            };
            let param = match transport {
                Transport::Udp => String::new(),
                other => format!(";transport={}", other.uri_param()),
            };
            let host = match t.gateway {
                SocketAddr::V4(a) => a.to_string(),
                SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            };
            let ruri = format!("sip:{}@{host};user=phone{param}", t.number);
            let dest = Dest {
                transport,
                addr: t.gateway,
                conn: None,
            };
            (ruri, dest)
        })
        .collect();
    debug!(%caller, %number, trunks = targets.len(), "call to the PSTN");
    Verdict::Forward(Forward {
        rewritten: Some(rewritten),
        targets,
        record_route: true,
        serial: true,
    })
}
