//! Server side of connectionless (datagram) NTLMv2 as used by MS-SIPAE (Lync / OCS SIP
//! authentication), per MS-NLMP.
//!
//! Flow (MS-SIPAE §3.3, see the project's protocol notes):
//! 1. The client sends `Authorization: NTLM ... gssapi-data=""` (no NEGOTIATE_MESSAGE in
//!    connectionless mode).
//! 2. The server answers 401 with a CHALLENGE_MESSAGE from [`build_challenge`], flags
//!    [`CHALLENGE_FLAGS`], keeping the 8-byte server challenge (one use only) in its
//!    security-association table.
//! 3. The client sends an AUTHENTICATE_MESSAGE: [`parse_authenticate`], then
//!    [`verify_ntlmv2`] with the user's NT hash gives the [`SessionKeys`]; if the client
//!    announced a MIC, [`verify_mic`] checks it against the CHALLENGE bytes.
//! 4. Every later message is signed with [`sign`] / checked with
//!    [`SessionKeys::verify_client`] over the MS-SIPAE signature string built by
//!    [`sipae_sign_string`], with sequence number [`SIPAE_SEQ`] (always 100).
//!
//! Only NTLMv2 with extended session security and key exchange is accepted: NTLMv1 and
//! LM responses, anonymous logons and sessions without ESS/KEY_EXCH are refused.
//!
//! Secrets (NT hash, keys) are compared in constant time, zeroized on drop and never
//! shown by `Debug`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::crypto;

/// NTLM negotiate flags (MS-NLMP §2.2.2.5).
pub mod flags {
    /// NTLMSSP_NEGOTIATE_UNICODE
    pub const UNICODE: u32 = 0x0000_0001;
    /// NTLM_NEGOTIATE_OEM
    pub const OEM: u32 = 0x0000_0002;
    /// NTLMSSP_REQUEST_TARGET
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
    /// NTLMSSP_NEGOTIATE_SIGN
    pub const SIGN: u32 = 0x0000_0010;
    /// NTLMSSP_NEGOTIATE_SEAL
    pub const SEAL: u32 = 0x0000_0020;
    /// NTLMSSP_NEGOTIATE_DATAGRAM
    pub const DATAGRAM: u32 = 0x0000_0040;
    /// NTLMSSP_NEGOTIATE_LM_KEY
    pub const LM_KEY: u32 = 0x0000_0080;
    /// NTLMSSP_NEGOTIATE_NTLM
    pub const NTLM: u32 = 0x0000_0200;
    /// NTLMSSP_NEGOTIATE_ANONYMOUS (the "J" bit)
    pub const ANONYMOUS: u32 = 0x0000_0800;
    /// NTLMSSP_NEGOTIATE_ALWAYS_SIGN
    pub const ALWAYS_SIGN: u32 = 0x0000_8000;
    /// NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    pub const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
    /// NTLMSSP_NEGOTIATE_IDENTIFY
    pub const IDENTIFY: u32 = 0x0010_0000;
    /// NTLMSSP_NEGOTIATE_TARGET_INFO
    pub const TARGET_INFO: u32 = 0x0080_0000;
    /// NTLMSSP_NEGOTIATE_VERSION
    pub const VERSION: u32 = 0x0200_0000;
    /// NTLMSSP_NEGOTIATE_128
    pub const N128: u32 = 0x2000_0000;
    /// NTLMSSP_NEGOTIATE_KEY_EXCH
    pub const KEY_EXCH: u32 = 0x4000_0000;
    /// NTLMSSP_NEGOTIATE_56
    pub const N56: u32 = 0x8000_0000;
}

/// Flags of the CHALLENGE_MESSAGE, as sent by real Lync Server 2013:
/// UNICODE|OEM|SIGN|SEAL|DATAGRAM|LM_KEY|NTLM|ALWAYS_SIGN|ESS|IDENTIFY|TARGET_INFO|
/// VERSION|128|KEY_EXCH|56. SIPE refuses a challenge lacking any of
/// UNICODE|NTLM|ALWAYS_SIGN|ESS|TARGET_INFO|SIGN|DATAGRAM|IDENTIFY|KEY_EXCH.
pub const CHALLENGE_FLAGS: u32 = 0xE298_82F3;

/// Flags an AUTHENTICATE_MESSAGE must carry for [`verify_ntlmv2`] to derive keys that
/// [`sign`] can use.
pub const REQUIRED_FLAGS: u32 = flags::EXTENDED_SESSIONSECURITY | flags::KEY_EXCH;

/// The sequence number MS-SIPAE uses for every signature ("the server provides a fixed
/// message sequence number of 100"; clients do the same).
pub const SIPAE_SEQ: u32 = 100;

/// Largest AUTHENTICATE_MESSAGE accepted.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// The VERSION field we send: 6.3 build 9600 (Windows Server 2012 R2, which Lync Server
/// 2013 runs on), NTLMSSP_REVISION_W2K3.
pub const SERVER_VERSION: [u8; 8] = [6, 3, 0x80, 0x25, 0, 0, 0, 0x0F];

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
const CLIENT_SIGN_MAGIC: &[u8] = b"session key to client-to-server signing key magic constant\0";
const SERVER_SIGN_MAGIC: &[u8] = b"session key to server-to-client signing key magic constant\0";
const CLIENT_SEAL_MAGIC: &[u8] = b"session key to client-to-server sealing key magic constant\0";
const SERVER_SEAL_MAGIC: &[u8] = b"session key to server-to-client sealing key magic constant\0";

/// AV pair ids (MS-NLMP §2.2.2.1).
mod av {
    pub const EOL: u16 = 0;
    pub const NB_COMPUTER: u16 = 1;
    pub const NB_DOMAIN: u16 = 2;
    pub const DNS_COMPUTER: u16 = 3;
    pub const DNS_DOMAIN: u16 = 4;
    pub const DNS_TREE: u16 = 5;
    pub const FLAGS: u16 = 6;
    pub const TIMESTAMP: u16 = 7;
}

/// MsvAvFlags bit: the AUTHENTICATE_MESSAGE carries a MIC.
const AV_FLAG_MIC: u32 = 0x2;

/// Why NTLM authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    /// The bytes are not a well-formed AUTHENTICATE_MESSAGE.
    #[error("malformed NTLM message: {0}")]
    Malformed(&'static str),
    /// `gssapi-data` is not valid base64.
    #[error("invalid base64 in gssapi-data")]
    BadBase64,
    /// An NTLMv1 or LM-only response: refused.
    #[error("NTLMv1/LM responses are not accepted")]
    NtlmV1Refused,
    /// An anonymous AUTHENTICATE_MESSAGE: refused.
    #[error("anonymous NTLM logon refused")]
    Anonymous,
    /// The negotiated flags lack these required bits.
    #[error("required NTLM flags missing: {0:#010x}")]
    MissingFlags(u32),
    /// NTProofStr mismatch: wrong password, user, domain or challenge.
    #[error("wrong NTLMv2 response")]
    WrongResponse,
    /// The MIC does not match.
    #[error("bad NTLM MIC")]
    BadMic,
}

/// Names the server announces in the CHALLENGE_MESSAGE TargetInfo.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetInfo {
    /// NetBIOS domain name (MsvAvNbDomainName), e.g. `CONTOSO`.
    pub nb_domain: String,
    /// NetBIOS computer name (MsvAvNbComputerName), e.g. `LYNC-FE01`.
    pub nb_computer: String,
    /// DNS domain name (MsvAvDnsDomainName; also sent as MsvAvDnsTreeName).
    pub dns_domain: String,
    /// DNS computer name (MsvAvDnsComputerName), e.g. `lync-fe01.contoso.com`.
    pub dns_computer: String,
}

/// Converts milliseconds since the UNIX epoch into a FILETIME (100 ns since 1601).
pub fn filetime_from_unix_ms(unix_ms: u64) -> u64 {
    const EPOCH_DIFF_100NS: u64 = 116_444_736_000_000_000;
    unix_ms
        .saturating_mul(10_000)
        .saturating_add(EPOCH_DIFF_100NS)
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn push_av(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    // AV lengths are u16: names longer than that (never legitimate) are truncated to
    // a whole number of UTF-16 units.
    let len = value.len().min(0xFFFE);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&value[..len]);
}

/// Builds a CHALLENGE_MESSAGE (MS-NLMP §2.2.1.2) with [`CHALLENGE_FLAGS`], no target
/// name, and a TargetInfo holding NbDomain, NbComputer, DnsDomain, DnsComputer,
/// DnsTree (= DnsDomain) and, when given, the Timestamp (a FILETIME, see
/// [`filetime_from_unix_ms`]; Lync 2013 sends one, OCS 2007 R2 did not).
pub fn build_challenge(
    server_challenge: [u8; 8],
    target: &TargetInfo,
    timestamp: Option<u64>,
) -> Vec<u8> {
    let mut ti = Vec::new();
    push_av(&mut ti, av::NB_DOMAIN, &utf16le(&target.nb_domain));
    push_av(&mut ti, av::NB_COMPUTER, &utf16le(&target.nb_computer));
    push_av(&mut ti, av::DNS_DOMAIN, &utf16le(&target.dns_domain));
    push_av(&mut ti, av::DNS_COMPUTER, &utf16le(&target.dns_computer));
    push_av(&mut ti, av::DNS_TREE, &utf16le(&target.dns_domain));
    if let Some(ts) = timestamp {
        push_av(&mut ti, av::TIMESTAMP, &ts.to_le_bytes());
    }
    push_av(&mut ti, av::EOL, &[]);
    // Five names of at most 0xFFFE bytes each can exceed u16: cap the whole list (the
    // client then sees a truncated list; real names are far below this).
    ti.truncate(0xFFFF);

    const HEADER: u32 = 56;
    let mut m = Vec::with_capacity(HEADER as usize + ti.len());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&2u32.to_le_bytes());
    // TargetNameFields: empty, offset = end of header.
    m.extend_from_slice(&0u16.to_le_bytes());
    m.extend_from_slice(&0u16.to_le_bytes());
    m.extend_from_slice(&HEADER.to_le_bytes());
    m.extend_from_slice(&CHALLENGE_FLAGS.to_le_bytes());
    m.extend_from_slice(&server_challenge);
    m.extend_from_slice(&[0u8; 8]);
    let ti_len = ti.len() as u16;
    m.extend_from_slice(&ti_len.to_le_bytes());
    m.extend_from_slice(&ti_len.to_le_bytes());
    m.extend_from_slice(&HEADER.to_le_bytes());
    m.extend_from_slice(&SERVER_VERSION);
    m.extend_from_slice(&ti);
    m
}

/// A parsed AUTHENTICATE_MESSAGE (MS-NLMP §2.2.1.3). Structure only: nothing here is
/// authenticated until [`verify_ntlmv2`] succeeds.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthenticateMessage {
    /// NegotiateFlags.
    pub flags: u32,
    /// DomainName (decoded from UTF-16LE, or Latin-1 when UNICODE is not set).
    pub domain: String,
    /// UserName.
    pub user: String,
    /// Workstation.
    pub workstation: String,
    /// LmChallengeResponse (ignored for NTLMv2).
    pub lm_response: Vec<u8>,
    /// NtChallengeResponse: NTProofStr (16 bytes) ‖ NTLMv2 client challenge blob.
    pub nt_response: Vec<u8>,
    /// EncryptedRandomSessionKey, when present.
    pub encrypted_random_session_key: Option<[u8; 16]>,
    /// Version, when present.
    pub version: Option<[u8; 8]>,
    /// MIC, when the NTLMv2 blob's MsvAvFlags announces one.
    pub mic: Option<[u8; 16]>,
    /// The blob's timestamp (FILETIME), when the response is NTLMv2-shaped.
    pub client_timestamp: Option<u64>,
    raw: Vec<u8>,
}

impl std::fmt::Debug for AuthenticateMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateMessage")
            .field("flags", &format_args!("{:#010x}", self.flags))
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("workstation", &self.workstation)
            .field("nt_response_len", &self.nt_response.len())
            .field("mic", &self.mic.is_some())
            .finish_non_exhaustive()
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(s))
}

const AUTH_HEADER_LEN: usize = 64;

/// Reads the (len, maxlen, offset) triple at `field`; returns the payload slice.
fn payload<'a>(b: &'a [u8], field: usize, min_offset: &mut usize) -> Result<&'a [u8], NtlmError> {
    let len = u16_at(b, field).ok_or(NtlmError::Malformed("truncated header"))? as usize;
    let off = u32_at(b, field + 4).ok_or(NtlmError::Malformed("truncated header"))? as usize;
    if len == 0 {
        return Ok(&[]);
    }
    if off < AUTH_HEADER_LEN {
        return Err(NtlmError::Malformed("payload overlaps header"));
    }
    let end = off
        .checked_add(len)
        .ok_or(NtlmError::Malformed("field out of bounds"))?;
    let s = b
        .get(off..end)
        .ok_or(NtlmError::Malformed("field out of bounds"))?;
    *min_offset = (*min_offset).min(off);
    Ok(s)
}

fn decode_string(bytes: &[u8], unicode: bool) -> Result<String, NtlmError> {
    if unicode {
        if !bytes.len().is_multiple_of(2) {
            return Err(NtlmError::Malformed("odd-length UTF-16 string"));
        }
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).map_err(|_| NtlmError::Malformed("invalid UTF-16 string"))
    } else {
        // OEM code page: decoded as Latin-1 (lossless for bytes; ASCII in practice).
        Ok(bytes.iter().map(|&b| char::from(b)).collect())
    }
}

/// Iterates AV pairs of an NTLMv2 blob's list (bounded, stops at EOL or on damage).
fn av_pairs(mut list: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let id = u16_at(list, 0)?;
        let len = u16_at(list, 2)? as usize;
        if id == av::EOL {
            return None;
        }
        let value = list.get(4..4 + len)?;
        list = list.get(4 + len..)?;
        Some((id, value))
    })
}

/// NTLMv2 client challenge blob offsets (after the 16-byte NTProofStr).
const BLOB_TIMESTAMP: usize = 8;
const BLOB_AVPAIRS: usize = 28;

/// Parses an AUTHENTICATE_MESSAGE with strict bounds checks. Never panics.
pub fn parse_authenticate(bytes: &[u8]) -> Result<AuthenticateMessage, NtlmError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(NtlmError::Malformed("message too long"));
    }
    if bytes.len() < AUTH_HEADER_LEN {
        return Err(NtlmError::Malformed("message too short"));
    }
    if !bytes.starts_with(SIGNATURE) {
        return Err(NtlmError::Malformed("bad signature"));
    }
    if u32_at(bytes, 8) != Some(3) {
        return Err(NtlmError::Malformed("not an AUTHENTICATE_MESSAGE"));
    }
    let flags = u32_at(bytes, 60).ok_or(NtlmError::Malformed("truncated header"))?;
    let unicode = flags & flags::UNICODE != 0;
    let mut min_offset = bytes.len();
    let lm_response = payload(bytes, 12, &mut min_offset)?.to_vec();
    let nt_response = payload(bytes, 20, &mut min_offset)?.to_vec();
    let domain = decode_string(payload(bytes, 28, &mut min_offset)?, unicode)?;
    let user = decode_string(payload(bytes, 36, &mut min_offset)?, unicode)?;
    let workstation = decode_string(payload(bytes, 44, &mut min_offset)?, unicode)?;
    let ersk = payload(bytes, 52, &mut min_offset)?;
    let encrypted_random_session_key = match ersk.len() {
        0 => None,
        16 => {
            let mut k = [0u8; 16];
            k.copy_from_slice(ersk);
            Some(k)
        }
        _ => {
            return Err(NtlmError::Malformed(
                "EncryptedRandomSessionKey not 16 bytes",
            ));
        }
    };
    let version = if flags & flags::VERSION != 0 && min_offset >= 72 {
        bytes.get(64..72).and_then(|v| v.try_into().ok())
    } else {
        None
    };

    // NTLMv2 blob: timestamp and MsvAvFlags (for the MIC).
    let mut client_timestamp = None;
    let mut mic_announced = false;
    if nt_response.len() > 24 {
        let blob = nt_response.get(16..).unwrap_or(&[]);
        client_timestamp = u64_at(blob, BLOB_TIMESTAMP);
        if let Some(list) = blob.get(BLOB_AVPAIRS..) {
            for (id, value) in av_pairs(list).take(64) {
                if id == av::FLAGS {
                    mic_announced = u32_at(value, 0).is_some_and(|f| f & AV_FLAG_MIC != 0);
                }
            }
        }
    }
    let mic = if mic_announced {
        if min_offset < 88 {
            return Err(NtlmError::Malformed("MIC announced but absent"));
        }
        bytes.get(72..88).and_then(|m| m.try_into().ok())
    } else {
        None
    };

    Ok(AuthenticateMessage {
        flags,
        domain,
        user,
        workstation,
        lm_response,
        nt_response,
        encrypted_random_session_key,
        version,
        mic,
        client_timestamp,
        raw: bytes.to_vec(),
    })
}

/// Decodes the base64 `gssapi-data` parameter (empty string gives empty bytes).
pub fn decode_gssapi_data(value: &str) -> Result<Vec<u8>, NtlmError> {
    if value.len() > MAX_MESSAGE_LEN * 4 / 3 + 4 {
        return Err(NtlmError::Malformed("message too long"));
    }
    STANDARD.decode(value).map_err(|_| NtlmError::BadBase64)
}

/// Encodes a message for the `gssapi-data` parameter.
pub fn encode_gssapi_data(message: &[u8]) -> String {
    STANDARD.encode(message)
}

/// Keys of an established NTLM session. Zeroized on drop; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// The negotiated flags (those of the AUTHENTICATE_MESSAGE).
    pub flags: u32,
    /// Key the client signs with (client-to-server signing key).
    pub client_sign: [u8; 16],
    /// Key the client seals (RC4-keys its checksum) with.
    pub client_seal: [u8; 16],
    /// Key the server signs with (server-to-client signing key).
    pub server_sign: [u8; 16],
    /// Key the server seals with.
    pub server_seal: [u8; 16],
    exported_session_key: [u8; 16],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys { .. }")
    }
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        self.client_sign.zeroize();
        self.client_seal.zeroize();
        self.server_sign.zeroize();
        self.server_seal.zeroize();
        self.exported_session_key.zeroize();
    }
}

impl SessionKeys {
    fn derive(flags: u32, exported_session_key: [u8; 16]) -> Self {
        // SEALKEY with ESS (MS-NLMP §3.4.5.3): 128-bit, 56-bit or 40-bit key material.
        let seal_len = if flags & flags::N128 != 0 {
            16
        } else if flags & flags::N56 != 0 {
            7
        } else {
            5
        };
        let seal_material = &exported_session_key[..seal_len];
        Self {
            flags,
            client_sign: crypto::md5(&[&exported_session_key, CLIENT_SIGN_MAGIC]),
            client_seal: crypto::md5(&[seal_material, CLIENT_SEAL_MAGIC]),
            server_sign: crypto::md5(&[&exported_session_key, SERVER_SIGN_MAGIC]),
            server_seal: crypto::md5(&[seal_material, SERVER_SEAL_MAGIC]),
            exported_session_key,
        }
    }

    /// Signature of an outgoing (server) message with the server keys.
    pub fn sign_server(&self, seq: u32, text: &[u8]) -> [u8; 16] {
        sign(&self.server_sign, &self.server_seal, seq, text)
    }

    /// Checks a client's signature (raw 16 bytes) with the client keys, in constant time.
    pub fn verify_client(&self, seq: u32, text: &[u8], signature: &[u8]) -> bool {
        verify_signature(&self.client_sign, &self.client_seal, seq, text, signature)
    }

    /// Checks a client's signature given as hex (any case, e.g. the `response`
    /// parameter), in constant time.
    pub fn verify_client_hex(&self, seq: u32, text: &[u8], signature_hex: &str) -> bool {
        parse_signature_hex(signature_hex).is_some_and(|sig| self.verify_client(seq, text, &sig))
    }
}

/// Windows-style upper-casing for NTOWFv2: one-to-one mappings only (`ß` stays `ß`).
fn upper_1to1(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// NTOWFv2 / ResponseKeyNT = HMAC_MD5(NT hash, UTF16LE(UPPER(user) ‖ domain)).
fn ntowf_v2(nt_hash: &[u8; 16], user: &str, domain: &str) -> [u8; 16] {
    let mut id = utf16le(&upper_1to1(user));
    id.extend(utf16le(domain));
    let out = crypto::hmac_md5(nt_hash, &[&id]);
    id.zeroize();
    out
}

/// Verifies the NTLMv2 response of `msg` for `server_challenge` against the user's
/// `nt_hash` (MD4 of the UTF-16LE password) and derives the session keys.
///
/// The user and domain are taken from the message as sent (the caller must have looked
/// up `nt_hash` for exactly that identity). The caller must also make sure the server
/// challenge is used once only, and may check [`AuthenticateMessage::client_timestamp`]
/// against its clock.
pub fn verify_ntlmv2(
    msg: &AuthenticateMessage,
    server_challenge: [u8; 8],
    nt_hash: [u8; 16],
) -> Result<SessionKeys, NtlmError> {
    if msg.flags & flags::ANONYMOUS != 0 || (msg.nt_response.is_empty() && msg.user.is_empty()) {
        return Err(NtlmError::Anonymous);
    }
    if msg.nt_response.len() <= 24 {
        return Err(NtlmError::NtlmV1Refused);
    }
    if msg.nt_response.len() < 16 + BLOB_AVPAIRS {
        return Err(NtlmError::Malformed("NTLMv2 response too short"));
    }
    let missing = REQUIRED_FLAGS & !msg.flags;
    if missing != 0 {
        return Err(NtlmError::MissingFlags(missing));
    }
    let (proof, blob) = msg.nt_response.split_at(16);
    if blob.first() != Some(&1) || blob.get(1) != Some(&1) {
        return Err(NtlmError::Malformed("unknown NTLMv2 blob version"));
    }
    let mut nt_hash = nt_hash;
    let mut response_key = ntowf_v2(&nt_hash, &msg.user, &msg.domain);
    nt_hash.zeroize();
    let expected = crypto::hmac_md5(&response_key, &[&server_challenge, blob]);
    if !bool::from(expected.ct_eq(proof)) {
        response_key.zeroize();
        return Err(NtlmError::WrongResponse);
    }
    // SessionBaseKey; for NTLMv2 KeyExchangeKey = SessionBaseKey.
    let mut key_exchange_key = crypto::hmac_md5(&response_key, &[&expected]);
    response_key.zeroize();
    let exported = match msg.encrypted_random_session_key {
        Some(mut k) => {
            crypto::rc4(&key_exchange_key, &mut k);
            k
        }
        None => {
            key_exchange_key.zeroize();
            return Err(NtlmError::Malformed(
                "KEY_EXCH without EncryptedRandomSessionKey",
            ));
        }
    };
    key_exchange_key.zeroize();
    Ok(SessionKeys::derive(msg.flags, exported))
}

/// Checks the MIC of `msg` (when it has one) against the CHALLENGE_MESSAGE bytes this
/// server sent: `HMAC_MD5(ExportedSessionKey, CHALLENGE ‖ AUTHENTICATE with MIC zeroed)`
/// (connectionless mode has no NEGOTIATE_MESSAGE). A message without MIC passes.
pub fn verify_mic(
    msg: &AuthenticateMessage,
    challenge_message: &[u8],
    keys: &SessionKeys,
) -> Result<(), NtlmError> {
    let Some(mic) = msg.mic else {
        return Ok(());
    };
    let mut zeroed = msg.raw.clone();
    if let Some(field) = zeroed.get_mut(72..88) {
        field.fill(0);
    }
    let expected = crypto::hmac_md5(&keys.exported_session_key, &[challenge_message, &zeroed]);
    if bool::from(expected.ct_eq(&mic)) {
        Ok(())
    } else {
        Err(NtlmError::BadMic)
    }
}

/// First 8 bytes of HMAC_MD5(SignKey, LE32(seq) ‖ text).
fn checksum(sign_key: &[u8; 16], seq: u32, text: &[u8]) -> [u8; 8] {
    let mac = crypto::hmac_md5(sign_key, &[&seq.to_le_bytes(), text]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&mac[..8]);
    out
}

/// Datagram-mode NTLM signature with ESS and KEY_EXCH (MS-NLMP §3.4.4.2):
/// `01000000 ‖ RC4(MD5(SealKey ‖ LE32(seq)), checksum) ‖ LE32(seq)`, the RC4 state being
/// re-keyed for every message.
pub fn sign(sign_key: &[u8; 16], seal_key: &[u8; 16], seq: u32, text: &[u8]) -> [u8; 16] {
    let mut sum = checksum(sign_key, seq, text);
    let mut rc4_key = crypto::md5(&[seal_key, &seq.to_le_bytes()]);
    crypto::rc4(&rc4_key, &mut sum);
    rc4_key.zeroize();
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&1u32.to_le_bytes());
    out[4..12].copy_from_slice(&sum);
    out[12..].copy_from_slice(&seq.to_le_bytes());
    out
}

/// Checks a signature made by [`sign`] with the same keys, in constant time.
pub fn verify_signature(
    sign_key: &[u8; 16],
    seal_key: &[u8; 16],
    seq: u32,
    text: &[u8],
    signature: &[u8],
) -> bool {
    let expected = sign(sign_key, seal_key, seq, text);
    bool::from(expected.ct_eq(signature))
}

/// Checks a client signature with the client keys of `keys` (same as
/// [`SessionKeys::verify_client`]).
pub fn verify_client(keys: &SessionKeys, seq: u32, text: &[u8], signature: &[u8]) -> bool {
    keys.verify_client(seq, text, signature)
}

/// Upper-case hex, as SIPE and Lync render signatures (`rspauth`, `response`).
pub fn to_hex_upper(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

/// Parses a 32-digit hex signature (any case).
pub fn parse_signature_hex(s: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// The fields of an MS-SIPAE signature string (MS-SIPAE §3.2.5.1.2, as implemented by
/// SIPE's `sipmsg_breakdown_get_string`). All values are the raw header texts, empty
/// when absent (an empty field is rendered `<>`):
///
/// * `protocol`: `NTLM` (or `Kerberos`, `TLS-DSK`).
/// * `rand` / `num`: `crand`/`cnum` of a client `Authorization`, or `srand`/`snum` of
///   the server's `Authentication-Info`.
/// * `realm`, `target_name`: the `realm` / `targetname` of that header.
/// * `call_id`; `cseq_number` and `method` from `CSeq` (for a response the method is
///   the CSeq method).
/// * `from_uri`/`from_tag`, `to_uri`/`to_tag`: see [`uri_of`] and [`tag_of`].
/// * `pai_sip_uri` / `pai_tel_uri`: the `sip:` and `tel:` URIs of
///   `P-Asserted-Identity`, see [`pai_uris`].
/// * `expires`: the `Expires` header value.
/// * `response_code`: the status code for responses, `None` for requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureFields<'a> {
    /// Auth protocol name, `NTLM`.
    pub protocol: &'a str,
    /// `crand` / `srand`.
    pub rand: &'a str,
    /// `cnum` / `snum`.
    pub num: &'a str,
    /// `realm` param.
    pub realm: &'a str,
    /// `targetname` param.
    pub target_name: &'a str,
    /// `Call-ID`.
    pub call_id: &'a str,
    /// Number part of `CSeq`.
    pub cseq_number: &'a str,
    /// Request method (CSeq method for responses).
    pub method: &'a str,
    /// URI of `From`.
    pub from_uri: &'a str,
    /// `tag` of `From`.
    pub from_tag: &'a str,
    /// URI of `To`.
    pub to_uri: &'a str,
    /// `tag` of `To`.
    pub to_tag: &'a str,
    /// `sip:` URI of `P-Asserted-Identity`.
    pub pai_sip_uri: &'a str,
    /// `tel:` URI of `P-Asserted-Identity`.
    pub pai_tel_uri: &'a str,
    /// `Expires` header value.
    pub expires: &'a str,
    /// Status code for responses.
    pub response_code: Option<u16>,
}

fn push_field(out: &mut String, v: &str) {
    out.push('<');
    out.push_str(v);
    out.push('>');
}

/// The signature string of authentication protocol version 3 and later:
/// `<proto><rand><num><realm><targetname><Call-ID><CSeq#><method><From URI><From tag>
/// <To URI><To tag><PAI sip URI><PAI tel URI><Expires>` plus `<code>` for responses.
pub fn sipae_sign_string(f: &SignatureFields<'_>) -> String {
    let mut out = String::with_capacity(256);
    for v in [
        f.protocol,
        f.rand,
        f.num,
        f.realm,
        f.target_name,
        f.call_id,
        f.cseq_number,
        f.method,
        f.from_uri,
        f.from_tag,
        f.to_uri,
        f.to_tag,
        f.pai_sip_uri,
        f.pai_tel_uri,
        f.expires,
    ] {
        push_field(&mut out, v);
    }
    if let Some(code) = f.response_code {
        push_field(&mut out, &code.to_string());
    }
    out
}

/// The signature string of protocol version 2 (OCS 2007): like
/// [`sipae_sign_string`] without the To URI and the two PAI fields.
pub fn sipae_sign_string_v2(f: &SignatureFields<'_>) -> String {
    let mut out = String::with_capacity(200);
    for v in [
        f.protocol,
        f.rand,
        f.num,
        f.realm,
        f.target_name,
        f.call_id,
        f.cseq_number,
        f.method,
        f.from_uri,
        f.from_tag,
        f.to_tag,
        f.expires,
    ] {
        push_field(&mut out, v);
    }
    if let Some(code) = f.response_code {
        push_field(&mut out, &code.to_string());
    }
    out
}

/// The URI of a name-addr / addr-spec header value (`From`, `To`,
/// `P-Asserted-Identity`): the text inside `<>`, or without brackets the text before
/// the first `;`. Trimmed; empty if there is none.
pub fn uri_of(header_value: &str) -> &str {
    if let Some(open) = header_value.find('<') {
        let rest = header_value.get(open + 1..).unwrap_or("");
        return rest.split('>').next().unwrap_or("").trim();
    }
    header_value.split(';').next().unwrap_or("").trim()
}

/// The `tag` parameter of a `From`/`To` header value (after the URI; the name is
/// matched case-insensitively), up to the next `;`. Empty if absent.
pub fn tag_of(header_value: &str) -> &str {
    let params = match header_value.find('<') {
        Some(open) => {
            let after = header_value.get(open..).unwrap_or("");
            after
                .find('>')
                .and_then(|c| after.get(c + 1..))
                .unwrap_or("")
        }
        None => header_value
            .find(';')
            .and_then(|i| header_value.get(i..))
            .unwrap_or(""),
    };
    for p in params.split(';').skip(1) {
        let (name, value) = p.split_once('=').unwrap_or((p, ""));
        if name.trim().eq_ignore_ascii_case("tag") {
            return value.trim();
        }
    }
    ""
}

/// The first `sip:`/`sips:` URI and the first `tel:` URI among
/// `P-Asserted-Identity` header values (each value may list several identities
/// separated by commas). Scheme matching ignores case; URIs are returned as written.
pub fn pai_uris<'a>(values: impl IntoIterator<Item = &'a str>) -> (&'a str, &'a str) {
    let mut sip = "";
    let mut tel = "";
    for value in values {
        for ident in split_identities(value) {
            let uri = uri_of(ident);
            let lower_prefix = |p: &str| {
                uri.get(..p.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(p))
            };
            if sip.is_empty() && (lower_prefix("sip:") || lower_prefix("sips:")) {
                sip = uri;
            } else if tel.is_empty() && lower_prefix("tel:") {
                tel = uri;
            }
        }
    }
    (sip, tel)
}

/// Splits a header value on commas outside quotes and angle brackets.
fn split_identities(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut in_angle = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ',' if !in_quote && !in_angle => {
                out.push(value.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value.get(start..).unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::nt_hash;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // MS-NLMP §4.2.4 NTLMv2 example AUTHENTICATE_MESSAGE (as dumped in SIPE's tests).
    const NLMP_AUTH: &str = "4e544c4d5353500003000000180018006c00000054005400840000000c000c00480000000800080054000000100010005c00000010001000d8000000358288e20501280a0000000f44006f006d00610069006e00550073006500720043004f004d005000550054004500520086c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa68cd0ab851e51c96aabc927bebef6a1c01010000000000000000000000000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e0001000c005300650072007600650072000000000000000000c5dad2544fc9799094ce1ce90bc9d03e";
    const NLMP_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];

    // Real Communicator 2007 R2 ↔ OCS 2007 R2 exchange (SIPE sip-sec-ntlm-tests.c).
    const OCS_TYPE2: &str = "4E544C4D53535000020000000000000038000000F38298E2DD1BAAF4E7E218D1000000000000000096009600380000000502CE0E0000000F02000A0043004F0053004D004F000100180043004F0053004D004F002D004F00430053002D00520032000400160063006F0073006D006F002E006C006F00630061006C000300300063006F0073006D006F002D006F00630073002D00720032002E0063006F0073006D006F002E006C006F00630061006C000500160063006F0073006D006F002E006C006F00630061006C0000000000";
    const OCS_TYPE3_B64: &str = "TlRMTVNTUAADAAAAGAAYAHIAAADGAMYAigAAAAoACgBIAAAACAAIAFIAAAAYABgAWgAAABAAEABQAQAAVYKYYgUCzg4AAAAPQwBPAFMATQBPAFUAcwBlAHIAQwBPAFMATQBPAC0ATwBDAFMALQBSADIAoeku/k4Hi/fFwASazGFmwtauh1yw/apBjcDIAK527KYG0rn769BHMQEBAAAAAAAAWVGaFye5ygHWrodcsP2qQQAAAAACAAoAQwBPAFMATQBPAAEAGABDAE8AUwBNAE8ALQBPAEMAUwAtAFIAMgAEABYAYwBvAHMAbQBvAC4AbABvAGMAYQBsAAMAMABjAG8AcwBtAG8ALQBvAGMAcwAtAHIAMgAuAGMAbwBzAG0AbwAuAGwAbwBjAGEAbAAFABYAYwBvAHMAbQBvAC4AbABvAGMAYQBsAAAAAAAAAAAAMctznhyoCkmFkeiueXEV5A==";
    const OCS_CHALLENGE: [u8; 8] = [0xDD, 0x1B, 0xAA, 0xF4, 0xE7, 0xE2, 0x18, 0xD1];
    const OCS_REQUEST_SIG_STRING: &str = "<NTLM><13317733><1><SIP Communications Service><cosmo-ocs-r2.cosmo.local><4037df9284354df39065195bd57a4b14><3><REGISTER><sip:user@cosmo.local><3e49177a52><sip:user@cosmo.local><><><><>";
    const OCS_RESPONSE_SIG_STRING: &str = "<NTLM><9616454F><1><SIP Communications Service><cosmo-ocs-r2.cosmo.local><4037df9284354df39065195bd57a4b14><3><REGISTER><sip:user@cosmo.local><3e49177a52><sip:user@cosmo.local><5E61CCD925D17E043D9A74835A88F664><><><7200><200>";

    fn ocs_keys() -> (AuthenticateMessage, SessionKeys) {
        let bytes = decode_gssapi_data(OCS_TYPE3_B64).unwrap();
        let msg = parse_authenticate(&bytes).unwrap();
        let keys = verify_ntlmv2(&msg, OCS_CHALLENGE, nt_hash("Pa$$word")).unwrap();
        (msg, keys)
    }

    #[test]
    fn ms_nlmp_ntlmv2_intermediates() {
        let nt = nt_hash("Password");
        let key = ntowf_v2(&nt, "User", "Domain");
        assert_eq!(hex::encode(key), "0c868a403bfd7a93a3001ef22ef02e3f");
        let msg = parse_authenticate(&unhex(NLMP_AUTH)).unwrap();
        let (proof, blob) = msg.nt_response.split_at(16);
        assert_eq!(hex::encode(proof), "68cd0ab851e51c96aabc927bebef6a1c");
        let computed = crypto::hmac_md5(&key, &[&NLMP_CHALLENGE, blob]);
        assert_eq!(hex::encode(computed), "68cd0ab851e51c96aabc927bebef6a1c");
        let session_base_key = crypto::hmac_md5(&key, &[&computed]);
        assert_eq!(
            hex::encode(session_base_key),
            "8de40ccadbc14a82f15cb0ad0de95ca3"
        );
        // RC4(KeyExchangeKey, RandomSessionKey 55..55) = EncryptedRandomSessionKey.
        let mut rsk = [0x55u8; 16];
        crypto::rc4(&session_base_key, &mut rsk);
        assert_eq!(hex::encode(rsk), "c5dad2544fc9799094ce1ce90bc9d03e");
    }

    #[test]
    fn ms_nlmp_ntlmv2_full_message() {
        let msg = parse_authenticate(&unhex(NLMP_AUTH)).unwrap();
        assert_eq!(msg.flags, 0xe288_8235);
        assert_eq!(msg.user, "User");
        assert_eq!(msg.domain, "Domain");
        assert_eq!(msg.workstation, "COMPUTER");
        assert_eq!(msg.version, Some([5, 1, 0x28, 0x0a, 0, 0, 0, 0x0f]));
        assert_eq!(msg.client_timestamp, Some(0));
        assert_eq!(msg.mic, None);
        let keys = verify_ntlmv2(&msg, NLMP_CHALLENGE, nt_hash("Password")).unwrap();
        assert_eq!(keys.exported_session_key, [0x55; 16]);
        assert_eq!(
            hex::encode(keys.client_sign),
            "4788dc861b4782f35d43fd98fe1a2d39"
        );
        assert_eq!(
            hex::encode(keys.client_seal),
            "59f600973cc4960a25480a7c196e4c58"
        );
        // MS-NLMP §4.2.4.4 checksum of "Plaintext" (UTF-16LE), seq 0, before RC4.
        let text = utf16le("Plaintext");
        assert_eq!(
            hex::encode(checksum(&keys.client_sign, 0, &text)),
            "70352851f2564309"
        );
        // MS-NLMP §4.2.4.3: RC4(ClientSealingKey, "Plaintext").
        let mut sealed = text.clone();
        crypto::rc4(&keys.client_seal, &mut sealed);
        assert_eq!(hex::encode(sealed), "54e50165bf1936dc996020c1811b0f06fb5f");
    }

    #[test]
    fn wrong_password_user_domain_or_challenge() {
        let msg = parse_authenticate(&unhex(NLMP_AUTH)).unwrap();
        let err = |m: &AuthenticateMessage, c, p| verify_ntlmv2(m, c, nt_hash(p)).unwrap_err();
        assert_eq!(
            err(&msg, NLMP_CHALLENGE, "password"),
            NtlmError::WrongResponse
        );
        assert_eq!(err(&msg, [0; 8], "Password"), NtlmError::WrongResponse);
        let mut other = msg.clone();
        other.domain = "Other".into();
        assert_eq!(
            err(&other, NLMP_CHALLENGE, "Password"),
            NtlmError::WrongResponse
        );
        // User names are case-insensitive (upper-cased), domains are not folded here.
        let mut lower = msg.clone();
        lower.user = "user".into();
        assert!(verify_ntlmv2(&lower, NLMP_CHALLENGE, nt_hash("Password")).is_ok());
        // Tampered blob.
        let mut tampered = msg.clone();
        let last = tampered.nt_response.len() - 5;
        tampered.nt_response[last] ^= 1;
        assert_eq!(
            err(&tampered, NLMP_CHALLENGE, "Password"),
            NtlmError::WrongResponse
        );
    }

    #[test]
    fn refuses_v1_anonymous_and_weak_flags() {
        let msg = parse_authenticate(&unhex(NLMP_AUTH)).unwrap();
        let mut v1 = msg.clone();
        v1.nt_response.truncate(24);
        assert_eq!(
            verify_ntlmv2(&v1, NLMP_CHALLENGE, nt_hash("Password")).unwrap_err(),
            NtlmError::NtlmV1Refused
        );
        let mut lm_only = msg.clone();
        lm_only.nt_response.clear();
        assert_eq!(
            verify_ntlmv2(&lm_only, NLMP_CHALLENGE, nt_hash("Password")).unwrap_err(),
            NtlmError::NtlmV1Refused
        );
        let mut anon = msg.clone();
        anon.nt_response.clear();
        anon.user.clear();
        assert_eq!(
            verify_ntlmv2(&anon, NLMP_CHALLENGE, nt_hash("Password")).unwrap_err(),
            NtlmError::Anonymous
        );
        let mut no_ess = msg.clone();
        no_ess.flags &= !flags::EXTENDED_SESSIONSECURITY;
        assert_eq!(
            verify_ntlmv2(&no_ess, NLMP_CHALLENGE, nt_hash("Password")).unwrap_err(),
            NtlmError::MissingFlags(flags::EXTENDED_SESSIONSECURITY)
        );
        let mut no_key = msg.clone();
        no_key.encrypted_random_session_key = None;
        assert!(matches!(
            verify_ntlmv2(&no_key, NLMP_CHALLENGE, nt_hash("Password")).unwrap_err(),
            NtlmError::Malformed(_)
        ));
    }

    #[test]
    fn ocs2007r2_real_exchange() {
        let (msg, keys) = ocs_keys();
        assert_eq!(msg.user, "User");
        assert_eq!(msg.domain, "COSMO");
        assert_eq!(msg.workstation, "COSMO-OCS-R2");
        assert_eq!(msg.flags, 0x6298_8255);
        assert_eq!(msg.client_timestamp, Some(0x01CA_B927_179A_5159));
        // Client request signature, checked with the client keys.
        let req_sig = keys.verify_client_hex(
            SIPAE_SEQ,
            OCS_REQUEST_SIG_STRING.as_bytes(),
            "0100000029618e9651b65a7764000000",
        );
        assert!(req_sig);
        assert_eq!(
            to_hex_upper(&sign(
                &keys.client_sign,
                &keys.client_seal,
                SIPAE_SEQ,
                OCS_REQUEST_SIG_STRING.as_bytes()
            )),
            "0100000029618E9651B65A7764000000"
        );
        // Server response signature with the server keys.
        let rsp = keys.sign_server(SIPAE_SEQ, OCS_RESPONSE_SIG_STRING.as_bytes());
        assert_eq!(to_hex_upper(&rsp), "01000000E615438A917661BE64000000");
        // Wrong text, seq or key direction fails.
        assert!(!keys.verify_client(SIPAE_SEQ, b"<NTLM>", &rsp));
        assert!(!keys.verify_client(SIPAE_SEQ, OCS_RESPONSE_SIG_STRING.as_bytes(), &rsp));
        assert!(!keys.verify_client_hex(
            SIPAE_SEQ + 1,
            OCS_REQUEST_SIG_STRING.as_bytes(),
            "0100000029618e9651b65a7764000000"
        ));
        assert!(!keys.verify_client_hex(SIPAE_SEQ, OCS_REQUEST_SIG_STRING.as_bytes(), "zz"));
        assert!(verify_client(
            &keys,
            SIPAE_SEQ,
            OCS_REQUEST_SIG_STRING.as_bytes(),
            &parse_signature_hex("0100000029618E9651B65A7764000000").unwrap()
        ));
        // No MIC in this exchange.
        assert_eq!(verify_mic(&msg, &unhex(OCS_TYPE2), &keys), Ok(()));
    }

    #[test]
    fn ocs2007r2_signature_strings_from_fields() {
        let request = SignatureFields {
            protocol: "NTLM",
            rand: "13317733",
            num: "1",
            realm: "SIP Communications Service",
            target_name: "cosmo-ocs-r2.cosmo.local",
            call_id: "4037df9284354df39065195bd57a4b14",
            cseq_number: "3",
            method: "REGISTER",
            from_uri: uri_of("<sip:user@cosmo.local>;tag=3e49177a52;epid=c8ca638a15"),
            from_tag: tag_of("<sip:user@cosmo.local>;tag=3e49177a52;epid=c8ca638a15"),
            to_uri: uri_of("<sip:user@cosmo.local>"),
            to_tag: tag_of("<sip:user@cosmo.local>"),
            ..Default::default()
        };
        assert_eq!(sipae_sign_string(&request), OCS_REQUEST_SIG_STRING);
        let to = "<sip:user@cosmo.local>;tag=5E61CCD925D17E043D9A74835A88F664";
        let response = SignatureFields {
            rand: "9616454F",
            from_uri: uri_of("\"User\"<sip:user@cosmo.local>;tag=3e49177a52;epid=c8ca638a15"),
            to_uri: uri_of(to),
            to_tag: tag_of(to),
            expires: "7200",
            response_code: Some(200),
            ..request.clone()
        };
        assert_eq!(sipae_sign_string(&response), OCS_RESPONSE_SIG_STRING);
    }

    #[test]
    fn sign_string_with_pai_and_v2() {
        // SIPE's "Authentication Algorithm's v4 Signature String" test (180 Ringing).
        let pai = "\"recipient\"<SIP:recipient@company.com>";
        let (pai_sip, pai_tel) = pai_uris([pai]);
        let from = "\"Sender\"<sip:sender@company.com>;tag=2420628112;epid=54392f1bbf01";
        let to = "\"recipient\"<sip:recipient@company.com>;tag=7aee15546a;epid=3102EB8BD1";
        let f = SignatureFields {
            protocol: "NTLM",
            rand: "1B6D47A1",
            num: "11",
            realm: "SIP Communications Service",
            target_name: "LOC-COMPANYT-FE03.COMPANY.COM",
            call_id: "41CEg82ECa0AC8i3DD7mE673t9CF4b19DAxF780x",
            cseq_number: "1",
            method: "INVITE",
            from_uri: uri_of(from),
            from_tag: tag_of(from),
            to_uri: uri_of(to),
            to_tag: tag_of(to),
            pai_sip_uri: pai_sip,
            pai_tel_uri: pai_tel,
            expires: "",
            response_code: Some(180),
        };
        assert_eq!(
            sipae_sign_string(&f),
            "<NTLM><1B6D47A1><11><SIP Communications Service><LOC-COMPANYT-FE03.COMPANY.COM><41CEg82ECa0AC8i3DD7mE673t9CF4b19DAxF780x><1><INVITE><sip:sender@company.com><2420628112><sip:recipient@company.com><7aee15546a><SIP:recipient@company.com><><><180>"
        );
        // Version 2 form (SIPE's OCS 2007 example).
        let v2 = SignatureFields {
            protocol: "NTLM",
            rand: "0878F41B",
            num: "1",
            realm: "SIP Communications Service",
            target_name: "ocs1.ocs.provo.novell.com",
            call_id: "8592g5DCBa1694i5887m0D0Bt2247b3F38xAE9Fx",
            cseq_number: "3",
            method: "REGISTER",
            from_uri: "sip:gabriel@ocs.provo.novell.com",
            from_tag: "2947328781",
            to_uri: "sip:gabriel@ocs.provo.novell.com",
            to_tag: "B816D65C2300A32CFA6D371F2AF537FD",
            expires: "900",
            response_code: Some(200),
            ..Default::default()
        };
        assert_eq!(
            sipae_sign_string_v2(&v2),
            "<NTLM><0878F41B><1><SIP Communications Service><ocs1.ocs.provo.novell.com><8592g5DCBa1694i5887m0D0Bt2247b3F38xAE9Fx><3><REGISTER><sip:gabriel@ocs.provo.novell.com><2947328781><B816D65C2300A32CFA6D371F2AF537FD><900><200>"
        );
    }

    #[test]
    fn header_helpers() {
        assert_eq!(uri_of("sip:a@b;tag=1"), "sip:a@b");
        assert_eq!(tag_of("sip:a@b;tag=1;x=2"), "1");
        assert_eq!(tag_of("<sip:a@b;tag=inside>;epid=3;TAG=out"), "out");
        assert_eq!(tag_of("<sip:a@b;tag=inside>"), "");
        assert_eq!(uri_of("\"A, B\" <sip:a@b>"), "sip:a@b");
        assert_eq!(uri_of(""), "");
        assert_eq!(uri_of("<unterminated"), "unterminated");
        assert_eq!(
            pai_uris(["\"A, B\" <sip:a@b>, <tel:+123>", "<sip:second@b>"]),
            ("sip:a@b", "tel:+123")
        );
        assert_eq!(pai_uris(["<TEL:+1>"]), ("", "TEL:+1"));
        assert_eq!(pai_uris(Vec::<&str>::new()), ("", ""));
    }

    #[test]
    fn challenge_matches_real_ocs_layout() {
        let target = TargetInfo {
            nb_domain: "COSMO".into(),
            nb_computer: "COSMO-OCS-R2".into(),
            dns_domain: "cosmo.local".into(),
            dns_computer: "cosmo-ocs-r2.cosmo.local".into(),
        };
        let mut ours = build_challenge(OCS_CHALLENGE, &target, None);
        // Identical to the real OCS 2007 R2 message except the VERSION field.
        let real = unhex(OCS_TYPE2);
        assert_eq!(&ours[48..56], &SERVER_VERSION);
        ours[48..56].copy_from_slice(&real[48..56]);
        assert_eq!(to_hex_upper(&ours), OCS_TYPE2);

        let with_ts = build_challenge([9; 8], &target, Some(filetime_from_unix_ms(0)));
        assert_eq!(u32_at(&with_ts, 20), Some(CHALLENGE_FLAGS));
        assert_eq!(&with_ts[24..32], &[9; 8]);
        let ti_len = u16_at(&with_ts, 40).unwrap() as usize;
        assert_eq!(ti_len, real.len() - 56 + 12);
        let ti = &with_ts[56..];
        assert_eq!(ti.len(), ti_len);
        let pairs: Vec<(u16, &[u8])> = av_pairs(ti).collect();
        assert_eq!(
            pairs.iter().map(|p| p.0).collect::<Vec<_>>(),
            [2, 1, 4, 3, 5, 7]
        );
        assert_eq!(pairs[5].1, &116_444_736_000_000_000u64.to_le_bytes());
        assert!(ti.ends_with(&[0, 0, 0, 0]));
    }

    #[test]
    fn round_trip_with_mic() {
        // A client built here (the MS-NLMP algorithm run forwards) against our server.
        let target = TargetInfo {
            nb_domain: "CONTOSO".into(),
            nb_computer: "FE01".into(),
            dns_domain: "contoso.com".into(),
            dns_computer: "fe01.contoso.com".into(),
        };
        let server_challenge = [0x42; 8];
        let challenge = build_challenge(server_challenge, &target, Some(1));
        let ti = challenge[56..].to_vec();
        let user = "alice";
        let domain = "CONTOSO";
        let nt = nt_hash("S3cret!");
        let key = ntowf_v2(&nt, user, domain);
        // Blob with MsvAvFlags = MIC present inserted before EOL.
        let mut avs = ti[..ti.len() - 4].to_vec();
        avs.extend_from_slice(&[6, 0, 4, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
        blob.extend_from_slice(&7u64.to_le_bytes());
        blob.extend_from_slice(&[0xcc; 8]);
        blob.extend_from_slice(&[0; 4]);
        blob.extend_from_slice(&avs);
        blob.extend_from_slice(&[0; 4]);
        let proof = crypto::hmac_md5(&key, &[&server_challenge, &blob]);
        let mut nt_resp = proof.to_vec();
        nt_resp.extend_from_slice(&blob);
        let sbk = crypto::hmac_md5(&key, &[&proof]);
        let random_session_key = [0x77u8; 16];
        let mut ersk = random_session_key;
        crypto::rc4(&sbk, &mut ersk);
        let flags = 0x6298_8255u32;
        let payloads: [Vec<u8>; 6] = [
            vec![0; 24],
            nt_resp,
            utf16le(domain),
            utf16le(user),
            utf16le("WS"),
            ersk.to_vec(),
        ];
        let mut msg = Vec::new();
        msg.extend_from_slice(SIGNATURE);
        msg.extend_from_slice(&3u32.to_le_bytes());
        let mut off = 88u32;
        for p in &payloads {
            msg.extend_from_slice(&(p.len() as u16).to_le_bytes());
            msg.extend_from_slice(&(p.len() as u16).to_le_bytes());
            msg.extend_from_slice(&off.to_le_bytes());
            off += p.len() as u32;
        }
        msg.extend_from_slice(&flags.to_le_bytes());
        msg.extend_from_slice(&SERVER_VERSION);
        msg.extend_from_slice(&[0; 16]); // MIC placeholder
        for p in &payloads {
            msg.extend_from_slice(p);
        }
        let mic = crypto::hmac_md5(&random_session_key, &[&challenge, &msg]);
        msg[72..88].copy_from_slice(&mic);

        let parsed = parse_authenticate(&msg).unwrap();
        assert_eq!(parsed.mic, Some(mic));
        assert_eq!(parsed.client_timestamp, Some(7));
        let keys = verify_ntlmv2(&parsed, server_challenge, nt_hash("S3cret!")).unwrap();
        assert_eq!(keys.exported_session_key, random_session_key);
        assert_eq!(verify_mic(&parsed, &challenge, &keys), Ok(()));
        assert_eq!(
            verify_mic(&parsed, &build_challenge([0; 8], &target, Some(1)), &keys),
            Err(NtlmError::BadMic)
        );
        // Client and server derive mirror-image keys: what one signs the other checks.
        let sig = sign(&keys.client_sign, &keys.client_seal, SIPAE_SEQ, b"hello");
        assert!(keys.verify_client(SIPAE_SEQ, b"hello", &sig));
        let srv = keys.sign_server(SIPAE_SEQ, b"hello");
        assert!(verify_signature(
            &keys.server_sign,
            &keys.server_seal,
            SIPAE_SEQ,
            b"hello",
            &srv
        ));
        assert_ne!(sig, srv);
        // MIC announced but payload starts before the MIC field: malformed.
        let mut short = msg.clone();
        short[16..20].copy_from_slice(&80u32.to_le_bytes()); // LM response offset
        assert!(parse_authenticate(&short).is_err());
    }

    #[test]
    fn parse_rejects_bad_messages() {
        let good = unhex(NLMP_AUTH);
        assert!(parse_authenticate(&[]).is_err());
        assert!(parse_authenticate(&good[..63]).is_err());
        let mut bad_sig = good.clone();
        bad_sig[0] = b'X';
        assert!(parse_authenticate(&bad_sig).is_err());
        let mut bad_type = good.clone();
        bad_type[8] = 2;
        assert!(parse_authenticate(&bad_type).is_err());
        // Field past the end.
        let mut oob = good.clone();
        oob[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            parse_authenticate(&oob).unwrap_err(),
            NtlmError::Malformed("field out of bounds")
        );
        // Field overlapping the header.
        let mut overlap = good.clone();
        overlap[32..36].copy_from_slice(&8u32.to_le_bytes());
        assert!(parse_authenticate(&overlap).is_err());
        // Odd UTF-16 length.
        let mut odd = good.clone();
        odd[28] = 11;
        assert!(parse_authenticate(&odd).is_err());
        // Truncated message.
        assert!(parse_authenticate(&good[..good.len() - 1]).is_err());
        // Oversized.
        assert!(parse_authenticate(&vec![0; MAX_MESSAGE_LEN + 1]).is_err());
        assert_eq!(decode_gssapi_data("!!"), Err(NtlmError::BadBase64));
        assert_eq!(decode_gssapi_data(""), Ok(vec![]));
    }

    #[test]
    fn oem_strings_and_upper() {
        assert_eq!(decode_string(b"Us\xe9r", false).unwrap(), "Usér");
        assert_eq!(upper_1to1("straße"), "STRAßE");
        assert_eq!(upper_1to1("émile"), "ÉMILE");
    }

    #[test]
    fn debug_hides_keys() {
        let (msg, keys) = ocs_keys();
        assert_eq!(format!("{keys:?}"), "SessionKeys { .. }");
        let dbg = format!("{msg:?}");
        assert!(dbg.contains("User") && !dbg.contains("nt_response:"));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_authenticate(&bytes);
        }

        #[test]
        fn parse_mutated_never_panics(idx in 0usize..700, val in any::<u8>(), cut in 0usize..700) {
            let mut m = unhex(NLMP_AUTH);
            let n = m.len();
            m[idx % n] = val;
            m.truncate(cut.max(1));
            if let Ok(msg) = parse_authenticate(&m) {
                let _ = verify_ntlmv2(&msg, NLMP_CHALLENGE, nt_hash("Password"));
            }
        }

        #[test]
        fn header_helpers_never_panic(s in "\\PC{0,60}") {
            let _ = uri_of(&s);
            let _ = tag_of(&s);
            let _ = pai_uris([s.as_str()]);
        }
    }
}
