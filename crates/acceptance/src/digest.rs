//! Client side of SIP digest authentication (RFC 2617 / RFC 7616 / RFC 8760), computed
//! independently of the server's code so the tests check it from the outside.

use md5::{Digest, Md5};
use sha2::Sha256;

use crate::{Error, Result};

/// One `Digest` challenge from a `WWW-Authenticate` / `Proxy-Authenticate` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// The qop options offered (e.g. `["auth"]`); empty when none (RFC 2069 style).
    pub qop: Vec<String>,
    /// `MD5` (default), `SHA-256`, or anything else (unsupported).
    pub algorithm: String,
    pub stale: bool,
}

/// Splits `k=v, k="v, with comma", ...` into pairs (keys lower-cased, quotes removed).
pub fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[ks..i].trim().to_ascii_lowercase();
        let mut val = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && b[i] == b'"' {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    val.push(b[i] as char);
                    i += 1;
                }
                i += 1; // closing quote
            } else {
                let vs = i;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
                val = s[vs..i].trim().to_string();
            }
        }
        if !key.is_empty() {
            out.push((key, val));
        }
    }
    out
}

impl Challenge {
    /// Parses a header value such as `Digest realm="example.com", nonce="..", qop="auth"`.
    pub fn parse(value: &str) -> Result<Challenge> {
        let v = value.trim();
        let (scheme, rest) = v.split_once(char::is_whitespace).unwrap_or((v, ""));
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(Error(format!("not a Digest challenge: {value}")));
        }
        let mut c = Challenge {
            algorithm: "MD5".into(),
            ..Challenge::default()
        };
        for (k, val) in parse_params(rest) {
            match k.as_str() {
                "realm" => c.realm = val,
                "nonce" => c.nonce = val,
                "opaque" => c.opaque = Some(val),
                "qop" => {
                    c.qop = val
                        .split(',')
                        .map(|q| q.trim().to_ascii_lowercase())
                        .filter(|q| !q.is_empty())
                        .collect()
                }
                "algorithm" => c.algorithm = val,
                "stale" => c.stale = val.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        if c.nonce.is_empty() {
            return Err(Error(format!("Digest challenge without nonce: {value}")));
        }
        Ok(c)
    }

    /// Whether this crate can answer the challenge (MD5 or SHA-256, qop auth or none).
    pub fn supported(&self) -> bool {
        let alg_ok = self.algorithm.eq_ignore_ascii_case("MD5")
            || self.algorithm.eq_ignore_ascii_case("SHA-256");
        let qop_ok = self.qop.is_empty() || self.qop.iter().any(|q| q == "auth");
        alg_ok && qop_ok
    }

    fn h(&self, s: &str) -> String {
        if self.algorithm.eq_ignore_ascii_case("SHA-256") {
            hex::encode(Sha256::digest(s.as_bytes()))
        } else {
            hex::encode(Md5::digest(s.as_bytes()))
        }
    }

    /// The `response=` value (RFC 7616 §3.4.1) for qop `auth` (if offered) or none.
    pub fn response(
        &self,
        method: &str,
        uri: &str,
        username: &str,
        password: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let ha1 = self.h(&format!("{username}:{}:{password}", self.realm));
        let ha2 = self.h(&format!("{method}:{uri}"));
        if self.qop.iter().any(|q| q == "auth") {
            self.h(&format!(
                "{ha1}:{}:{nc:08x}:{cnonce}:auth:{ha2}",
                self.nonce
            ))
        } else {
            self.h(&format!("{ha1}:{}:{ha2}", self.nonce))
        }
    }

    /// A complete `Authorization` / `Proxy-Authorization` header value.
    pub fn authorization(
        &self,
        method: &str,
        uri: &str,
        username: &str,
        password: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let resp = self.response(method, uri, username, password, cnonce, nc);
        let mut s = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{resp}\", algorithm={}",
            self.realm, self.nonce, self.algorithm
        );
        if self.qop.iter().any(|q| q == "auth") {
            s.push_str(&format!(", qop=auth, nc={nc:08x}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque=\"{o}\""));
        }
        s
    }
}

/// Picks the first challenge this crate supports among several header values
/// (RFC 8760: a server may offer SHA-256 and MD5 side by side).
pub fn pick_challenge<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Challenge> {
    let mut seen = Vec::new();
    for v in values {
        seen.push(v.to_string());
        if let Ok(c) = Challenge::parse(v)
            && c.supported()
        {
            return Ok(c);
        }
    }
    Err(Error(format!("no usable Digest challenge among {seen:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5 (qop=auth, MD5).
        let c = Challenge::parse(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert_eq!(c.realm, "testrealm@host.com");
        assert_eq!(c.qop, vec!["auth", "auth-int"]);
        let r = c.response(
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
        let h = c.authorization(
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        );
        assert!(h.contains("nc=00000001"));
        assert!(h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn picks_supported() {
        let c = pick_challenge([
            r#"Digest realm="x", nonce="n", algorithm=SHA-512-256"#,
            r#"Digest realm="x", nonce="n2", algorithm=MD5"#,
        ])
        .unwrap();
        assert_eq!(c.nonce, "n2");
        assert!(pick_challenge(["NTLM realm=\"x\""]).is_err());
    }
}
