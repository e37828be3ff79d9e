//! Lync-protocol (MS-SIPAE) sign-in: connectionless NTLMv2 over TCP/TLS and message
//! signing.
//!
//! # Which REGISTERs get NTLM
//!
//! A REGISTER is handled here (NTLM, never digest) when it arrives over TCP or TLS
//! **and** the client announces the Lync protocol by at least one of:
//! an `Authorization: NTLM ...` header, `Supported: msrtc-event-categories`, or an
//! `ms-keep-alive` header (pidgin-sipe and Lync/Skype for Business clients send all
//! three). Everyone else keeps digest authentication, and only Lync clients get the
//! Lync-specific REGISTER 200 headers (GRUU, `Allow-Events`, separate `Supported`
//! lines, `ms-keep-alive`).
//!
//! # Flow (MS-SIPAE §3.2/3.3, connectionless NTLM)
//!
//! 1. REGISTER without NTLM credentials → `401` offering
//!    `WWW-Authenticate: NTLM realm="SIP Communications Service", targetname="<fqdn>", version=4`.
//! 2. REGISTER with `gssapi-data=""` → `401` with a CHALLENGE_MESSAGE and an `opaque`
//!    naming the pending handshake.
//! 3. REGISTER with the AUTHENTICATE_MESSAGE → NTLMv2 checked against the user's NT
//!    hash, session keys derived, the REGISTER's own `response` signature checked;
//!    a security association (SA) is bound to the connection. Wrong credentials →
//!    `403`.
//! 4. From then on every message the server sends on that connection is signed
//!    (`Authentication-Info: NTLM ... rspauth=...`, done at the `Core::send` choke
//!    point) and every request received on it must carry a valid signature with an
//!    increasing `cnum`; otherwise the message is dropped and the connection closed.
//! 5. After the SA lifetime, the next REGISTER is answered `401` (full re-authentication,
//!    as SIPE and Lync clients expect); other requests stay accepted for a grace
//!    period, after which the connection is closed.

pub(crate) mod contacts;
pub(crate) mod im;
pub(crate) mod presence;
pub(crate) mod soap;

pub use contacts::StoreRequest;
pub(crate) use presence::{lync_subscription_kind, provisioning_document, resource_aor};

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use confab_auth::ntlm::{self, SessionKeys, SignatureFields, TargetInfo};
use confab_sip::transaction::ServerKey;
use confab_sip::{HeaderName, Limits, Message, Method};
use rand::Rng;
use rustc_hash::FxHashMap;
use tracing::{debug, warn};

use crate::core::Core;
use crate::metrics::Metrics;
use crate::types::{ConnId, Dest, Output, Transport};

/// The realm every Lync server uses.
pub(crate) const REALM: &str = "SIP Communications Service";
/// How long an NTLM security association lasts (SIPE re-authenticates 5 min before 8 h).
const SA_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// After expiry, non-REGISTER requests are still accepted this long.
const SA_GRACE: Duration = Duration::from_secs(15 * 60);
/// How long a CHALLENGE stays answerable.
const PENDING_LIFETIME: Duration = Duration::from_secs(60);
/// Bound on outstanding challenges (oldest dropped first).
const MAX_PENDING: usize = 10_000;

/// `Allow-Events` of the Lync REGISTER 200 (split on `,` without trimming by SIPE).
const ALLOW_EVENTS: &str = "vnd-microsoft-provisioning,vnd-microsoft-roaming-contacts,vnd-microsoft-roaming-ACL,presence,presence.wpending,vnd-microsoft-roaming-self,vnd-microsoft-provisioning-v2";

struct Pending {
    server_challenge: [u8; 8],
    challenge: Vec<u8>,
    created: Instant,
}

struct Sa {
    keys: SessionKeys,
    opaque: String,
    user: String,
    last_cnum: u64,
    snum: u64,
    established: Instant,
}

/// Security associations (by connection) and outstanding challenges (by opaque).
#[derive(Default)]
pub(crate) struct LyncState {
    sas: FxHashMap<ConnId, Sa>,
    pending: FxHashMap<String, Pending>,
    /// Contact lists by owner (see `contacts`).
    pub(crate) contacts: FxHashMap<String, crate::contacts::ContactList>,
    pub(crate) saves: FxHashMap<u64, contacts::PendingSave>,
    pub(crate) store_requests: Vec<StoreRequest>,
    pub(crate) next_op: u64,
    /// Published categories by user (see `presence`).
    pub(crate) presence: FxHashMap<String, presence::UserCategories>,
    /// IM gateway sessions (see `im`).
    pub(crate) im: im::Gateway,
}

impl LyncState {
    /// The connection closed: its SA ends.
    pub(crate) fn connection_closed(&mut self, conn: ConnId) {
        self.sas.remove(&conn);
    }

    /// Whether a connection has an established SA (its traffic is signed).
    pub(crate) fn is_signed(&self, conn: ConnId) -> bool {
        self.sas.contains_key(&conn)
    }
}

/// Whether `msg` is a REGISTER from a client speaking the Lync protocol (see the
/// module documentation for the rule).
pub(crate) fn is_lync_register(msg: &Message, src: &Dest) -> bool {
    if !matches!(src.transport, Transport::Tcp | Transport::Tls) {
        return false;
    }
    if msg.method() != Some(&Method::Register) {
        return false;
    }
    ntlm_authorization(msg).is_some()
        || msg.has_option(HeaderName::Supported, "msrtc-event-categories")
        || msg.header_str("ms-keep-alive").is_some()
}

/// The first `Authorization: NTLM ...` value.
fn ntlm_authorization(msg: &Message) -> Option<&str> {
    msg.headers_named(HeaderName::Authorization).find(|v| {
        v.trim_start()
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("ntlm "))
    })
}

fn param(params: &confab_auth::params::AuthHeader<'_>, name: &str) -> String {
    params.get(name).unwrap_or("").to_owned()
}

/// The MS-SIPAE signature string of `msg` with the given auth parameters.
fn sign_string(msg: &Message, rand: &str, num: &str, realm: &str, target: &str) -> String {
    let cseq_number = msg.cseq().0.to_string();
    let method = match msg.method() {
        Some(m) => m.as_str().to_owned(),
        None => msg.cseq().1.as_str().to_owned(),
    };
    let from = msg.header(HeaderName::From).unwrap_or("");
    let to = msg.header(HeaderName::To).unwrap_or("");
    let pai: Vec<&str> = msg
        .headers()
        .filter(|(_, name, _)| name.eq_ignore_ascii_case("P-Asserted-Identity"))
        .map(|(_, _, v)| v)
        .collect();
    let (pai_sip_uri, pai_tel_uri) = ntlm::pai_uris(pai);
    let fields = SignatureFields {
        protocol: "NTLM",
        rand,
        num,
        realm,
        target_name: target,
        call_id: msg.call_id(),
        cseq_number: &cseq_number,
        method: &method,
        from_uri: ntlm::uri_of(from),
        from_tag: ntlm::tag_of(from),
        to_uri: ntlm::uri_of(to),
        to_tag: ntlm::tag_of(to),
        pai_sip_uri,
        pai_tel_uri,
        expires: msg.header(HeaderName::Expires).unwrap_or(""),
        response_code: msg.status(),
    };
    ntlm::sipae_sign_string(&fields)
}

/// Removes auth-signature headers a relayed message may carry (another client's
/// signature, an upstream `Authentication-Info`), before this server signs it.
fn strip_signature_headers(head: &str) -> String {
    let mut out = String::with_capacity(head.len() + 200);
    for line in head.split("\r\n") {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let name = name.trim();
        let value = value.trim_start();
        let scheme_ntlm = ["NTLM", "Kerberos", "TLS-DSK"].iter().any(|s| {
            value
                .get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        });
        let drop = name.eq_ignore_ascii_case("Authentication-Info")
            || name.eq_ignore_ascii_case("Proxy-Authentication-Info")
            || ((name.eq_ignore_ascii_case("Authorization")
                || name.eq_ignore_ascii_case("Proxy-Authorization"))
                && scheme_ntlm);
        if !drop {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

impl Core {
    /// The server FQDN announced as NTLM `targetname`.
    fn lync_target(&self) -> String {
        self.cfg
            .ntlm_target
            .clone()
            .unwrap_or_else(|| self.cfg.advertise.host.clone())
    }

    fn lync_offer_header(&self) -> String {
        format!(
            "NTLM realm=\"{REALM}\", targetname=\"{}\", version=4",
            self.lync_target()
        )
    }

    /// Hook at the start of `on_message`: checks the signature of a request received
    /// on a connection with an SA. Returns `false` when the message must be dropped
    /// (the connection is then closed).
    pub(crate) fn lync_check_incoming(&mut self, msg: &Message, src: &Dest) -> bool {
        let Some(conn) = src.conn else {
            return true;
        };
        if !msg.is_request() {
            return true;
        }
        let Some(sa) = self.lync.sas.get(&conn) else {
            return true;
        };
        let auth = ntlm_authorization(msg).map(str::to_owned);
        let verdict = match auth.as_deref().map(confab_auth::params::parse) {
            None => Err("missing signature"),
            Some(Err(_)) => Err("malformed Authorization"),
            Some(Ok(p)) => {
                if msg.method() == Some(&Method::Register) && p.get("gssapi-data").is_some() {
                    // A new handshake on this connection: the old SA ends.
                    Ok(None)
                } else {
                    let crand = param(&p, "crand");
                    let cnum = param(&p, "cnum");
                    let realm = param(&p, "realm");
                    let target = param(&p, "targetname");
                    let response = param(&p, "response");
                    let opaque = param(&p, "opaque");
                    let n = cnum.parse::<u64>().ok();
                    if !opaque.eq_ignore_ascii_case(&sa.opaque) {
                        Err("wrong opaque")
                    } else if n.is_none_or(|n| n <= sa.last_cnum) {
                        Err("cnum not increasing")
                    } else {
                        let text = sign_string(msg, &crand, &cnum, &realm, &target);
                        if sa
                            .keys
                            .verify_client_hex(ntlm::SIPAE_SEQ, text.as_bytes(), &response)
                        {
                            Ok(n)
                        } else {
                            Err("bad signature")
                        }
                    }
                }
            }
        };
        match verdict {
            Ok(Some(n)) => {
                if let Some(sa) = self.lync.sas.get_mut(&conn) {
                    sa.last_cnum = n;
                }
                true
            }
            Ok(None) => {
                self.lync.sas.remove(&conn);
                true
            }
            Err(reason) => {
                Metrics::inc(&self.metrics.auth_failures_total);
                warn!(peer = %src.addr, %reason, "MS-SIPAE signature check failed: closing connection");
                self.lync.sas.remove(&conn);
                self.out.push(Output::Close { conn });
                false
            }
        }
    }

    /// Hook in `authenticate`: `None` when this request is not for MS-SIPAE (digest
    /// applies), `Some(None)` after answering, `Some(Some(aor))` when authenticated.
    pub(crate) fn lync_authenticate(
        &mut self,
        key: &ServerKey,
        msg: &Message,
        src: Dest,
    ) -> Option<Option<String>> {
        if let Some(conn) = src.conn
            && let Some(sa) = self.lync.sas.get(&conn)
        {
            // The signature was checked on arrival.
            let age = self.now.saturating_duration_since(sa.established);
            let user = sa.user.clone();
            if age < SA_LIFETIME {
                return Some(Some(user));
            }
            if msg.method() == Some(&Method::Register) {
                debug!(%user, "MS-SIPAE security association expired: re-authentication");
                self.lync.sas.remove(&conn);
                let offer = self.lync_offer_header();
                self.reply(key, msg, 401, |b| b.header("WWW-Authenticate", offer));
                return Some(None);
            }
            if age < SA_LIFETIME + SA_GRACE {
                return Some(Some(user));
            }
            self.lync.sas.remove(&conn);
            self.out.push(Output::Close { conn });
            return Some(None);
        }
        if !is_lync_register(msg, &src) {
            return None;
        }
        let ip = src.addr.ip();
        if let Some(retry) = self.fail_src.is_blocked(&ip, self.now) {
            self.lync_refuse_rate_limited(key, msg, retry);
            return Some(None);
        }
        let creds = ntlm_authorization(msg).map(str::to_owned);
        let parsed = creds
            .as_deref()
            .and_then(|c| confab_auth::params::parse(c).ok());
        let gssapi = parsed
            .as_ref()
            .and_then(|p| p.get("gssapi-data").map(str::to_owned));
        let Some(gssapi) = gssapi else {
            Metrics::inc(&self.metrics.auth_challenges_total);
            let offer = self.lync_offer_header();
            self.reply(key, msg, 401, |b| b.header("WWW-Authenticate", offer));
            return Some(None);
        };
        if gssapi.is_empty() {
            self.lync_challenge(key, msg);
            return Some(None);
        }
        let p = parsed?;
        let opaque = param(&p, "opaque");
        let crand = param(&p, "crand");
        let cnum = param(&p, "cnum");
        let response = param(&p, "response");
        let realm = param(&p, "realm");
        let target = param(&p, "targetname");
        drop(p);
        let Some(pending) = self.lync.pending.remove(&opaque) else {
            // Unknown or expired handshake: start over.
            self.lync_challenge(key, msg);
            return Some(None);
        };
        let result = self.lync_verify(&gssapi, &pending);
        if let Ok((user, _)) | Err((Some(user), _)) = &result
            && let Some(retry) = self.fail_user.is_blocked(&(user.clone(), ip), self.now)
        {
            self.lync_refuse_rate_limited(key, msg, retry);
            return Some(None);
        }
        let (user, keys) = match result {
            Ok(v) => v,
            Err((user, reason)) => {
                Metrics::inc(&self.metrics.auth_failures_total);
                self.fail_src.record_failure(ip, self.now);
                if let Some(u) = user {
                    self.fail_user.record_failure((u, ip), self.now);
                }
                warn!(peer = %src.addr, %reason, "NTLM authentication failed");
                self.reply(key, msg, 403, |b| {
                    b.reason("Forbidden")
                        .header("Warning", "399 confab \"Authentication failed\"")
                });
                return Some(None);
            }
        };
        if !response.is_empty() {
            let text = sign_string(msg, &crand, &cnum, &realm, &target);
            if !keys.verify_client_hex(ntlm::SIPAE_SEQ, text.as_bytes(), &response) {
                Metrics::inc(&self.metrics.auth_failures_total);
                warn!(peer = %src.addr, %user, "NTLM REGISTER signature invalid");
                self.reply(key, msg, 403, |b| b.reason("Invalid signature"));
                return Some(None);
            }
        }
        let Some(conn) = src.conn else {
            self.reply(key, msg, 403, |b| b.reason("NTLM needs a connection"));
            return Some(None);
        };
        self.fail_src.record_success(&ip);
        self.fail_user.record_success(&(user.clone(), ip));
        debug!(%user, ?conn, "MS-SIPAE security association established");
        self.lync.sas.insert(
            conn,
            Sa {
                keys,
                opaque,
                user: user.clone(),
                last_cnum: cnum.parse().unwrap_or(0),
                snum: 0,
                established: self.now,
            },
        );
        Some(Some(user))
    }

    fn lync_refuse_rate_limited(&mut self, key: &ServerKey, msg: &Message, retry: Duration) {
        Metrics::inc(&self.metrics.auth_rate_limited_total);
        let secs = retry.as_secs().max(1);
        self.reply(key, msg, 403, |b| {
            b.reason("Too many failed authentication attempts")
                .header("Retry-After", secs.to_string())
        });
    }

    fn lync_challenge(&mut self, key: &ServerKey, msg: &Message) {
        Metrics::inc(&self.metrics.auth_challenges_total);
        let now = self.now;
        self.lync
            .pending
            .retain(|_, p| now.saturating_duration_since(p.created) < PENDING_LIFETIME);
        if self.lync.pending.len() >= MAX_PENDING {
            let oldest = self
                .lync
                .pending
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.lync.pending.remove(&k);
            }
        }
        let mut server_challenge = [0u8; 8];
        self.rng.fill_bytes(&mut server_challenge);
        let opaque = self.random_hex(4).to_uppercase();
        let host = self.lync_target();
        let first_label = |s: &str| s.split('.').next().unwrap_or("").to_uppercase();
        let target = TargetInfo {
            nb_domain: first_label(&self.cfg.domain),
            nb_computer: first_label(&host),
            dns_domain: self.cfg.domain.clone(),
            dns_computer: host.clone(),
        };
        let challenge = ntlm::build_challenge(
            server_challenge,
            &target,
            Some(ntlm::filetime_from_unix_ms(self.wall_ms)),
        );
        let value = format!(
            "NTLM opaque=\"{opaque}\", gssapi-data=\"{}\", targetname=\"{host}\", realm=\"{REALM}\", version=4",
            ntlm::encode_gssapi_data(&challenge)
        );
        self.lync.pending.insert(
            opaque,
            Pending {
                server_challenge,
                challenge,
                created: now,
            },
        );
        self.reply(key, msg, 401, |b| b.header("WWW-Authenticate", value));
    }

    /// Verifies an AUTHENTICATE_MESSAGE: returns the user's address and the keys, or
    /// the address (when known) and the reason.
    fn lync_verify(
        &self,
        gssapi: &str,
        pending: &Pending,
    ) -> Result<(String, SessionKeys), (Option<String>, String)> {
        let bytes = ntlm::decode_gssapi_data(gssapi).map_err(|e| (None, e.to_string()))?;
        let auth = ntlm::parse_authenticate(&bytes).map_err(|e| (None, e.to_string()))?;
        let address = self
            .lync_address(&auth.user, &auth.domain)
            .ok_or_else(|| (None, format!("unknown domain {:?}", auth.domain)))?;
        self.lync_verify_user(&auth, &address, pending)
            .map(|keys| (address.clone(), keys))
            .map_err(|reason| (Some(address), reason))
    }

    fn lync_verify_user(
        &self,
        auth: &ntlm::AuthenticateMessage,
        address: &str,
        pending: &Pending,
    ) -> Result<SessionKeys, String> {
        let entry = self
            .directory
            .get(address)
            .filter(|e| e.enabled)
            .ok_or_else(|| format!("unknown user {address}"))?;
        let mut nt_hash = [0u8; 16];
        hex::decode_to_slice(&entry.credentials.nt_hash, &mut nt_hash)
            .map_err(|_| format!("no NT hash stored for {address}"))?;
        let keys = ntlm::verify_ntlmv2(auth, pending.server_challenge, nt_hash)
            .map_err(|e| format!("{address}: {e}"))?;
        ntlm::verify_mic(auth, &pending.challenge, &keys).map_err(|e| format!("{address}: {e}"))?;
        Ok(keys)
    }

    /// The directory address for an NTLM user/domain: `user@domain` (domain empty), or
    /// `DOMAIN\user` where DOMAIN is our SIP domain or its first label.
    fn lync_address(&self, user: &str, domain: &str) -> Option<String> {
        if user.contains('@') && domain.is_empty() {
            return Some(user.to_lowercase());
        }
        let ours = &self.cfg.domain;
        let nb = ours.split('.').next().unwrap_or("");
        if domain.is_empty() || domain.eq_ignore_ascii_case(ours) || domain.eq_ignore_ascii_case(nb)
        {
            return Some(format!("{}@{}", user.to_lowercase(), ours));
        }
        None
    }

    /// Hook in `Core::send`: signs every message sent on a connection with an SA.
    pub(crate) fn lync_sign(&mut self, dest: &Dest, data: Bytes) -> Bytes {
        let Some(conn) = dest.conn else {
            return data;
        };
        if !self.lync.is_signed(conn) {
            return data;
        }
        let limits = Limits {
            max_message_bytes: usize::MAX,
            max_headers: usize::MAX,
        };
        let Ok(msg) = Message::parse(data.clone(), &limits) else {
            return data;
        };
        let mut rand_bytes = [0u8; 4];
        self.rng.fill_bytes(&mut rand_bytes);
        let srand = hex::encode_upper(rand_bytes);
        let target = self.lync_target();
        let Some(sa) = self.lync.sas.get_mut(&conn) else {
            return data;
        };
        sa.snum += 1;
        let snum = sa.snum.to_string();
        let text = sign_string(&msg, &srand, &snum, REALM, &target);
        let sig = ntlm::to_hex_upper(&sa.keys.sign_server(ntlm::SIPAE_SEQ, text.as_bytes()));
        let header = format!(
            "Authentication-Info: NTLM qop=\"auth\", opaque=\"{}\", srand=\"{srand}\", snum=\"{snum}\", rspauth=\"{sig}\", targetname=\"{target}\", realm=\"{REALM}\", version=4\r\n",
            sa.opaque
        );
        // Head = start line + headers (without the blank line); body untouched.
        let Some(head_end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            return data;
        };
        let Ok(head) = std::str::from_utf8(&data[..head_end]) else {
            return data;
        };
        let (start, rest) = head.split_once("\r\n").unwrap_or((head, ""));
        let mut out = BytesMut::with_capacity(data.len() + header.len());
        out.extend_from_slice(start.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(header.as_bytes());
        if !rest.is_empty() {
            let kept = strip_signature_headers(rest);
            out.extend_from_slice(kept.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&data[head_end + 4..]);
        out.freeze()
    }

    /// Server-initiated sign-out (MS-SIPREGE `registration-notify`): every Lync
    /// endpoint of `aor` gets a NOTIFY saying its registration was rejected, which
    /// the client shows and acts on (it stops re-registering).
    pub(crate) fn lync_sign_out(&mut self, aor: &str) {
        let targets: Vec<(String, Dest)> = self
            .registrar
            .lookup(aor, self.now)
            .into_iter()
            .filter(|b| b.flow.conn.is_some_and(|c| self.lync.is_signed(c)))
            .map(|b| (b.uri.clone(), b.flow))
            .collect();
        for (uri, flow) in targets {
            let branch = self.new_branch();
            let tag = self.new_tag();
            let call_id = self.random_hex(12);
            let bytes = confab_sip::RequestBuilder::new(Method::Notify, uri)
                .header("Via", self.our_via(flow.transport, &branch))
                .header("Max-Forwards", "70")
                .header("From", format!("<sip:{aor}>;tag={tag}"))
                .header("To", format!("<sip:{aor}>"))
                .header("Call-ID", call_id)
                .header("CSeq", "1 NOTIFY")
                .header("Event", "registration-notify")
                .header("Subscription-State", "terminated;reason=rejected")
                .body("text/registration-event", "deregistered;event=rejected")
                .build();
            // Fire and forget: the registration is removed right after.
            self.send(flow, bytes);
            debug!(user = %aor, "sent registration-notify (signed out)");
        }
    }

    /// Extra headers of the REGISTER 200 for a Lync client (MS-SIPAE/MS-SIPRE and
    /// what SIPE requires): call only when [`is_lync_register`] holds.
    pub(crate) fn lync_register_headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Allow-Events", ALLOW_EVENTS.to_owned()),
            ("Supported", "adhoclist".to_owned()),
            ("Supported", "msrtc-event-categories".to_owned()),
            (
                "ms-keep-alive",
                "UAS; tcp=no; hop-hop=yes; end-end=no; timeout=300".to_owned(),
            ),
        ]
    }
}

/// Adds the GRUU (`gruu="sip:aor;opaque=user:epid:...;gruu"`) to a Contact of a
/// Lync REGISTER 200 that carries a `+sip.instance`.
pub(crate) fn with_gruu(contact: String, aor: &str) -> String {
    let Some(i) = contact.find("+sip.instance=\"") else {
        return contact;
    };
    let rest = &contact[i + "+sip.instance=\"".len()..];
    let instance = rest.split('"').next().unwrap_or("");
    let epid: String = instance
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_start_matches("urn:uuid:")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if epid.is_empty() {
        return contact;
    }
    format!("{contact};gruu=\"sip:{aor};opaque=user:epid:{epid};gruu\"")
}
