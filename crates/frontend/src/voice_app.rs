//! Enterprise Voice routing: the application behind the front end that owns calls
//! to phone numbers and calls from PSTN gateways. Called from one place in the
//! dispatcher ([`route`]); the decisions are `confab_voice`'s (sans-IO, tested
//! there), this module only applies them to SIP:
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
//! Signalling is proxied (media flows between client and gateway, Lync's media
//! bypass); the Mediation Server's B2BUA is not built yet.

use confab_sip::transaction::ServerKey;
use confab_sip::uri::Scheme;
use confab_sip::{HeaderName, Message, Method, Rewriter, Uri};
use confab_voice::is_dial_string;
use tracing::debug;

use crate::core::Core;
use crate::metrics::Metrics;
use crate::types::{Dest, Transport};

/// The number a Request-URI dials, if it dials one: a `tel:` URI, a `sip:` URI
/// with `user=phone`, or a dial string at our domain that is no user's name.
fn dialed_number(core: &Core, ruri: &Uri<'_>) -> Option<String> {
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
    if core.is_our_host(ruri.host) && is_dial_string(&number) {
        let aor = format!("{}@{}", user.to_lowercase(), core.cfg.domain);
        if core.directory.get(&aor).is_none() {
            return Some(number);
        }
    }
    None
}

/// Handles an out-of-dialog request that is Enterprise Voice's (see the module
/// documentation). Returns `false`, having done nothing, for any other request.
pub(crate) fn route(
    core: &mut Core,
    key: &ServerKey,
    msg: &Message,
    src: Dest,
    ruri: &Uri<'_>,
    pop_routes: usize,
) -> bool {
    if msg.method() != Some(&Method::Invite) || core.voice.is_empty() {
        return false;
    }
    let Some(dialed) = dialed_number(core, ruri) else {
        return false;
    };
    if let Some(trunk) = core.voice.trunk_at(src.addr).map(str::to_owned) {
        inbound(core, key, msg, src, &trunk, &dialed, pop_routes);
        return true;
    }
    let from = msg.from().parsed_uri().ok();
    let from_local = from.as_ref().is_some_and(|u| core.is_our_host(u.host));
    if !from_local {
        // Not from a trunk, not from a local user: refused by the dispatcher like
        // any request from another domain.
        return false;
    }
    let from_aor = from.map(|u| u.aor());
    let identity = if core.guard.is_trusted(src.addr) || core.cfg.allow_unauthenticated {
        from_aor.clone()
    } else {
        core.authenticate(key, msg, src, true)
    };
    let Some(caller) = identity else {
        return true; // challenged or refused
    };
    if from_aor.as_deref() != Some(caller.as_str()) {
        core.reply(key, msg, 403, |b| {
            b.reason("From does not match the authenticated user")
        });
        return true;
    }
    core.tx.mark_verified(key);
    outbound(core, key, msg, src, &caller, &dialed, pop_routes);
    true
}

/// A call from a gateway to `dialed`.
fn inbound(
    core: &mut Core,
    key: &ServerKey,
    msg: &Message,
    src: Dest,
    trunk: &str,
    dialed: &str,
    pop_routes: usize,
) {
    core.tx.mark_verified(key);
    let number = match core.voice.normalize(None, dialed) {
        Ok(n) => n.number,
        Err(e) => {
            debug!(%trunk, %dialed, reason = %e, "inbound call: number not normalized");
            core.reply(key, msg, 404, |b| b.reason("No user has this number"));
            return;
        }
    };
    let Some(user) = core.voice.user_by_number(&number).map(str::to_owned) else {
        debug!(%trunk, %number, "inbound call: no user has this number");
        core.reply(key, msg, 404, |b| b.reason("No user has this number"));
        return;
    };
    debug!(%trunk, %number, %user, "inbound call from a gateway");
    to_user(core, key, msg, src, &user, pop_routes);
}

/// A call to the user owning a number.
fn to_user(
    core: &mut Core,
    key: &ServerKey,
    msg: &Message,
    src: Dest,
    user: &str,
    pop_routes: usize,
) {
    if !core.directory.get(user).is_some_and(|u| u.enabled) {
        core.reply(key, msg, 404, |b| b.reason("User not found"));
        return;
    }
    let bindings: Vec<(String, Dest)> = core
        .registrar
        .lookup(user, core.now)
        .into_iter()
        .map(|b| (b.uri.clone(), b.flow))
        .collect();
    if bindings.is_empty() {
        core.reply(key, msg, 480, |b| b.reason("User is offline"));
        return;
    }
    Metrics::inc(&core.metrics.calls_forwarded_total);
    core.forward(key.clone(), msg, src, bindings, true, pop_routes);
}

/// A local user's call to `dialed`.
fn outbound(
    core: &mut Core,
    key: &ServerKey,
    msg: &Message,
    src: Dest,
    caller: &str,
    dialed: &str,
    pop_routes: usize,
) {
    let number = match core.voice.normalize(Some(caller), dialed) {
        Ok(n) => n.number,
        Err(e) => {
            let reason = e.to_string();
            core.reply(key, msg, 404, |b| b.reason(reason));
            return;
        }
    };
    if let Some(user) = core.voice.user_by_number(&number).map(str::to_owned) {
        to_user(core, key, msg, src, &user, pop_routes);
        return;
    }
    let trunks = match core.voice.route(caller, &number) {
        Ok(t) => t,
        Err(refusal) => {
            let reason = refusal.to_string();
            debug!(%caller, %number, %reason, "call to the PSTN refused");
            core.reply(key, msg, 403, |b| b.reason(reason));
            return;
        }
    };
    // Caller ID: the caller's line URI (route() refuses callers without one).
    let line = core
        .voice
        .user(caller)
        .and_then(|u| u.line_uri.clone())
        .unwrap_or_default();
    let bytes = Rewriter::new(msg)
        .remove(HeaderName::PAssertedIdentity)
        .append(
            "P-Asserted-Identity",
            format!("<sip:{line}@{};user=phone>", core.cfg.domain),
        )
        .build();
    let Ok(rewritten) = Message::parse(bytes, &confab_sip::Limits::default()) else {
        core.reply(key, msg, 400, |b| {
            b.reason("Request could not be forwarded")
        });
        return;
    };
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
                std::net::SocketAddr::V4(a) => a.to_string(),
                std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
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
    Metrics::inc(&core.metrics.calls_forwarded_total);
    core.forward_serial(key.clone(), &rewritten, src, targets, true, pop_routes);
}
