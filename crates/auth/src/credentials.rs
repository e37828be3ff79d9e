//! Derivation of the password hashes confab stores for a user.
//!
//! confab never stores a plaintext password. It keeps exactly the hashes the
//! protocols need: the digest HA1 for the user's realm (MD5 and SHA-256, RFC 7616
//! §3.4.2) and the NT hash (MD4 of the UTF-16LE password, MS-NLMP §3.3.1) that NTLM
//! (MS-SIPAE) needs.

use md4::Md4;
use md5::Md5;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The hashes stored for one user, all lower-case hex.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    /// `MD5(username ":" realm ":" password)`.
    pub ha1_md5: String,
    /// `SHA-256(username ":" realm ":" password)`.
    pub ha1_sha256: String,
    /// `MD4(UTF-16LE(password))`.
    pub nt_hash: String,
}

impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes are password-equivalent: never print them.
        f.write_str("StoredCredentials { .. }")
    }
}

/// Digest HA1 as lower-case hex for the given algorithm's hash function.
pub fn ha1_md5(username: &str, realm: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    hex::encode(h.finalize())
}

/// SHA-256 variant of [`ha1_md5`].
pub fn ha1_sha256(username: &str, realm: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    hex::encode(h.finalize())
}

/// NT hash (MS-NLMP NTOWFv1 input): MD4 over the UTF-16LE encoding of the password.
pub fn nt_hash(password: &str) -> [u8; 16] {
    let utf16: Zeroizing<Vec<u8>> =
        Zeroizing::new(password.encode_utf16().flat_map(u16::to_le_bytes).collect());
    let mut out = [0u8; 16];
    out.copy_from_slice(&Md4::digest(utf16.as_slice()));
    out
}

/// Derives every stored hash for `username` (the user part of the SIP address, which is
/// what digest clients send as `username`) in `realm` (confab uses the user's SIP domain).
pub fn derive(username: &str, realm: &str, password: &str) -> StoredCredentials {
    StoredCredentials {
        ha1_md5: ha1_md5(username, realm, password),
        ha1_sha256: ha1_sha256(username, realm, password),
        nt_hash: hex::encode(nt_hash(password)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_ha1() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life
        assert_eq!(
            ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn rfc7616_sha256_ha1() {
        // RFC 7616 §3.9.1: HA1 for Mufasa / http-auth@example.org / Circle of Life
        let ha1 = ha1_sha256("Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(
            ha1,
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
    }

    #[test]
    fn ms_nlmp_nt_hash() {
        // MS-NLMP §4.2.2.1.2: NTOWFv1("Password") = a4f49c406510bdcab6824ee7c30fd852
        assert_eq!(
            hex::encode(nt_hash("Password")),
            "a4f49c406510bdcab6824ee7c30fd852"
        );
    }

    #[test]
    fn debug_hides_hashes() {
        let c = derive("alice", "example.com", "pw");
        assert!(!format!("{c:?}").contains(&c.ha1_md5));
    }
}
