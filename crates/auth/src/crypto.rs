//! Small infallible wrappers around the RustCrypto primitives used by the protocols.
//!
//! The RustCrypto constructors that take a variable-length key return `Result`
//! (`new_from_slice`). Our keys have fixed sizes, so these helpers use the fixed-size
//! constructors instead and need neither `unwrap` nor an error path:
//! - HMAC pads keys shorter than the hash block with zeros (RFC 2104 §2), so
//!   `HMAC(k)` equals `HMAC(k ‖ 0…0)` for a 64-byte block; we pass the padded key.
//! - RC4's key schedule walks 256 positions cycling through the key bytes, and 256 is a
//!   multiple of 16 and 32, so a 16-byte key `k` schedules exactly like `k ‖ k`.
//!   (Checked against the MS-NLMP RC4 test vectors in `ntlm` tests.)

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use rc4::{Rc4, StreamCipher};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// HMAC block size of MD5 and SHA-256.
const BLOCK: usize = 64;

fn padded<const N: usize>(key: &[u8; N]) -> [u8; BLOCK] {
    let mut k = [0u8; BLOCK];
    // N is 16 or 32 at every call site; `zip` keeps this panic-free for any N.
    for (dst, src) in k.iter_mut().zip(key.iter()) {
        *dst = *src;
    }
    k
}

/// HMAC-MD5 with a 16-byte key over the concatenation of `parts`.
pub(crate) fn hmac_md5(key: &[u8; 16], parts: &[&[u8]]) -> [u8; 16] {
    let mut k = padded(key);
    let mut mac = <Hmac<Md5> as KeyInit>::new(&k.into());
    k.zeroize();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 with a 32-byte key over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut k = padded(key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&k.into());
    k.zeroize();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// MD5 over the concatenation of `parts`.
pub(crate) fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// SHA-256 over the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RC4 with a fresh 16-byte key applied to `data` in place.
pub(crate) fn rc4(key: &[u8; 16], data: &mut [u8]) {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(key);
    k[16..].copy_from_slice(key);
    let mut cipher = <Rc4 as KeyInit>::new(&k.into());
    k.zeroize();
    cipher.apply_keystream(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_md5_rfc2202() {
        // RFC 2202 test case 1
        let out = hmac_md5(&[0x0b; 16], &[b"Hi ", b"There"]);
        assert_eq!(hex::encode(out), "9294727a3638bb1c13f48ef8158bfc9d");
    }

    #[test]
    fn hmac_sha256_rfc4231_short_key() {
        // RFC 4231 test case 2 uses key "Jefe"; HMAC zero-pads, so the padded 32-byte
        // key must give the same result.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let out = hmac_sha256(&key, &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(out),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rc4_16_byte_key_matches_slice_constructor() {
        let key: [u8; 16] = *b"0123456789abcdef";
        let mut a = *b"some plaintext to encrypt";
        rc4(&key, &mut a);
        let mut b = *b"some plaintext to encrypt";
        let mut c = Rc4::new_from_slice(&key).unwrap();
        c.apply_keystream(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn md5_and_sha256() {
        assert_eq!(
            hex::encode(md5(&[b"message ", b"digest"])),
            "f96b697d7cb7938d525a2f31aaf161d0"
        );
        assert_eq!(
            hex::encode(sha256(&[b"abc"])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
