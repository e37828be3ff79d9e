//! Authentication for confab: SIP digest (RFC 7616 / RFC 2617), MS-SIPAE NTLM and
//! rate limiting of authentication failures. Everything here is sans-IO: callers pass
//! in header values, stored credentials, randomness and the current time.
//!
//! - [`params`]: parser for `Scheme name=value, name="quoted"` header values.
//! - [`digest`]: Digest server (stateless HMAC nonces, nonce-count replay table).
//! - [`ntlm`]: connectionless NTLMv2 acceptor and MS-SIPAE message signatures.
//! - [`ratelimit`]: bounded per-key failure limiter.
//! - [`tokens`]: keyed stateless tokens (signed Record-Route entries).
//! - [`credentials`]: the password hashes stored per user.

pub mod credentials;
mod crypto;
pub mod digest;
pub mod ntlm;
pub mod params;
pub mod ratelimit;
pub mod tokens;
