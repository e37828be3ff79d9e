//! Server side of HTTP Digest authentication (RFC 7616, RFC 2617, RFC 2069) as used by
//! SIP (RFC 3261 §22).
//!
//! * Nonces are stateless: `base64url(ts ‖ random ‖ realm-tag ‖ HMAC-SHA256(secret,
//!   label ‖ ts ‖ random ‖ realm))` where `ts` is milliseconds since the UNIX epoch. Any
//!   server holding the same secret (including this one after a restart) validates them;
//!   forged or altered nonces fail the MAC. The 4-byte realm tag (an unkeyed hash of the
//!   realm the nonce was issued for) only lets us tell "nonce for another realm"
//!   ([`DigestError::RealmMismatch`]) from "forged" ([`DigestError::InvalidNonce`]).
//! * Replay protection for `qop=auth`: the highest nonce-count accepted per nonce is kept
//!   in a bounded table (see [`DigestServer::with_replay_capacity`]); a request whose
//!   `nc` is not above it is a [`DigestError::Replay`]. Entries expire with the nonce.
//!   When the table is full the oldest entry is dropped and every nonce issued at or
//!   before that one is treated as stale from then on, so eviction can never re-open a
//!   replay window. An entry costs about 32 bytes. Entries are created only after a correct response,
//!   so filling the table needs valid credentials. The table is in memory: a restart
//!   forgets it (nonces then stay usable, replayable at most once per lost entry, until
//!   they expire — keep lifetimes short).
//! * Requests without `qop` (RFC 2069 clients) carry no nonce-count; they can be turned
//!   off with [`DigestServer::set_allow_no_qop`]. Nothing protects them from replay
//!   within the nonce lifetime except the transport (TLS).
//! * A stale nonce is reported only when the response is otherwise correct, as RFC 7616
//!   §3.3 asks, so `stale=true` never tells a guesser anything.
//!
//! Everything is sans-IO: the caller passes the time as `now_ms` (milliseconds since the
//! UNIX epoch) and randomness as an RNG.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::credentials::StoredCredentials;
use crate::crypto;
use crate::params;

/// Default capacity of the nonce-count table.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

const NONCE_LABEL: &[u8] = b"confab-digest-nonce\0";
const OPAQUE_LABEL: &[u8] = b"confab-digest-opaque\0";
const REALM_TAG_LABEL: &[u8] = b"confab-digest-realm\0";
const TS_LEN: usize = 8;
const RAND_LEN: usize = 16;
const TAG_LEN: usize = 4;
const MAC_LEN: usize = 32;
const NONCE_RAW_LEN: usize = TS_LEN + RAND_LEN + TAG_LEN + MAC_LEN;
/// Longest base64url text of a nonce we issue (used to reject oversized input early).
const NONCE_B64_LEN: usize = (NONCE_RAW_LEN * 4).div_ceil(3);

/// Digest algorithm (RFC 7616 §3.3, RFC 2617 §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (the default when a client sends no `algorithm`).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    /// Parses an `algorithm` value, ignoring ASCII case.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Md5, Self::Md5Sess, Self::Sha256, Self::Sha256Sess]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// The token as written in headers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    fn is_sha256(self) -> bool {
        matches!(self, Self::Sha256 | Self::Sha256Sess)
    }

    /// Lower-case hex of the algorithm's hash over `parts` joined by `:`.
    fn h(self, parts: &[&str]) -> String {
        let mut joined: Vec<&[u8]> = Vec::with_capacity(parts.len() * 2);
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                joined.push(b":");
            }
            joined.push(p.as_bytes());
        }
        if self.is_sha256() {
            lower_hex(&crypto::sha256(&joined))
        } else {
            lower_hex(&crypto::md5(&joined))
        }
    }
}

/// Lower-case hex of a digest (at most 32 bytes), in one allocation: `hex::encode`
/// collects character by character, three times per verified request.
fn lower_hex(digest: &[u8]) -> String {
    let mut buf = [0u8; 64];
    let Some(out) = buf.get_mut(..digest.len() * 2) else {
        return String::new();
    };
    if hex::encode_to_slice(digest, out).is_err() {
        return String::new();
    }
    std::str::from_utf8(out)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The stored HA1 values of one user (lower-case hex), as kept by
/// [`crate::credentials`]. Either may be missing (e.g. an account migrated from a system
/// that only had MD5). Zeroized on drop; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1s {
    md5: Option<String>,
    sha256: Option<String>,
}

impl Ha1s {
    /// HA1 values as lower- or upper-case hex.
    pub fn new(md5: Option<String>, sha256: Option<String>) -> Self {
        Self {
            md5: md5.map(|s| s.to_ascii_lowercase()),
            sha256: sha256.map(|s| s.to_ascii_lowercase()),
        }
    }

    /// Takes the HA1 values from the stored credentials.
    pub fn from_stored(c: &StoredCredentials) -> Self {
        Self::new(Some(c.ha1_md5.clone()), Some(c.ha1_sha256.clone()))
    }

    /// Computes both HA1 values from a password (tests, dev mode).
    pub fn from_password(username: &str, realm: &str, password: &str) -> Self {
        Self::new(
            Some(crate::credentials::ha1_md5(username, realm, password)),
            Some(crate::credentials::ha1_sha256(username, realm, password)),
        )
    }

    fn for_algorithm(&self, alg: Algorithm) -> Option<&str> {
        if alg.is_sha256() {
            self.sha256.as_deref()
        } else {
            self.md5.as_deref()
        }
    }
}

impl From<&StoredCredentials> for Ha1s {
    fn from(c: &StoredCredentials) -> Self {
        Self::from_stored(c)
    }
}

impl std::fmt::Debug for Ha1s {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ha1s { .. }")
    }
}

impl Drop for Ha1s {
    fn drop(&mut self) {
        if let Some(s) = self.md5.as_mut() {
            s.zeroize();
        }
        if let Some(s) = self.sha256.as_mut() {
            s.zeroize();
        }
    }
}

/// A successfully authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// `username` as sent by the client.
    pub username: String,
    /// `realm` as sent by the client (always the realm the nonce was issued for).
    pub realm: String,
    /// The algorithm the client used.
    pub algorithm: Algorithm,
}

/// Why a digest `Authorization` was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not a well-formed Digest credentials header.
    #[error("malformed digest credentials: {0}")]
    Malformed(String),
    /// The lookup found no such user (or no HA1 for the chosen algorithm family).
    #[error("unknown user")]
    UnknownUser,
    /// The nonce is ours and the response is correct, but the nonce has expired:
    /// challenge again with `stale=true`.
    #[error("stale nonce")]
    StaleNonce,
    /// The nonce was not issued with this server's secret (or was altered).
    #[error("invalid nonce")]
    InvalidNonce,
    /// The nonce-count was not above the highest already accepted for this nonce.
    #[error("replayed nonce-count")]
    Replay,
    /// The response does not match: wrong password (or wrong method/uri).
    #[error("wrong response")]
    WrongResponse,
    /// An algorithm this server does not implement, or for which no HA1 is stored.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The nonce was issued for another realm than the one in the credentials.
    #[error("realm mismatch")]
    RealmMismatch,
}

/// Parsed Digest credentials (`Authorization` / `Proxy-Authorization` value).
///
/// Splitting parse and verify lets a caller look up the user asynchronously between the
/// two ([`DigestResponse::username`], then [`DigestServer::verify_parsed`]).
#[derive(Clone)]
pub struct DigestResponse<'a> {
    username: Cow<'a, str>,
    realm: Cow<'a, str>,
    nonce: Cow<'a, str>,
    uri: Cow<'a, str>,
    response: Cow<'a, str>,
    algorithm: Algorithm,
    /// `Some` when `qop=auth`; then `cnonce` and `nc` are present.
    qop_auth: bool,
    cnonce: Option<Cow<'a, str>>,
    nc: Option<(Cow<'a, str>, u32)>,
    opaque: Option<Cow<'a, str>>,
}

impl std::fmt::Debug for DigestResponse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestResponse")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("uri", &self.uri)
            .field("algorithm", &self.algorithm)
            .field("qop_auth", &self.qop_auth)
            .finish_non_exhaustive()
    }
}

impl<'a> DigestResponse<'a> {
    /// Parses a Digest credentials header value.
    pub fn parse(header_value: &'a str) -> Result<Self, DigestError> {
        let h = params::parse(header_value).map_err(|e| DigestError::Malformed(e.to_string()))?;
        Self::from_header(&h)
    }

    /// The Digest credentials of an authentication header already parsed (a
    /// caller that reads other parameters too parses the value once).
    pub fn from_header(h: &params::AuthHeader<'a>) -> Result<Self, DigestError> {
        if !h.is_scheme("Digest") {
            return Err(DigestError::Malformed("scheme is not Digest".into()));
        }
        let mut username = None;
        let mut realm = None;
        let mut nonce = None;
        let mut uri = None;
        let mut response = None;
        let mut algorithm = None;
        let mut qop = None;
        let mut cnonce = None;
        let mut nc = None;
        let mut opaque = None;
        {
            // Names compared ignoring case, without lower-casing each into a String.
            let mut slots = [
                ("username", &mut username),
                ("realm", &mut realm),
                ("nonce", &mut nonce),
                ("uri", &mut uri),
                ("response", &mut response),
                ("algorithm", &mut algorithm),
                ("qop", &mut qop),
                ("cnonce", &mut cnonce),
                ("nc", &mut nc),
                ("opaque", &mut opaque),
            ];
            for (name, value) in h.params() {
                let is = |known: &str| name.eq_ignore_ascii_case(known);
                if let Some((_, slot)) = slots.iter_mut().find(|(known, _)| is(known)) {
                    **slot = Some(value.clone());
                } else if (is("userhash") && !value.eq_ignore_ascii_case("false"))
                    || is("username*")
                {
                    return Err(DigestError::Malformed(format!("{name} not supported")));
                }
                // unknown params (and userhash=false) are ignored (RFC 7616 §3.4)
            }
        }
        let need = |v: Option<Cow<'a, str>>, what: &str| {
            v.ok_or_else(|| DigestError::Malformed(format!("missing {what}")))
        };
        let username = need(username, "username")?;
        let realm = need(realm, "realm")?;
        let nonce = need(nonce, "nonce")?;
        let uri = need(uri, "uri")?;
        let response = need(response, "response")?;
        let algorithm = match algorithm {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(&a).ok_or(DigestError::UnsupportedAlgorithm)?,
        };
        let qop_auth = match qop.as_deref() {
            None => false,
            Some(q) if q.eq_ignore_ascii_case("auth") => true,
            Some(_) => return Err(DigestError::Malformed("unsupported qop".into())),
        };
        let nc = if qop_auth {
            let raw = need(nc, "nc")?;
            let valid =
                !raw.is_empty() && raw.len() <= 8 && raw.bytes().all(|b| b.is_ascii_hexdigit());
            let n = if valid {
                u32::from_str_radix(&raw, 16).ok()
            } else {
                None
            };
            let n = n.ok_or_else(|| DigestError::Malformed("bad nc".into()))?;
            if cnonce.is_none() {
                return Err(DigestError::Malformed("missing cnonce".into()));
            }
            Some((raw, n))
        } else {
            None
        };
        if !qop_auth {
            // RFC 2069 form: nc/cnonce are meaningless without qop.
            cnonce = if algorithm.is_sess() { cnonce } else { None };
        }
        if algorithm.is_sess() && cnonce.is_none() {
            return Err(DigestError::Malformed("missing cnonce".into()));
        }
        Ok(Self {
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            qop_auth,
            cnonce,
            nc,
            opaque,
        })
    }

    /// `username` as sent.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// `realm` as sent.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// `uri` as sent.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The algorithm (MD5 when the client sent none).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Computes the `response` value (lower-case hex) per RFC 7616 §3.4.1 / RFC 2617 §3.2.2
/// (`qop` = `Some("auth")`) or RFC 2069 (`qop` = `None`). `ha1` is the stored
/// `H(username:realm:password)` hex; for `-sess` algorithms it is turned into
/// `H(ha1:nonce:cnonce)` here. `nc` is the nonce-count exactly as sent.
#[allow(clippy::too_many_arguments)]
pub fn compute_response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: Option<&str>,
    cnonce: Option<&str>,
    qop: Option<&str>,
    method: &str,
    uri: &str,
) -> String {
    let ha1 = if algorithm.is_sess() {
        algorithm.h(&[ha1, nonce, cnonce.unwrap_or("")])
    } else {
        ha1.to_string()
    };
    let ha2 = algorithm.h(&[method, uri]);
    match qop {
        Some(q) => algorithm.h(&[&ha1, nonce, nc.unwrap_or(""), cnonce.unwrap_or(""), q, &ha2]),
        None => algorithm.h(&[&ha1, nonce, &ha2]),
    }
}

/// Bounded table of the highest nonce-count accepted per nonce.
///
/// Compact on purpose: with clients that take a fresh nonce for every request (SIPp,
/// many phones on each refresh), one entry exists per authenticated request of the
/// last nonce lifetime, so the table is a large part of a registrar's memory per
/// endpoint. A nonce is identified by the first 8 bytes of its MAC (already verified,
/// so only our own nonces get here; two of them colliding needs ~2^32 live nonces),
/// and expiry follows insertion order instead of a sorted tree: 16 bytes in a ring
/// plus 16 in a hash table per entry.
struct ReplayTable {
    cap: usize,
    /// Nonce id → highest nonce-count accepted.
    by_id: HashMap<u64, u32, BuildNoHash>,
    /// (nonce timestamp, nonce id) in the order entries were made. Timestamps are
    /// nearly ordered (a nonce is used soon after it is issued); an entry stuck behind
    /// a newer one only lives a little longer.
    by_age: VecDeque<(u64, u64)>,
    /// Nonces issued at or before this time whose entry was evicted: treat as stale.
    evicted_up_to: Option<u64>,
}

/// Nonce ids are HMAC output: already uniformly distributed, no hashing needed.
#[derive(Clone, Copy, Default)]
struct BuildNoHash;

impl std::hash::BuildHasher for BuildNoHash {
    type Hasher = NoHash;
    fn build_hasher(&self) -> NoHash {
        NoHash(0)
    }
}

struct NoHash(u64);

impl std::hash::Hasher for NoHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; fold anything else in for completeness.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn nonce_id(mac: &[u8; MAC_LEN]) -> u64 {
    let mut id = [0u8; 8];
    id.copy_from_slice(&mac[..8]);
    u64::from_le_bytes(id)
}

impl ReplayTable {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            by_id: HashMap::default(),
            by_age: VecDeque::new(),
            evicted_up_to: None,
        }
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn purge_expired(&mut self, now_ms: u64, lifetime_ms: u64) {
        while let Some(&(ts, id)) = self.by_age.front() {
            if ts.saturating_add(lifetime_ms) >= now_ms {
                break;
            }
            self.by_age.pop_front();
            self.by_id.remove(&id);
        }
        // Give memory back after a burst.
        if self.by_age.capacity() > 4096 && self.by_age.capacity() > 4 * self.by_age.len() {
            self.by_age.shrink_to(2 * self.by_age.len());
            self.by_id.shrink_to(2 * self.by_id.len());
        }
    }

    /// Checks `nc` for the nonce and records it when acceptable.
    fn check_and_record(
        &mut self,
        ts: u64,
        mac: [u8; MAC_LEN],
        nc: u32,
        now_ms: u64,
        lifetime_ms: u64,
    ) -> Result<(), DigestError> {
        self.purge_expired(now_ms, lifetime_ms);
        let id = nonce_id(&mac);
        if let Some(highest) = self.by_id.get_mut(&id) {
            if nc <= *highest {
                return Err(DigestError::Replay);
            }
            *highest = nc;
            return Ok(());
        }
        if self.evicted_up_to.is_some_and(|w| ts <= w) {
            return Err(DigestError::StaleNonce);
        }
        if self.by_id.len() >= self.cap && self.by_age.front().is_some_and(|&(t, _)| ts <= t) {
            // Full, and this nonce is not newer than the oldest tracked one: no room.
            return Err(DigestError::StaleNonce);
        }
        while self.by_id.len() >= self.cap {
            let Some((old_ts, old_id)) = self.by_age.pop_front() else {
                break;
            };
            self.by_id.remove(&old_id);
            self.evicted_up_to = Some(self.evicted_up_to.map_or(old_ts, |w| w.max(old_ts)));
        }
        if self.evicted_up_to.is_some_and(|w| ts <= w) {
            // The new nonce is itself among the oldest: no room to track it.
            return Err(DigestError::StaleNonce);
        }
        self.by_id.insert(id, nc);
        self.by_age.push_back((ts, id));
        Ok(())
    }
}

/// Digest authentication server state: the nonce secret and the nonce-count table.
pub struct DigestServer {
    secret: [u8; 32],
    lifetime_ms: u64,
    allow_no_qop: bool,
    replay: ReplayTable,
    /// `opaque` of the last realm asked for (a server has one realm in practice).
    opaque_cache: std::cell::OnceCell<(String, String)>,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer")
            .field("lifetime_ms", &self.lifetime_ms)
            .field("allow_no_qop", &self.allow_no_qop)
            .field("tracked_nonces", &self.replay.len())
            .finish_non_exhaustive()
    }
}

impl Drop for DigestServer {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

struct DecodedNonce {
    ts: u64,
    mac: [u8; MAC_LEN],
}

impl DigestServer {
    /// A server whose nonces are valid for `nonce_lifetime`, with the default replay table
    /// capacity. `secret` must be random and kept across restarts (and shared between
    /// servers that should accept each other's nonces).
    pub fn new(secret: [u8; 32], nonce_lifetime: Duration) -> Self {
        Self {
            secret,
            lifetime_ms: u64::try_from(nonce_lifetime.as_millis()).unwrap_or(u64::MAX),
            allow_no_qop: true,
            replay: ReplayTable::new(DEFAULT_REPLAY_CAPACITY),
            opaque_cache: std::cell::OnceCell::new(),
        }
    }

    /// Sets the capacity of the nonce-count table (at least 1).
    pub fn with_replay_capacity(mut self, cap: usize) -> Self {
        self.replay = ReplayTable::new(cap);
        self
    }

    /// Whether credentials without `qop` (RFC 2069) are accepted (default: yes).
    pub fn set_allow_no_qop(&mut self, allow: bool) {
        self.allow_no_qop = allow;
    }

    /// The nonce lifetime.
    pub fn nonce_lifetime(&self) -> Duration {
        Duration::from_millis(self.lifetime_ms)
    }

    /// Number of nonces currently tracked for replay protection.
    pub fn tracked_nonces(&self) -> usize {
        self.replay.len()
    }

    fn realm_tag(realm: &str) -> [u8; TAG_LEN] {
        let h = crypto::sha256(&[REALM_TAG_LABEL, realm.as_bytes()]);
        [h[0], h[1], h[2], h[3]]
    }

    fn nonce_mac(&self, ts: &[u8], random: &[u8], realm: &str) -> [u8; MAC_LEN] {
        crypto::hmac_sha256(&self.secret, &[NONCE_LABEL, ts, random, realm.as_bytes()])
    }

    /// A fresh nonce for `realm`, issued at `now_ms`.
    pub fn new_nonce<R: CryptoRng + ?Sized>(
        &self,
        realm: &str,
        now_ms: u64,
        rng: &mut R,
    ) -> String {
        let ts = now_ms.to_be_bytes();
        let mut random = [0u8; RAND_LEN];
        rng.fill_bytes(&mut random);
        let mac = self.nonce_mac(&ts, &random, realm);
        let mut raw = Vec::with_capacity(NONCE_RAW_LEN);
        raw.extend_from_slice(&ts);
        raw.extend_from_slice(&random);
        raw.extend_from_slice(&Self::realm_tag(realm));
        raw.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The `opaque` value for `realm` (fixed per secret and realm).
    pub fn opaque(&self, realm: &str) -> String {
        let compute = || {
            let mac = crypto::hmac_sha256(&self.secret, &[OPAQUE_LABEL, realm.as_bytes()]);
            URL_SAFE_NO_PAD.encode(&mac[..12])
        };
        let (cached_realm, value) = self
            .opaque_cache
            .get_or_init(|| (realm.to_owned(), compute()));
        if cached_realm == realm {
            value.clone()
        } else {
            compute()
        }
    }

    /// Header values for `WWW-Authenticate` / `Proxy-Authenticate`: first SHA-256, then
    /// MD5 (RFC 7616 §3.7: preferred algorithm first), sharing one nonce.
    pub fn challenge<R: CryptoRng + ?Sized>(
        &self,
        realm: &str,
        now_ms: u64,
        stale: bool,
        rng: &mut R,
    ) -> Vec<String> {
        let nonce = self.new_nonce(realm, now_ms, rng);
        let opaque = self.opaque(realm);
        let realm_q = params::quote(realm);
        [Algorithm::Sha256, Algorithm::Md5]
            .into_iter()
            .map(|alg| {
                let mut v = format!(
                    "Digest realm={realm_q}, qop=\"auth\", algorithm={}, nonce=\"{nonce}\", opaque=\"{opaque}\"",
                    alg.name()
                );
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect()
    }

    /// Checks that `nonce` was issued by us for `realm`.
    fn check_nonce(&self, nonce: &str, realm: &str) -> Result<DecodedNonce, DigestError> {
        if nonce.len() > NONCE_B64_LEN {
            return Err(DigestError::InvalidNonce);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| DigestError::InvalidNonce)?;
        if raw.len() != NONCE_RAW_LEN {
            return Err(DigestError::InvalidNonce);
        }
        let (ts_b, rest) = raw.split_at(TS_LEN);
        let (random, rest) = rest.split_at(RAND_LEN);
        let (tag, mac) = rest.split_at(TAG_LEN);
        let expected = self.nonce_mac(ts_b, random, realm);
        if !bool::from(expected.ct_eq(mac)) {
            if tag != Self::realm_tag(realm) {
                return Err(DigestError::RealmMismatch);
            }
            return Err(DigestError::InvalidNonce);
        }
        let mut ts = [0u8; TS_LEN];
        ts.copy_from_slice(ts_b);
        Ok(DecodedNonce {
            ts: u64::from_be_bytes(ts),
            mac: expected,
        })
    }

    /// Verifies a Digest credentials header. `lookup(username, realm)` returns the user's
    /// stored HA1 values; it is called only once the nonce has been found genuine.
    pub fn verify(
        &mut self,
        method: &str,
        header_value: &str,
        lookup: impl FnOnce(&str, &str) -> Option<Ha1s>,
        now_ms: u64,
    ) -> Result<Authenticated, DigestError> {
        let resp = DigestResponse::parse(header_value)?;
        self.verify_response(method, &resp, lookup, now_ms)
    }

    /// [`DigestServer::verify`] of credentials already parsed: `lookup` is still
    /// called only once the nonce has been found genuine.
    pub fn verify_response(
        &mut self,
        method: &str,
        resp: &DigestResponse<'_>,
        lookup: impl FnOnce(&str, &str) -> Option<Ha1s>,
        now_ms: u64,
    ) -> Result<Authenticated, DigestError> {
        let nonce = self.check_nonce(&resp.nonce, &resp.realm)?;
        let ha1s = lookup(&resp.username, &resp.realm);
        self.verify_checked(method, resp, ha1s.as_ref(), nonce, now_ms)
    }

    /// Verifies parsed credentials against the user's HA1 values (`None`: unknown user).
    pub fn verify_parsed(
        &mut self,
        method: &str,
        resp: &DigestResponse<'_>,
        ha1s: Option<&Ha1s>,
        now_ms: u64,
    ) -> Result<Authenticated, DigestError> {
        let nonce = self.check_nonce(&resp.nonce, &resp.realm)?;
        self.verify_checked(method, resp, ha1s, nonce, now_ms)
    }

    /// [`DigestServer::verify_parsed`] once the nonce is known to be ours.
    fn verify_checked(
        &mut self,
        method: &str,
        resp: &DigestResponse<'_>,
        ha1s: Option<&Ha1s>,
        nonce: DecodedNonce,
        now_ms: u64,
    ) -> Result<Authenticated, DigestError> {
        if !resp.qop_auth && !self.allow_no_qop {
            return Err(DigestError::Malformed("qop required".into()));
        }
        if let Some(op) = &resp.opaque {
            let expected = self.opaque(&resp.realm);
            if !bool::from(expected.as_bytes().ct_eq(op.as_bytes())) {
                return Err(DigestError::InvalidNonce);
            }
        }
        let ha1s = ha1s.ok_or(DigestError::UnknownUser)?;
        let ha1 = ha1s
            .for_algorithm(resp.algorithm)
            .ok_or(DigestError::UnsupportedAlgorithm)?;
        let expected = compute_response(
            resp.algorithm,
            ha1,
            &resp.nonce,
            resp.nc.as_ref().map(|(raw, _)| raw.as_ref()),
            resp.cnonce.as_deref(),
            resp.qop_auth.then_some("auth"),
            method,
            &resp.uri,
        );
        // Compare the lower-cased hex in constant time (clients may send upper case).
        let given = resp.response.to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(DigestError::WrongResponse);
        }
        let too_old = now_ms > nonce.ts.saturating_add(self.lifetime_ms);
        let from_future = nonce.ts > now_ms.saturating_add(self.lifetime_ms);
        if too_old || from_future {
            return Err(DigestError::StaleNonce);
        }
        if let Some((_, nc)) = &resp.nc {
            self.replay
                .check_and_record(nonce.ts, nonce.mac, *nc, now_ms, self.lifetime_ms)?;
        }
        Ok(Authenticated {
            username: resp.username.to_string(),
            realm: resp.realm.to_string(),
            algorithm: resp.algorithm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const LIFETIME: Duration = Duration::from_secs(300);
    const T0: u64 = 1_700_000_000_000;
    const REALM: &str = "example.com";

    fn server() -> DigestServer {
        DigestServer::new([7u8; 32], LIFETIME)
    }

    fn rng() -> StdRng {
        StdRng::seed_from_u64(42)
    }

    fn alice(user: &str, realm: &str) -> Option<Ha1s> {
        (user == "alice").then(|| Ha1s::from_password("alice", realm, "wonderland"))
    }

    fn param(header: &str, name: &str) -> String {
        params::parse(header)
            .unwrap()
            .get(name)
            .unwrap()
            .to_string()
    }

    /// Builds client credentials answering `challenge`.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        challenge: &str,
        user: &str,
        password: &str,
        realm: &str,
        method: &str,
        uri: &str,
        nc: Option<u32>,
    ) -> String {
        let nonce = param(challenge, "nonce");
        let opaque = param(challenge, "opaque");
        let alg = Algorithm::parse(&param(challenge, "algorithm")).unwrap();
        let ha1s = Ha1s::from_password(user, realm, password);
        let ha1 = ha1s.for_algorithm(alg).unwrap();
        match nc {
            Some(nc) => {
                let nc = format!("{nc:08x}");
                let r = compute_response(
                    alg,
                    ha1,
                    &nonce,
                    Some(&nc),
                    Some("c0ffee"),
                    Some("auth"),
                    method,
                    uri,
                );
                format!(
                    "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
                     response=\"{r}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"c0ffee\", opaque=\"{opaque}\"",
                    alg.name()
                )
            }
            None => {
                let r = compute_response(alg, ha1, &nonce, None, None, None, method, uri);
                format!(
                    "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
                     response=\"{r}\", algorithm={}",
                    alg.name()
                )
            }
        }
    }

    #[test]
    fn rfc2617_example() {
        let ha1 = crate::credentials::ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life");
        let r = compute_response(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some("00000001"),
            Some("0a4f113b"),
            Some("auth"),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_examples() {
        // RFC 7616 §3.9.1
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let ha1 = Ha1s::from_password("Mufasa", "http-auth@example.org", "Circle of Life");
        let sha = compute_response(
            Algorithm::Sha256,
            ha1.for_algorithm(Algorithm::Sha256).unwrap(),
            nonce,
            Some("00000001"),
            Some(cnonce),
            Some("auth"),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(
            sha,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let md5 = compute_response(
            Algorithm::Md5,
            ha1.for_algorithm(Algorithm::Md5).unwrap(),
            nonce,
            Some("00000001"),
            Some(cnonce),
            Some("auth"),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(md5, "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc2617_header_parses() {
        let h = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let r = DigestResponse::parse(h).unwrap();
        assert_eq!(r.username(), "Mufasa");
        assert_eq!(r.realm(), "testrealm@host.com");
        assert_eq!(r.uri(), "/dir/index.html");
        assert_eq!(r.algorithm(), Algorithm::Md5);
        // A foreign nonce is rejected even with the right password.
        let mut s = server();
        let err = s
            .verify(
                "GET",
                h,
                |_, _| {
                    Some(Ha1s::from_password(
                        "Mufasa",
                        "testrealm@host.com",
                        "Circle Of Life",
                    ))
                },
                T0,
            )
            .unwrap_err();
        assert_eq!(err, DigestError::InvalidNonce);
    }

    #[test]
    fn challenge_format() {
        let s = server();
        let c = s.challenge(REALM, T0, false, &mut rng());
        assert_eq!(c.len(), 2);
        assert!(c[0].starts_with(
            "Digest realm=\"example.com\", qop=\"auth\", algorithm=SHA-256, nonce=\""
        ));
        assert!(c[1].contains("algorithm=MD5,"));
        assert_eq!(param(&c[0], "nonce"), param(&c[1], "nonce"));
        assert_eq!(param(&c[0], "opaque"), s.opaque(REALM));
        assert!(!c[0].contains("stale"));
        let c = s.challenge(REALM, T0, true, &mut rng());
        assert!(c.iter().all(|v| v.ends_with(", stale=true")));
        // Deterministic with a seeded RNG, different with another seed.
        assert_eq!(c[0], s.challenge(REALM, T0, true, &mut rng())[0]);
        let other = s.challenge(REALM, T0, true, &mut StdRng::seed_from_u64(1));
        assert_ne!(c[0], other[0]);
    }

    #[test]
    fn accepts_both_algorithms_and_survives_restart() {
        for idx in 0..2 {
            let mut s = server();
            let c = s.challenge(REALM, T0, false, &mut rng());
            let auth = answer(
                &c[idx],
                "alice",
                "wonderland",
                REALM,
                "REGISTER",
                "sip:example.com",
                Some(1),
            );
            let ok = s.verify("REGISTER", &auth, alice, T0 + 1000).unwrap();
            assert_eq!(ok.username, "alice");
            assert_eq!(ok.realm, REALM);
            assert_eq!(
                ok.algorithm,
                if idx == 0 {
                    Algorithm::Sha256
                } else {
                    Algorithm::Md5
                }
            );
            // A "restarted" server with the same secret accepts the next nc.
            let mut restarted = server();
            let auth2 = answer(
                &c[idx],
                "alice",
                "wonderland",
                REALM,
                "REGISTER",
                "sip:example.com",
                Some(2),
            );
            assert!(
                restarted
                    .verify("REGISTER", &auth2, alice, T0 + 2000)
                    .is_ok()
            );
        }
    }

    #[test]
    fn wrong_password_and_unknown_user() {
        let mut s = server();
        let c = s.challenge(REALM, T0, false, &mut rng());
        let auth = answer(
            &c[0],
            "alice",
            "guess",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert_eq!(
            s.verify("REGISTER", &auth, alice, T0).unwrap_err(),
            DigestError::WrongResponse
        );
        // Method and uri are covered by the response.
        let auth = answer(
            &c[0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert_eq!(
            s.verify("INVITE", &auth, alice, T0).unwrap_err(),
            DigestError::WrongResponse
        );
        let auth = answer(
            &c[0],
            "bob",
            "x",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert_eq!(
            s.verify("REGISTER", &auth, alice, T0).unwrap_err(),
            DigestError::UnknownUser
        );
        // Failures do not consume the nonce-count.
        let auth = answer(
            &c[0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert!(s.verify("REGISTER", &auth, alice, T0).is_ok());
    }

    #[test]
    fn stale_only_with_correct_response() {
        let mut s = server();
        let c = s.challenge(REALM, T0, false, &mut rng());
        let late = T0 + LIFETIME.as_millis() as u64 + 1;
        let good = answer(
            &c[0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert_eq!(
            s.verify("REGISTER", &good, alice, late).unwrap_err(),
            DigestError::StaleNonce
        );
        let bad = answer(
            &c[0],
            "alice",
            "nope",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert_eq!(
            s.verify("REGISTER", &bad, alice, late).unwrap_err(),
            DigestError::WrongResponse
        );
        // Exactly at the end of the lifetime it is still valid.
        let edge = T0 + LIFETIME.as_millis() as u64;
        assert!(s.verify("REGISTER", &good, alice, edge).is_ok());
        // A nonce from far in the future (clock went back a lot) is stale too.
        let c = s.challenge(REALM, late * 2, false, &mut rng());
        let future = answer(
            &c[0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert_eq!(
            s.verify("REGISTER", &future, alice, T0).unwrap_err(),
            DigestError::StaleNonce
        );
    }

    #[test]
    fn forged_and_altered_nonces() {
        let mut s = server();
        let c = s.challenge(REALM, T0, false, &mut rng());
        // Same nonce, other secret.
        let mut other = DigestServer::new([8u8; 32], LIFETIME);
        let auth = answer(
            &c[0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert_eq!(
            other.verify("REGISTER", &auth, alice, T0).unwrap_err(),
            DigestError::InvalidNonce
        );
        // Timestamp pushed forward by the client.
        let nonce = param(&c[0], "nonce");
        let mut raw = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        raw[7] ^= 1;
        let forged_nonce = URL_SAFE_NO_PAD.encode(&raw);
        let forged = c[0].replace(&nonce, &forged_nonce);
        let auth = answer(
            &forged,
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert_eq!(
            s.verify("REGISTER", &auth, alice, T0).unwrap_err(),
            DigestError::InvalidNonce
        );
        // Garbage nonces.
        for junk in ["", "abc", "!!!!", &"A".repeat(500)] {
            let fake = c[0].replace(&nonce, junk);
            let auth = answer(
                &fake,
                "alice",
                "wonderland",
                REALM,
                "REGISTER",
                "sip:example.com",
                Some(1),
            );
            assert_eq!(
                s.verify("REGISTER", &auth, alice, T0).unwrap_err(),
                DigestError::InvalidNonce
            );
        }
        // Wrong opaque.
        let opaque = param(&c[0], "opaque");
        let fake = c[0].replace(&opaque, "AAAAAAAAAAAAAAAA");
        let auth = answer(
            &fake,
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert_eq!(
            s.verify("REGISTER", &auth, alice, T0).unwrap_err(),
            DigestError::InvalidNonce
        );
    }

    #[test]
    fn realm_mismatch() {
        let mut s = server();
        let c = s.challenge(REALM, T0, false, &mut rng());
        let auth = answer(
            &c[0],
            "alice",
            "wonderland",
            "other.org",
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert_eq!(
            s.verify("REGISTER", &auth, alice, T0).unwrap_err(),
            DigestError::RealmMismatch
        );
    }

    #[test]
    fn replay_protection() {
        let mut s = server();
        let c = s.challenge(REALM, T0, false, &mut rng());
        let a1 = answer(
            &c[0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        let a2 = answer(
            &c[0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(2),
        );
        let a5 = answer(
            &c[0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(5),
        );
        assert!(s.verify("REGISTER", &a1, alice, T0).is_ok());
        assert_eq!(
            s.verify("REGISTER", &a1, alice, T0).unwrap_err(),
            DigestError::Replay
        );
        assert!(s.verify("REGISTER", &a5, alice, T0).is_ok());
        assert_eq!(
            s.verify("REGISTER", &a2, alice, T0).unwrap_err(),
            DigestError::Replay
        );
        assert_eq!(s.tracked_nonces(), 1);
        // The MD5 challenge shares the nonce, hence the counter.
        let m5 = answer(
            &c[1],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(5),
        );
        assert_eq!(
            s.verify("REGISTER", &m5, alice, T0).unwrap_err(),
            DigestError::Replay
        );
        // Entries expire with the nonce.
        let c2 = s.challenge(REALM, T0 + 400_000, false, &mut rng());
        let b1 = answer(
            &c2[0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            Some(1),
        );
        assert!(s.verify("REGISTER", &b1, alice, T0 + 400_000).is_ok());
        assert_eq!(s.tracked_nonces(), 1);
    }

    #[test]
    fn nonces_used_out_of_order_stay_protected_after_eviction() {
        let mut s = server().with_replay_capacity(2);
        let mut r = rng();
        // Issued at T0+10, T0+20, T0+30; used in the order 2nd, 1st, 3rd.
        let cs: Vec<Vec<String>> = (1..=3)
            .map(|i| s.challenge(REALM, T0 + i * 10, false, &mut r))
            .collect();
        let use_nc = |s: &mut DigestServer, i: usize, nc: u32| {
            let a = answer(
                &cs[i][0],
                "alice",
                "wonderland",
                REALM,
                "REGISTER",
                "sip:x",
                Some(nc),
            );
            s.verify("REGISTER", &a, alice, T0 + 100)
        };
        assert!(use_nc(&mut s, 1, 1).is_ok());
        assert!(use_nc(&mut s, 0, 1).is_ok());
        // Full: the first entry made (nonce 2, issued T0+20) makes room for nonce 3.
        assert!(use_nc(&mut s, 2, 1).is_ok());
        assert_eq!(s.tracked_nonces(), 2);
        // Nonce 2 was evicted: stale, never replayable.
        assert_eq!(use_nc(&mut s, 1, 1), Err(DigestError::StaleNonce));
        // Nonce 1 is older than the evicted one but still tracked: replay refused,
        // a higher count accepted.
        assert_eq!(use_nc(&mut s, 0, 1), Err(DigestError::Replay));
        assert!(use_nc(&mut s, 0, 2).is_ok());
        assert_eq!(use_nc(&mut s, 2, 1), Err(DigestError::Replay));
    }

    #[test]
    fn replay_table_is_bounded_and_eviction_makes_stale() {
        let mut s = server().with_replay_capacity(2);
        let mut r = rng();
        let cs: Vec<Vec<String>> = (0..3)
            .map(|i| s.challenge(REALM, T0 + i * 10, false, &mut r))
            .collect();
        for c in &cs {
            let a = answer(
                &c[0],
                "alice",
                "wonderland",
                REALM,
                "REGISTER",
                "sip:x",
                Some(1),
            );
            assert!(s.verify("REGISTER", &a, alice, T0 + 100).is_ok());
        }
        assert_eq!(s.tracked_nonces(), 2);
        // The evicted (oldest) nonce is now stale, not replayable.
        let a = answer(
            &cs[0][0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:x",
            Some(1),
        );
        assert_eq!(
            s.verify("REGISTER", &a, alice, T0 + 100).unwrap_err(),
            DigestError::StaleNonce
        );
        let a = answer(
            &cs[0][0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:x",
            Some(9),
        );
        assert_eq!(
            s.verify("REGISTER", &a, alice, T0 + 100).unwrap_err(),
            DigestError::StaleNonce
        );
        // The tracked ones still work.
        let a = answer(
            &cs[2][0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:x",
            Some(2),
        );
        assert!(s.verify("REGISTER", &a, alice, T0 + 100).is_ok());
    }

    #[test]
    fn no_qop_rfc2069() {
        let mut s = server();
        let c = s.challenge(REALM, T0, false, &mut rng());
        let auth = answer(
            &c[1],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:example.com",
            None,
        );
        assert!(s.verify("REGISTER", &auth, alice, T0).is_ok());
        assert!(s.verify("REGISTER", &auth, alice, T0).is_ok());
        assert_eq!(s.tracked_nonces(), 0);
        let bad = answer(
            &c[1],
            "alice",
            "x",
            REALM,
            "REGISTER",
            "sip:example.com",
            None,
        );
        assert_eq!(
            s.verify("REGISTER", &bad, alice, T0).unwrap_err(),
            DigestError::WrongResponse
        );
        s.set_allow_no_qop(false);
        assert!(matches!(
            s.verify("REGISTER", &auth, alice, T0).unwrap_err(),
            DigestError::Malformed(_)
        ));
    }

    #[test]
    fn md5_sess_and_case_insensitive_algorithm() {
        let mut s = server();
        let c = s.challenge(REALM, T0, false, &mut rng());
        let nonce = param(&c[0], "nonce");
        let ha1 = crate::credentials::ha1_md5("alice", REALM, "wonderland");
        let r = compute_response(
            Algorithm::Md5Sess,
            &ha1,
            &nonce,
            Some("00000001"),
            Some("abc"),
            Some("auth"),
            "REGISTER",
            "sip:x",
        );
        let auth = format!(
            "Digest username=\"alice\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"sip:x\", \
             response=\"{}\", algorithm=md5-SESS, qop=\"AUTH\", nc=00000001, cnonce=\"abc\"",
            r.to_uppercase()
        );
        let ok = s.verify("REGISTER", &auth, alice, T0).unwrap();
        assert_eq!(ok.algorithm, Algorithm::Md5Sess);
    }

    #[test]
    fn malformed_and_unsupported() {
        let mut s = server();
        let cases = [
            "",
            "Basic dXNlcjpwYXNz",
            "Digest realm=\"a\"",
            "Digest username=\"a\", realm=\"b\", nonce=\"c\", uri=\"d\"",
            "Digest username=\"a\", realm=\"b\", nonce=\"c\", uri=\"d\", response=\"e\", qop=auth, cnonce=\"x\"",
            "Digest username=\"a\", realm=\"b\", nonce=\"c\", uri=\"d\", response=\"e\", qop=auth, nc=zz, cnonce=\"x\"",
            "Digest username=\"a\", realm=\"b\", nonce=\"c\", uri=\"d\", response=\"e\", qop=auth, nc=000000001, cnonce=\"x\"",
            "Digest username=\"a\", realm=\"b\", nonce=\"c\", uri=\"d\", response=\"e\", qop=auth, nc=1",
            "Digest username=\"a\", realm=\"b\", nonce=\"c\", uri=\"d\", response=\"e\", qop=auth-int, nc=1, cnonce=\"x\"",
            "Digest username=\"a\", realm=\"b\", nonce=\"c\", uri=\"d\", response=\"e\", userhash=true",
            "Digest username=\"a\", realm=\"b\", nonce=\"c\", uri=\"d\", response=\"e\", algorithm=MD5-sess",
            "Digest username=\"a\", username=\"b\"",
            "Digest username=\"a",
        ];
        for h in cases {
            assert!(
                matches!(
                    s.verify("REGISTER", h, alice, T0),
                    Err(DigestError::Malformed(_))
                ),
                "{h}"
            );
        }
        let h = "Digest username=\"a\", realm=\"b\", nonce=\"c\", uri=\"d\", response=\"e\", algorithm=SHA-512-256";
        assert_eq!(
            s.verify("REGISTER", h, alice, T0).unwrap_err(),
            DigestError::UnsupportedAlgorithm
        );
        // No SHA-256 HA1 stored for the user.
        let c = s.challenge(REALM, T0, false, &mut rng());
        let auth = answer(
            &c[0],
            "alice",
            "wonderland",
            REALM,
            "REGISTER",
            "sip:x",
            Some(1),
        );
        let md5_only = |_: &str, _: &str| {
            Some(Ha1s::new(
                Some(crate::credentials::ha1_md5("alice", REALM, "wonderland")),
                None,
            ))
        };
        assert_eq!(
            s.verify("REGISTER", &auth, md5_only, T0).unwrap_err(),
            DigestError::UnsupportedAlgorithm
        );
    }

    #[test]
    fn lookup_not_called_for_forged_nonce() {
        let mut s = server();
        let h = "Digest username=\"a\", realm=\"b\", nonce=\"forged\", uri=\"d\", response=\"e\"";
        let mut called = false;
        let _ = s.verify(
            "REGISTER",
            h,
            |_, _| {
                called = true;
                None
            },
            T0,
        );
        assert!(!called);
    }

    #[test]
    fn debug_hides_secrets() {
        let s = server();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("7, 7"));
        let h = Ha1s::from_password("alice", REALM, "wonderland");
        assert_eq!(format!("{h:?}"), "Ha1s { .. }");
    }

    proptest! {
        #[test]
        fn verify_never_panics(s in "\\PC{0,300}", method in "[A-Z]{0,8}") {
            let mut srv = server();
            let _ = srv.verify(&method, &s, alice, T0);
        }

        #[test]
        fn digest_like_never_panics(
            user in "[a-z\"\\\\]{0,5}",
            nonce in "[A-Za-z0-9_=-]{0,90}",
            nc in "[0-9a-fA-Fx]{0,10}",
            alg in "(MD5|SHA-256|md5-sess|SHA-256-SESS|x)",
        ) {
            let mut srv = server();
            let h = format!(
                "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"sip:x\", \
                 response=\"00\", algorithm={alg}, qop=auth, nc={nc}, cnonce=\"c\""
            );
            let _ = srv.verify("REGISTER", &h, alice, T0);
        }
    }
}
