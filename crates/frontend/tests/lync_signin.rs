//! Lync (MS-SIPAE) sign-in over TCP: connectionless NTLMv2 handshake, the REGISTER
//! 200 a Lync client needs, signatures on everything the server sends, and the
//! rejection of unsigned/forged client requests.
//!
//! The client side is built here from the MS-NLMP algorithm (HMAC-MD5 with a small
//! MD5 below); the client's session keys are then derived with the auth crate's
//! acceptor (`verify_ntlmv2` is symmetric: it yields both directions' keys).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use bytes::Bytes;
use common::*;
use confab_auth::ntlm::{self, SessionKeys, SignatureFields};
use confab_frontend::{ConnId, Output, Transport};
use confab_sip::{HeaderName, Message};

// --- a small MD5 / HMAC-MD5 (test-only client crypto) ----------------------------

fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    let (mut a0, mut b0, mut c0, mut d0) =
        (0x67452301u32, 0xefcdab89u32, 0x98badcfeu32, 0x10325476u32);
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, v) in [a0, b0, c0, d0].iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(data);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&md5(&inner));
    md5(&outer)
}

#[test]
fn md5_self_check() {
    assert_eq!(hex::encode(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(
        hex::encode(hmac_md5(
            b"key",
            b"The quick brown fox jumps over the lazy dog"
        )),
        "80070713463e7749b90c2dc24911e275"
    );
}

// --- an NTLM client --------------------------------------------------------------

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Builds an AUTHENTICATE_MESSAGE answering `challenge` for `user`/`domain` with the
/// given NT hash.
fn authenticate_message(challenge: &[u8], user: &str, domain: &str, nt_hash: &[u8; 16]) -> Vec<u8> {
    let server_challenge = &challenge[24..32];
    let ti_len = u16::from_le_bytes([challenge[40], challenge[41]]) as usize;
    let ti_off =
        u32::from_le_bytes([challenge[44], challenge[45], challenge[46], challenge[47]]) as usize;
    let ti = &challenge[ti_off..ti_off + ti_len];
    let mut id = utf16le(&user.to_uppercase());
    id.extend(utf16le(domain));
    let key = hmac_md5(nt_hash, &id);
    let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
    blob.extend_from_slice(&5u64.to_le_bytes());
    blob.extend_from_slice(&[0xab; 8]);
    blob.extend_from_slice(&[0; 4]);
    blob.extend_from_slice(ti);
    blob.extend_from_slice(&[0; 4]);
    let mut proof_input = server_challenge.to_vec();
    proof_input.extend_from_slice(&blob);
    let proof = hmac_md5(&key, &proof_input);
    let mut nt_resp = proof.to_vec();
    nt_resp.extend_from_slice(&blob);
    // Any 16 bytes: the server RC4-decrypts them into the exported session key.
    let ersk = [0x5au8; 16];
    let flags = 0x6298_8255u32;
    let payloads: [Vec<u8>; 6] = [
        vec![0; 24],
        nt_resp,
        utf16le(domain),
        utf16le(user),
        utf16le("WS"),
        ersk.to_vec(),
    ];
    let mut msg = b"NTLMSSP\0".to_vec();
    msg.extend_from_slice(&3u32.to_le_bytes());
    let mut off = 72u32;
    for p in &payloads {
        msg.extend_from_slice(&(p.len() as u16).to_le_bytes());
        msg.extend_from_slice(&(p.len() as u16).to_le_bytes());
        msg.extend_from_slice(&off.to_le_bytes());
        off += p.len() as u32;
    }
    msg.extend_from_slice(&flags.to_le_bytes());
    msg.extend_from_slice(&[6, 1, 0, 0, 0, 0, 0, 15]);
    for p in &payloads {
        msg.extend_from_slice(p);
    }
    msg
}

fn nt_hash_of(h: &Harness, aor: &str) -> [u8; 16] {
    let e = h.core.directory().get(aor).expect("user");
    let mut out = [0u8; 16];
    hex::decode_to_slice(&e.credentials.nt_hash, &mut out).expect("hex");
    out
}

fn signature_text(msg: &Message, rand: &str, num: &str, realm: &str, target: &str) -> String {
    let cseq = msg.cseq().0.to_string();
    let method = msg
        .method()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| msg.cseq().1.as_str().to_owned());
    let from = msg.header(HeaderName::From).unwrap_or("");
    let to = msg.header(HeaderName::To).unwrap_or("");
    ntlm::sipae_sign_string(&SignatureFields {
        protocol: "NTLM",
        rand,
        num,
        realm,
        target_name: target,
        call_id: msg.call_id(),
        cseq_number: &cseq,
        method: &method,
        from_uri: ntlm::uri_of(from),
        from_tag: ntlm::tag_of(from),
        to_uri: ntlm::uri_of(to),
        to_tag: ntlm::tag_of(to),
        pai_sip_uri: "",
        pai_tel_uri: "",
        expires: msg.header(HeaderName::Expires).unwrap_or(""),
        response_code: msg.status(),
    })
}

/// A Lync client over one TCP connection, after sign-in.
struct Lync {
    ua: Ua,
    keys: SessionKeys,
    opaque: String,
    target: String,
    cnum: u32,
}

impl Lync {
    /// Signs `req` as SIPE does (`Authorization: NTLM ... crand, cnum, response`).
    fn sign(&mut self, req: Req) -> Req {
        self.cnum += 1;
        let crand = format!("{:08x}", 0x1234_5600 + self.cnum);
        let cnum = self.cnum.to_string();
        let msg = parse(&req.bytes());
        let text = signature_text(&msg, &crand, &cnum, REALM, &self.target);
        let sig = ntlm::sign(
            &self.keys.client_sign,
            &self.keys.client_seal,
            ntlm::SIPAE_SEQ,
            text.as_bytes(),
        );
        req.set(
            "Authorization",
            format!(
                "NTLM qop=\"auth\", opaque=\"{}\", realm=\"{REALM}\", targetname=\"{}\", crand=\"{crand}\", cnum=\"{cnum}\", response=\"{}\"",
                self.opaque,
                self.target,
                ntlm::to_hex_upper(&sig)
            ),
        )
    }

    /// Checks the server's signature on a message it sent.
    fn verify(&self, s: &Sent) {
        let info = s
            .msg
            .header(HeaderName::AuthenticationInfo)
            .unwrap_or_else(|| panic!("unsigned message:\n{}", s.text()));
        assert!(info.starts_with("NTLM "), "{info}");
        let srand = ap(info, "srand").expect("srand");
        let snum = ap(info, "snum").expect("snum");
        let realm = ap(info, "realm").expect("realm");
        let target = ap(info, "targetname").expect("targetname");
        let rspauth = ap(info, "rspauth").expect("rspauth");
        let text = signature_text(&s.msg, srand, snum, realm, target);
        let sig = ntlm::parse_signature_hex(rspauth).expect("hex signature");
        assert!(
            ntlm::verify_signature(
                &self.keys.server_sign,
                &self.keys.server_seal,
                ntlm::SIPAE_SEQ,
                text.as_bytes(),
                &sig
            ),
            "bad server signature on:\n{}",
            s.text()
        );
    }
}

const REALM: &str = "SIP Communications Service";

/// A parameter of an auth header value (`NTLM a="b", c=d`).
fn ap<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let p = confab_auth::params::parse(value).ok()?;
    let v = p.get(name)?;
    // Return a slice of the original text (values here are plain quoted strings).
    let i = value.find(v)?;
    value.get(i..i + v.len())
}

fn lync_register(ua: &mut Ua) -> Req {
    ua.register(300)
        .set(
            "Contact",
            format!(
                "<{}>;+sip.instance=\"<urn:uuid:0e3b6a84-1d2c-5ab1-9f33-2c9a1e1b7c11>\"",
                ua.contact_uri()
            ),
        )
        .header(
            "Supported",
            "gruu-10, adhoclist, msrtc-event-categories, com.microsoft.msrtc.presence",
        )
        .header("Event", "registration")
        .header("ms-keep-alive", "UAC;hop-hop=yes")
}

/// Runs the handshake; returns the final answer and, on success, the client.
fn sign_in(
    h: &mut Harness,
    user: &str,
    login: (&str, &str),
    password_hash: [u8; 16],
    conn: u64,
) -> (Sent, Option<Lync>) {
    let mut ua = h.ua(user, &format!("10.0.0.{conn}:40{conn:03}")).tcp(conn);
    // 1. no credentials → NTLM offer.
    let req = lync_register(&mut ua);
    let out = h.send(&ua, &req);
    let r = out.one_to(&ua);
    assert_eq!(r.status(), Some(401), "{}", out.dump());
    let offer = r.header("WWW-Authenticate").expect("offer").to_owned();
    assert!(offer.starts_with("NTLM "), "{offer}");
    assert_eq!(ap(&offer, "realm"), Some(REALM));
    assert_eq!(ap(&offer, "version"), Some("4"));
    let target = ap(&offer, "targetname").expect("targetname").to_owned();
    assert_eq!(target, SERVER_HOST);
    assert!(r.msg.header(HeaderName::AuthenticationInfo).is_none());
    // 2. empty gssapi-data → CHALLENGE.
    let req = ua.next(&req).set(
        "Authorization",
        format!("NTLM qop=\"auth\", realm=\"{REALM}\", targetname=\"{target}\", gssapi-data=\"\", version=4"),
    );
    let out = h.send(&ua, &req);
    let r = out.one_to(&ua);
    assert_eq!(r.status(), Some(401), "{}", out.dump());
    let ch = r.header("WWW-Authenticate").expect("challenge").to_owned();
    let opaque = ap(&ch, "opaque").expect("opaque").to_owned();
    let challenge =
        ntlm::decode_gssapi_data(ap(&ch, "gssapi-data").expect("gssapi-data")).expect("b64");
    assert_eq!(&challenge[..8], b"NTLMSSP\0");
    assert_eq!(
        u32::from_le_bytes([challenge[20], challenge[21], challenge[22], challenge[23]]),
        ntlm::CHALLENGE_FLAGS
    );
    // 3. AUTHENTICATE, with the REGISTER's own signature.
    let auth = authenticate_message(&challenge, login.0, login.1, &password_hash);
    let parsed = ntlm::parse_authenticate(&auth).expect("parse");
    let server_challenge: [u8; 8] = challenge[24..32].try_into().expect("8");
    let keys = ntlm::verify_ntlmv2(&parsed, server_challenge, password_hash).ok();
    let req = ua.next(&req);
    let crand = "13317733";
    let unsigned = req.clone().set("Authorization", "x");
    let text = signature_text(&parse(&unsigned.bytes()), crand, "1", REALM, &target);
    let response = keys
        .as_ref()
        .map(|k| {
            ntlm::to_hex_upper(&ntlm::sign(
                &k.client_sign,
                &k.client_seal,
                ntlm::SIPAE_SEQ,
                text.as_bytes(),
            ))
        })
        .unwrap_or_else(|| "0".repeat(32));
    let req = req.set(
        "Authorization",
        format!(
            "NTLM qop=\"auth\", opaque=\"{opaque}\", realm=\"{REALM}\", targetname=\"{target}\", gssapi-data=\"{}\", version=4, crand=\"{crand}\", cnum=\"1\", response=\"{response}\"",
            ntlm::encode_gssapi_data(&auth)
        ),
    );
    let out = h.send(&ua, &req);
    let r = out.one_to(&ua);
    let client = keys.filter(|_| r.status() == Some(200)).map(|keys| Lync {
        ua,
        keys,
        opaque,
        target,
        cnum: 1,
    });
    (r, client)
}

fn closes(h: &mut Harness) -> Vec<ConnId> {
    h.core
        .take_output()
        .into_iter()
        .filter_map(|o| match o {
            Output::Close { conn } => Some(conn),
            Output::Send { .. } => None,
        })
        .collect()
}

fn feed(h: &mut Harness, ua: &Ua, req: &Req) -> (Vec<Sent>, Vec<ConnId>) {
    let (now, wall) = (h.now, h.wall_ms());
    let m = Message::parse(req.bytes(), &confab_sip::Limits::default()).expect("parse");
    h.core.on_message(m, ua.dest(), now, wall);
    let out = h.core.take_output();
    let mut sent = Vec::new();
    let mut closed = Vec::new();
    for o in out {
        match o {
            Output::Send { dest, data } => sent.push(Sent {
                dest,
                msg: parse(&data),
            }),
            Output::Close { conn } => closed.push(conn),
        }
    }
    (sent, closed)
}

#[test]
fn full_handshake_user_at_domain() {
    let mut h = Harness::new();
    let hash = nt_hash_of(&h, "alice@example.com");
    let (r, client) = sign_in(&mut h, "alice", ("alice@example.com", ""), hash, 1);
    assert_eq!(r.status(), Some(200), "{}", r.text());
    let c = client.expect("signed in");
    c.verify(&r);
    // The Lync REGISTER 200 requirements (lync-protocol.md §1.7).
    let info = r.header("Authentication-Info").expect("info");
    for p in [
        "qop",
        "opaque",
        "srand",
        "snum",
        "rspauth",
        "realm",
        "targetname",
        "version",
    ] {
        assert!(ap(info, p).is_some(), "{p} missing in {info}");
    }
    assert_eq!(ap(info, "opaque"), Some(c.opaque.as_str()));
    assert_eq!(r.header("Expires"), Some("300"));
    let text = r.text();
    assert!(
        text.contains(
            "\r\nAllow-Events: vnd-microsoft-provisioning,vnd-microsoft-roaming-contacts,"
        ),
        "{text}"
    );
    assert!(
        !r.header("Allow-Events")
            .expect("allow-events")
            .contains(", ")
    );
    assert!(text.contains("\r\nSupported: adhoclist\r\n"), "{text}");
    assert!(
        text.contains("\r\nSupported: msrtc-event-categories\r\n"),
        "{text}"
    );
    assert!(
        r.header("ms-keep-alive")
            .is_some_and(|v| v.contains("timeout=")),
        "{text}"
    );
    let contact = r.header("Contact").expect("contact");
    assert!(
        contact.contains("gruu=\"sip:alice@example.com;opaque=user:epid:"),
        "{contact}"
    );
    assert_eq!(h.core.registrations(), 1);
}

#[test]
fn domain_backslash_user_login() {
    let mut h = Harness::new();
    let hash = nt_hash_of(&h, "bob@example.com");
    let (r, client) = sign_in(&mut h, "bob", ("bob", "EXAMPLE"), hash, 2);
    assert_eq!(r.status(), Some(200), "{}", r.text());
    assert!(client.is_some());
}

#[test]
fn wrong_password_is_refused() {
    let mut h = Harness::new();
    let wrong = nt_hash_of(&h, "bob@example.com");
    let (r, client) = sign_in(&mut h, "alice", ("alice@example.com", ""), wrong, 3);
    assert!(matches!(r.status(), Some(401 | 403)), "{}", r.text());
    assert!(client.is_none());
    assert_eq!(h.core.registrations(), 0);
}

#[test]
fn everything_sent_on_the_connection_is_signed() {
    let mut h = Harness::new();
    let hash = nt_hash_of(&h, "alice@example.com");
    let (_, alice) = sign_in(&mut h, "alice", ("alice@example.com", ""), hash, 4);
    let mut alice = alice.expect("alice");
    // A signed re-REGISTER: 200, signed, no new challenge.
    let req = lync_register(&mut alice.ua);
    let req = alice.sign(req);
    let (out, closed) = feed(&mut h, &alice.ua.clone(), &req);
    assert!(closed.is_empty());
    let r = out.one_to(&alice.ua);
    assert_eq!(r.status(), Some(200), "{}", out.dump());
    alice.verify(&r);
    // A plain digest user (UDP) sends alice a MESSAGE: the proxied request is signed.
    let mut bob = h.ua("bob", "10.0.9.9:5060");
    h.register(&mut bob, 300);
    let msg = bob
        .request("MESSAGE", "sip:alice@example.com", "sip:alice@example.com")
        .body("text/plain", "hi");
    let (_, out) = h.send_authed(&mut bob, msg);
    let to_alice: Vec<&Sent> = out
        .iter()
        .filter(|s| s.dest.conn == alice.ua.conn)
        .collect();
    assert_eq!(to_alice.len(), 1, "{}", out.dump());
    assert_eq!(to_alice[0].method(), Some("MESSAGE"));
    alice.verify(to_alice[0]);
    // Bob's side is not signed.
    assert!(
        out.iter()
            .filter(|s| s.dest.conn != alice.ua.conn)
            .all(|s| s.msg.header(HeaderName::AuthenticationInfo).is_none())
    );
    // Alice's signed OPTIONS gets a signed answer.
    let opt = alice
        .ua
        .request("OPTIONS", "sip:example.com", "sip:example.com");
    let opt = alice.sign(opt);
    let (out, closed) = feed(&mut h, &alice.ua.clone(), &opt);
    assert!(closed.is_empty(), "{}", out.dump());
    for s in &out {
        alice.verify(s);
    }
}

#[test]
fn forged_missing_or_replayed_signature_closes_the_connection() {
    for case in ["forged", "missing", "replayed"] {
        let mut h = Harness::new();
        let hash = nt_hash_of(&h, "alice@example.com");
        let (_, alice) = sign_in(&mut h, "alice", ("alice@example.com", ""), hash, 5);
        let mut alice = alice.expect("alice");
        let opt = alice
            .ua
            .request("OPTIONS", "sip:example.com", "sip:example.com");
        let req = match case {
            "forged" => {
                let signed = alice.sign(opt);
                let auth = signed.get("Authorization").expect("auth").to_owned();
                let resp = ap(&auth, "response").expect("response").to_owned();
                let mut forged = resp.clone().into_bytes();
                forged[10] = if forged[10] == b'0' { b'1' } else { b'0' };
                let forged = String::from_utf8(forged).expect("utf8");
                signed.set("Authorization", auth.replace(&resp, &forged))
            }
            "missing" => opt,
            _ => {
                // cnum not increasing: signed with the REGISTER's cnum (1).
                alice.cnum = 0;
                alice.sign(opt)
            }
        };
        let ua = alice.ua.clone();
        let (out, closed) = feed(&mut h, &ua, &req);
        assert!(out.is_empty(), "{case}: answered:\n{}", out.dump());
        assert_eq!(closed, vec![ConnId(5)], "{case}");
        assert!(closes(&mut h).is_empty());
    }
}

#[test]
fn non_lync_clients_keep_digest() {
    let mut h = Harness::new();
    // TCP REGISTER without any Lync marker: digest 401, no Lync headers in the 200.
    let mut ua = h.ua("carol", "10.0.0.7:5070").tcp(7);
    let req = ua.register(300);
    let out = h.send(&ua, &req);
    let r = out.one_to(&ua);
    assert!(
        r.header("WWW-Authenticate")
            .is_some_and(|v| v.starts_with("Digest "))
    );
    let r = h.register(&mut ua, 300);
    assert!(r.header("Allow-Events").is_none());
    assert!(r.header("ms-keep-alive").is_none());
    assert!(r.msg.header(HeaderName::AuthenticationInfo).is_none());
    // Lync markers over UDP do not switch to NTLM either.
    let mut udp = h.ua("bob", "10.0.0.8:5060");
    let req = lync_register(&mut udp);
    let out = h.send(&udp, &req);
    assert!(
        out.one_to(&udp)
            .header("WWW-Authenticate")
            .is_some_and(|v| v.starts_with("Digest "))
    );
    let _ = (Transport::Udp, Bytes::new());
}

#[test]
fn sa_expiry_forces_reauthentication() {
    let mut h = Harness::new();
    let hash = nt_hash_of(&h, "alice@example.com");
    let (_, alice) = sign_in(&mut h, "alice", ("alice@example.com", ""), hash, 6);
    let mut alice = alice.expect("alice");
    h.now += std::time::Duration::from_secs(8 * 3600 + 1);
    let req = lync_register(&mut alice.ua);
    let req = alice.sign(req);
    let (out, closed) = feed(&mut h, &alice.ua.clone(), &req);
    assert!(closed.is_empty());
    let r = out.one_to(&alice.ua);
    assert_eq!(r.status(), Some(401), "{}", out.dump());
    assert!(
        r.header("WWW-Authenticate")
            .is_some_and(|v| v.starts_with("NTLM "))
    );
}

#[test]
fn repeated_wrong_passwords_are_rate_limited() {
    let mut h = Harness::new();
    let wrong = nt_hash_of(&h, "bob@example.com");
    let right = nt_hash_of(&h, "alice@example.com");
    let mut limited = false;
    for _ in 0..30u64 {
        let (r, _) = sign_in(&mut h, "alice", ("alice@example.com", ""), wrong, 10);
        assert_eq!(r.status(), Some(403));
        if r.reason().contains("Too many") {
            limited = true;
            break;
        }
    }
    assert!(limited, "NTLM failures are never rate limited");
    // From that address, even the right password is refused while blocked.
    let (r, client) = sign_in(&mut h, "alice", ("alice@example.com", ""), right, 10);
    assert_eq!(r.status(), Some(403));
    assert!(client.is_none());
    // But the failures cannot lock alice out from elsewhere (issue 15, item 6):
    // from her own address she signs in.
    let (_, client) = sign_in(&mut h, "alice", ("alice@example.com", ""), right, 99);
    assert!(
        client.is_some(),
        "alice locked out by someone else's failures"
    );
}

#[test]
fn a_disabled_user_is_signed_out_with_registration_notify() {
    let mut h = Harness::new();
    let hash = nt_hash_of(&h, "alice@example.com");
    let (_, alice) = sign_in(&mut h, "alice", ("alice@example.com", ""), hash, 4);
    let alice = alice.expect("alice");
    h.add_user("alice", "alice-pw", false);
    let out = h.outputs();
    let n = out.one_to(&alice.ua);
    assert_eq!(n.method(), Some("NOTIFY"), "{}", out.dump());
    assert_eq!(n.header("Event"), Some("registration-notify"));
    assert_eq!(n.body(), "deregistered;event=rejected");
    alice.verify(&n);
    assert_eq!(h.core.registrations(), 0);
}

/// The SDP of a Lync IM INVITE.
const IM_SDP: &str = "v=0\r\no=- 0 0 IN IP4 10.0.0.4\r\ns=session\r\nc=IN IP4 10.0.0.4\r\nt=0 0\r\nm=message 5060 sip null\r\na=accept-types:text/plain text/html\r\n";

#[test]
fn lync_im_reaches_a_pager_mode_client_through_the_gateway() {
    let mut h = Harness::new();
    let hash = nt_hash_of(&h, "alice@example.com");
    let (_, alice) = sign_in(&mut h, "alice", ("alice@example.com", ""), hash, 4);
    let mut alice = alice.expect("alice");
    let mut carol = h.ua("carol", "10.0.9.7:5060");
    h.register(&mut carol, 300);

    // INVITE with the first text in ms-text-format (base64 "hello carol").
    let inv = alice
        .ua
        .request("INVITE", "sip:carol@example.com", "sip:carol@example.com")
        .header(
            "ms-text-format",
            "text/plain; charset=UTF-8;msgr=WAAtAE0A;ms-body=aGVsbG8gY2Fyb2w=",
        )
        .header("Supported", "ms-sender")
        .body("application/sdp", IM_SDP);
    let inv = alice.sign(inv);
    let (out, closed) = feed(&mut h, &alice.ua.clone(), &inv);
    assert!(closed.is_empty());
    let page = out.one_to(&carol);
    assert_eq!(page.method(), Some("MESSAGE"), "{}", out.dump());
    assert_eq!(page.body(), "hello carol");
    assert_eq!(
        page.header("Content-Type"),
        Some("text/plain;charset=UTF-8")
    );
    assert!(
        page.header("From")
            .is_some_and(|f| f.contains("sip:alice@example.com"))
    );
    // Nothing final for alice until carol took the text.
    assert!(
        out.to_ua(&alice.ua)
            .iter()
            .all(|s| s.status().is_none_or(|c| c < 200))
    );
    let out = h.answer(&carol, &page, 200);
    let ok = out.one_to(&alice.ua);
    assert_eq!(ok.status(), Some(200), "{}", out.dump());
    assert!(
        ok.headers(HeaderName::Supported)
            .iter()
            .any(|s| s == "ms-text-format")
    );
    assert!(ok.body().contains("m=message"));
    alice.verify(&ok);
    let contact = uri_of(ok.header("Contact").expect("contact")).to_owned();
    let to = ok.header("To").expect("to").to_owned();

    // In-dialog MESSAGE → page; typing INFO is answered and not passed on.
    let in_dialog = |alice: &mut Lync, method: &str, cseq: u32, body: Option<(&str, &str)>| {
        let via = alice.ua.via();
        let mut r = Req {
            method: method.into(),
            ruri: contact.clone(),
            headers: Vec::new(),
            body: None,
        }
        .header("Via", via)
        .header("Max-Forwards", "70")
        .header("From", inv.get("From").unwrap_or_default().to_owned())
        .header("To", to.clone())
        .header("Call-ID", inv.get("Call-ID").unwrap_or_default().to_owned())
        .header("CSeq", format!("{cseq} {method}"));
        if let Some((ct, b)) = body {
            r = r.body(ct, b);
        }
        alice.sign(r)
    };
    let ack = in_dialog(&mut alice, "ACK", inv.cseq(), None);
    let (out, _) = feed(&mut h, &alice.ua.clone(), &ack);
    assert!(out.is_empty(), "ACK ends at the gateway:\n{}", out.dump());
    let typing = in_dialog(
        &mut alice,
        "INFO",
        3,
        Some((
            "application/xml",
            "<KeyboardActivity><status status=\"type\" /></KeyboardActivity>",
        )),
    );
    let (out, _) = feed(&mut h, &alice.ua.clone(), &typing);
    assert_eq!(out.one_to(&alice.ua).status(), Some(200));
    assert!(out.to_ua(&carol).is_empty());
    let m = in_dialog(
        &mut alice,
        "MESSAGE",
        4,
        Some(("text/plain; charset=UTF-8;msgr=WAAtAE0A", "second")),
    );
    let (out, _) = feed(&mut h, &alice.ua.clone(), &m);
    let page = out.one_to(&carol);
    assert_eq!(page.body(), "second");
    let out = h.answer(&carol, &page, 200);
    assert_eq!(out.one_to(&alice.ua).status(), Some(200));

    // carol signs off: the next text is refused as the client should show it.
    h.register(&mut carol, 0);
    let m = in_dialog(&mut alice, "MESSAGE", 5, Some(("text/plain", "anyone?")));
    let (out, _) = feed(&mut h, &alice.ua.clone(), &m);
    let r = out.one_to(&alice.ua);
    assert_eq!(r.status(), Some(480), "{}", out.dump());
    alice.verify(&r);
    let bye = in_dialog(&mut alice, "BYE", 6, None);
    let (out, _) = feed(&mut h, &alice.ua.clone(), &bye);
    assert_eq!(out.one_to(&alice.ua).status(), Some(200));
    // The session is gone: a late MESSAGE finds no dialog.
    let m = in_dialog(&mut alice, "MESSAGE", 7, Some(("text/plain", "late")));
    let (out, _) = feed(&mut h, &alice.ua.clone(), &m);
    assert_eq!(out.one_to(&alice.ua).status(), Some(481), "{}", out.dump());
}

#[test]
fn a_refused_first_text_fails_the_invite() {
    let mut h = Harness::new();
    let hash = nt_hash_of(&h, "alice@example.com");
    let (_, alice) = sign_in(&mut h, "alice", ("alice@example.com", ""), hash, 4);
    let mut alice = alice.expect("alice");
    let mut carol = h.ua("carol", "10.0.9.7:5060");
    h.register(&mut carol, 300);
    let inv = alice
        .ua
        .request("INVITE", "sip:carol@example.com", "sip:carol@example.com")
        .header("ms-text-format", "text/plain; charset=UTF-8;ms-body=aGk=")
        .body("application/sdp", IM_SDP);
    let inv = alice.sign(inv);
    let (out, _) = feed(&mut h, &alice.ua.clone(), &inv);
    let page = out.one_to(&carol);
    let out = h.answer(&carol, &page, 486);
    let r = out.one_to(&alice.ua);
    assert_eq!(r.status(), Some(486), "{}", out.dump());
}
