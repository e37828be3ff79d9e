//! Keyed tokens that let the server recognise what it issued earlier (for
//! instance its own Record-Route entries) without keeping state: an HMAC-SHA256
//! of the parts under a key derived from the server secret, compared in constant
//! time.

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Bytes of the MAC kept in a token (hex-encoded: twice as many characters).
const TOKEN_BYTES: usize = 12;

/// Issues and checks tokens under one key.
pub struct TokenKey {
    key: [u8; 32],
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").finish_non_exhaustive()
    }
}

impl Drop for TokenKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl TokenKey {
    /// A key for one purpose (`label`), derived from the server secret, so that
    /// tokens of one purpose are never valid for another.
    pub fn derive(secret: &[u8; 32], label: &str) -> TokenKey {
        TokenKey {
            key: crate::crypto::hmac_sha256(secret, &[b"confab token key\0", label.as_bytes()]),
        }
    }

    /// The token for `parts` (lower-case hex). Parts are length-prefixed, so
    /// `["ab", "c"]` and `["a", "bc"]` differ.
    pub fn issue(&self, parts: &[&[u8]]) -> String {
        hex::encode(self.mac(parts))
    }

    /// Whether `token` is the one issued for `parts` (constant time).
    pub fn check(&self, token: &str, parts: &[&[u8]]) -> bool {
        let Ok(given) = hex::decode(token) else {
            return false;
        };
        bool::from(given.as_slice().ct_eq(&self.mac(parts)))
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; TOKEN_BYTES] {
        let mut framed: Vec<u8> = Vec::new();
        for p in parts {
            framed.extend_from_slice(&(p.len() as u64).to_be_bytes());
            framed.extend_from_slice(p);
        }
        let full = crate::crypto::hmac_sha256(&self.key, &[&framed]);
        let mut out = [0u8; TOKEN_BYTES];
        out.copy_from_slice(&full[..TOKEN_BYTES]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_check_only_for_their_parts_and_key() {
        let k = TokenKey::derive(&[1u8; 32], "rr");
        let t = k.issue(&[b"call", b"tag"]);
        assert!(k.check(&t, &[b"call", b"tag"]));
        assert!(!k.check(&t, &[b"call", b"tag2"]));
        assert!(!k.check(&t, &[b"cal", b"ltag"]));
        assert!(!k.check("zz", &[b"call", b"tag"]));
        assert!(!k.check("", &[b"call", b"tag"]));
        let other = TokenKey::derive(&[1u8; 32], "other");
        assert!(!other.check(&t, &[b"call", b"tag"]));
        let other = TokenKey::derive(&[2u8; 32], "rr");
        assert!(!other.check(&t, &[b"call", b"tag"]));
    }
}
