//! Real pidgin-sipe 1.25 wire captures (tests/data/sipe/, see its README): every
//! message parses, with the values a naive line reader sees in the raw text, and the
//! Lync specifics (Via without branch, SERVICE/BENOTIFY, NTLM auth-params, `ms-*`
//! headers, quoted Contact parameters with commas) come out right.

mod common;

use common::{corpus, load, parse};
use confab_sip::header::{param, split_values, unquote};
use confab_sip::transaction::ServerKey;
use confab_sip::{Frame, Framer, HeaderName, Message, Method, NameAddr};

/// (file, method or status, Call-ID, CSeq number, CSeq method, top branch, From tag,
/// body length), read from the raw captures.
type Expect = (
    &'static str,
    &'static str,
    &'static str,
    u32,
    &'static str,
    Option<&'static str>,
    &'static str,
    usize,
);

const EXPECT: &[Expect] = &[
    (
        "contacts-add-45-in-SUBSCRIBE-presence-one-resource",
        "SUBSCRIBE",
        "0C22g7271aEFA7iD35Bm686BtCFC1b0791x504Ex",
        1,
        "SUBSCRIBE",
        Some("z9hG4bK72C211CE4A2500ECEC69"),
        "4395212459",
        460,
    ),
    (
        "contacts-add-48-in-SERVICE-soap-addGroup",
        "SERVICE",
        "B379g5E4Da6503iDCEAm102Bt8897bA3E5xF9A4x",
        1,
        "SERVICE",
        Some("z9hG4bKE1301DFDF439A3C84F26"),
        "152814948",
        244,
    ),
    (
        "contacts-add-49-out-200-addGroup-groupID",
        "200",
        "B379g5E4Da6503iDCEAm102Bt8897bA3E5xF9A4x",
        1,
        "SERVICE",
        Some("z9hG4bKE1301DFDF439A3C84F26"),
        "152814948",
        238,
    ),
    (
        "contacts-add-51-in-SERVICE-soap-setContact",
        "SERVICE",
        "3E7FgE0DBa169EiCC0DmF134t4343b63A2x2172x",
        1,
        "SERVICE",
        Some("z9hG4bKDF126CE53F6BCD4422C0"),
        "4033745613",
        365,
    ),
    (
        "demo-01-in-REGISTER-alice",
        "REGISTER",
        "FD18gFDBEa2646i99E7mBE5EtF9F9b84C4x0CC7x",
        1,
        "REGISTER",
        Some("z9hG4bK74AD58D6C67AD9948798"),
        "389726776",
        0,
    ),
    (
        "demo-02-out-200-REGISTER",
        "200",
        "FD18gFDBEa2646i99E7mBE5EtF9F9b84C4x0CC7x",
        1,
        "REGISTER",
        Some("z9hG4bK74AD58D6C67AD9948798"),
        "389726776",
        0,
    ),
    (
        "demo-03-in-SUBSCRIBE-roaming-contacts",
        "SUBSCRIBE",
        "18EFgFA05a597Bi6CFEm1C39tDDA3b021BxD44Ax",
        1,
        "SUBSCRIBE",
        Some("z9hG4bKE4C2DD81EE5FB4A7190A"),
        "2899047771",
        0,
    ),
    (
        "demo-04-out-200-SUBSCRIBE",
        "200",
        "18EFgFA05a597Bi6CFEm1C39tDDA3b021BxD44Ax",
        1,
        "SUBSCRIBE",
        Some("z9hG4bKE4C2DD81EE5FB4A7190A"),
        "2899047771",
        0,
    ),
    (
        "demo-05-out-NOTIFY-contactList",
        "NOTIFY",
        "18EFgFA05a597Bi6CFEm1C39tDDA3b021BxD44Ax",
        1,
        "NOTIFY",
        Some("z9hG4bKdlaa9fd89de805"),
        "sub7a3862",
        243,
    ),
    (
        "demo-06-in-SUBSCRIBE-provisioning-v2",
        "SUBSCRIBE",
        "837Fg80FCa8FEAi85C0m5AB5tF603bC762x60BCx",
        1,
        "SUBSCRIBE",
        Some("z9hG4bK616A537D5D1308948D02"),
        "4814953696",
        301,
    ),
    (
        "demo-08-out-NOTIFY-provisionGroupList",
        "NOTIFY",
        "837Fg80FCa8FEAi85C0m5AB5tF603bC762x60BCx",
        1,
        "NOTIFY",
        Some("z9hG4bKdl5328eb8cdde6"),
        "sub5bf052",
        182,
    ),
    (
        "demo-09-in-SUBSCRIBE-roaming-self",
        "SUBSCRIBE",
        "BC49gA7C2a2B2FiC244m4E47tBE30bA60Bx70A3x",
        1,
        "SUBSCRIBE",
        Some("z9hG4bK9E4E327D70F0C0CD441E"),
        "6069621939",
        174,
    ),
    (
        "demo-102-in-SUBSCRIBE-unsubscribe-no-branch",
        "SUBSCRIBE",
        "9220g957Aa3A3Bi1124m0590tB47BbB66Fx0F8Dx",
        2,
        "SUBSCRIBE",
        None,
        "6055864542",
        0,
    ),
    (
        "demo-11-out-NOTIFY-roamingData",
        "NOTIFY",
        "BC49gA7C2a2B2FiC244m4E47tBE30bA60Bx70A3x",
        1,
        "NOTIFY",
        Some("z9hG4bKdlc51526161a83"),
        "sub97b154",
        357,
    ),
    (
        "demo-112-in-REGISTER-expires-0",
        "REGISTER",
        "FD18gFDBEa2646i99E7mBE5EtF9F9b84C4x0CC7x",
        2,
        "REGISTER",
        Some("z9hG4bKA00958D9B2EB67A2248E"),
        "314414426",
        0,
    ),
    (
        "demo-12-in-SUBSCRIBE-presence-batchSub",
        "SUBSCRIBE",
        "9220g957Aa3A3Bi1124m0590tB47BbB66Fx0F8Dx",
        1,
        "SUBSCRIBE",
        Some("z9hG4bK75FA1ACD9AB4227DBDBA"),
        "6055864542",
        481,
    ),
    (
        "demo-14-out-NOTIFY-presence-categories",
        "NOTIFY",
        "9220g957Aa3A3Bi1124m0590tB47BbB66Fx0F8Dx",
        1,
        "NOTIFY",
        Some("z9hG4bKdl4b589acb1c11"),
        "sub5e7080",
        438,
    ),
    (
        "demo-16-in-200-to-NOTIFY",
        "200",
        "18EFgFA05a597Bi6CFEm1C39tDDA3b021BxD44Ax",
        1,
        "NOTIFY",
        Some("z9hG4bKdlaa9fd89de805"),
        "sub7a3862",
        0,
    ),
    (
        "demo-17-in-INVITE-ocschat-groupchat",
        "INVITE",
        "1127g62CBa1B6Fi54DDmBB09tF040b9299x6CC2x",
        1,
        "INVITE",
        None,
        "911224461",
        216,
    ),
    (
        "demo-20-in-SERVICE-setContainerMembers",
        "SERVICE",
        "339Eg8E39aD174i7F23mD7CAtC1E7b920Ax8217x",
        1,
        "SERVICE",
        Some("z9hG4bK317E6C7E6DD99F5ED704"),
        "3660311156",
        284,
    ),
    (
        "demo-22-in-SERVICE-category-publish",
        "SERVICE",
        "C588g3513a3705i32EFmC851t04F5b4661xCC33x",
        1,
        "SERVICE",
        Some("z9hG4bK52E842B41A66F01C2745"),
        "4153711149",
        2106,
    ),
    (
        "demo-55-in-SERVICE-publish-away-bob",
        "SERVICE",
        "F57FgED9FaE674i8D98m4789t740Cb2EECxFC4Ax",
        1,
        "SERVICE",
        Some("z9hG4bK8C799724B864E27EAAA7"),
        "1376813422",
        2162,
    ),
    (
        "demo-57-out-NOTIFY-presence-bob-away",
        "NOTIFY",
        "9220g957Aa3A3Bi1124m0590tB47BbB66Fx0F8Dx",
        4,
        "NOTIFY",
        Some("z9hG4bKdl699a74db8156"),
        "sub5e7080",
        692,
    ),
    (
        "demo-63-in-INVITE-im-alice-to-bob-no-branch",
        "INVITE",
        "13A8g09DBaB36Ei856Fm3867t344BbADA4x7680x",
        1,
        "INVITE",
        None,
        "5756759148",
        216,
    ),
    (
        "demo-64-out-INVITE-relayed-to-bob",
        "INVITE",
        "13A8g09DBaB36Ei856Fm3867t344BbADA4x7680x",
        1,
        "INVITE",
        Some("z9hG4bKrl6493b69d4d0a"),
        "5756759148",
        216,
    ),
    (
        "demo-65-in-200-INVITE-from-bob",
        "200",
        "13A8g09DBaB36Ei856Fm3867t344BbADA4x7680x",
        1,
        "INVITE",
        Some("z9hG4bKrl6493b69d4d0a"),
        "5756759148",
        231,
    ),
    (
        "demo-67-in-ACK-no-branch",
        "ACK",
        "13A8g09DBaB36Ei856Fm3867t344BbADA4x7680x",
        1,
        "ACK",
        None,
        "5756759148",
        0,
    ),
    (
        "demo-69-in-MESSAGE-alice-to-bob",
        "MESSAGE",
        "13A8g09DBaB36Ei856Fm3867t344BbADA4x7680x",
        2,
        "MESSAGE",
        None,
        "5756759148",
        22,
    ),
    (
        "demo-73-in-MESSAGE-bob-to-alice",
        "MESSAGE",
        "13A8g09DBaB36Ei856Fm3867t344BbADA4x7680x",
        1,
        "MESSAGE",
        None,
        "309579907",
        22,
    ),
    (
        "demo-77-in-REGISTER-baresip-carol",
        "REGISTER",
        "4d0b11d2e33c5177",
        5263,
        "REGISTER",
        Some("z9hG4bKa30f5eef6139f499"),
        "2a6039f81d21fa2d",
        0,
    ),
    (
        "demo-83-in-INVITE-im-alice-to-carol",
        "INVITE",
        "E14FgC6DBaB0B8iDC59m807AtE485b4D5Ex54E6x",
        1,
        "INVITE",
        None,
        "6394730985",
        216,
    ),
    (
        "demo-84-out-200-INVITE-gateway",
        "200",
        "E14FgC6DBaB0B8iDC59m807AtE485b4D5Ex54E6x",
        1,
        "INVITE",
        None,
        "6394730985",
        148,
    ),
    (
        "demo-85-out-MESSAGE-page-to-baresip",
        "MESSAGE",
        "gw-cff6bfd286406e61@127.0.0.1",
        1,
        "MESSAGE",
        Some("z9hG4bKdl91a64faa5767"),
        "gwede9ce",
        25,
    ),
    (
        "demo-88-in-MESSAGE-baresip-to-alice",
        "MESSAGE",
        "b5236bf532e96a5b",
        58325,
        "MESSAGE",
        Some("z9hG4bKa640d398c28ed34b"),
        "8b2db1bf587fd0c7",
        25,
    ),
    (
        "demo-89-out-MESSAGE-relayed-to-alice",
        "MESSAGE",
        "b5236bf532e96a5b",
        58325,
        "MESSAGE",
        Some("z9hG4bKrl18d76305d68f"),
        "8b2db1bf587fd0c7",
        25,
    ),
    (
        "demo-98-in-BYE-no-branch",
        "BYE",
        "13A8g09DBaB36Ei856Fm3867t344BbADA4x7680x",
        3,
        "BYE",
        None,
        "5756759148",
        0,
    ),
    (
        "ntlm-1-REGISTER-no-auth",
        "REGISTER",
        "ED38g5560aD124i9B01mD94Et6BCAb7353xF722x",
        1,
        "REGISTER",
        Some("z9hG4bK3E1B7D84A304FB3347EF"),
        "598727094",
        0,
    ),
    (
        "ntlm-2-REGISTER-ntlm-empty-gssapi",
        "REGISTER",
        "ED38g5560aD124i9B01mD94Et6BCAb7353xF722x",
        2,
        "REGISTER",
        Some("z9hG4bK203A52EFE0C40539957C"),
        "5028554169",
        0,
    ),
    (
        "ntlm-3-REGISTER-ntlm-authenticate",
        "REGISTER",
        "D9E1g4D55a05C8i80E8m87C8tEAC9b9423xB8B0x",
        3,
        "REGISTER",
        Some("z9hG4bK43C8D23E4A79606B33F9"),
        "1215720653",
        0,
    ),
    (
        "synthetic-BENOTIFY-roaming-self",
        "BENOTIFY",
        "339Eg8E39aD174i7F23mD7CAtC1E7b920Ax8217x",
        4,
        "BENOTIFY",
        Some("z9hG4bKbenotify7f3a21"),
        "5c1d9b0e42",
        497,
    ),
];

fn msg(name: &str) -> Message {
    let b = load("sipe", &format!("{name}.sip"));
    parse(&b).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_capture_parses_with_the_right_core_fields() {
    let files = corpus("sipe");
    assert_eq!(files.len(), EXPECT.len(), "a capture without expectations");
    for ((file, bytes), &(name, first, call_id, cseq, cseq_m, branch, from_tag, body)) in
        files.iter().zip(EXPECT)
    {
        assert_eq!(file, name);
        let m = parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        match m.status() {
            Some(code) => assert_eq!(code.to_string(), first, "{name}"),
            None => assert_eq!(m.method().map(Method::as_str), Some(first), "{name}"),
        }
        assert_eq!(m.call_id(), call_id, "{name}");
        assert_eq!(m.cseq().0, cseq, "{name}");
        assert_eq!(m.cseq().1.as_str(), cseq_m, "{name}");
        assert_eq!(m.top_via().branch(), branch, "{name}");
        assert_eq!(m.from_tag(), Some(from_tag), "{name}");
        assert_eq!(m.body().len(), body, "{name}");
        assert_eq!(
            m.as_bytes().len(),
            bytes.len(),
            "{name}: nothing folded or cut"
        );
        if m.is_request() {
            assert!(matches!(m.max_forwards(), Some(69 | 70)), "{name}");
        }
        // Every parsed capture survives the fuzz harness' accessors and round trips.
        common::harness::exercise_parsed(&m);
    }
}

#[test]
fn captures_as_one_tcp_stream() {
    // SIPE sends all of this on one connection: cut back into the same messages,
    // whatever the read size, with keep-alive pings in between.
    let files = corpus("sipe");
    let mut stream = Vec::new();
    for (i, (_, b)) in files.iter().enumerate() {
        if i % 5 == 0 {
            stream.extend_from_slice(b"\r\n\r\n");
        }
        stream.extend_from_slice(b);
    }
    for read in [1, 7, 100, 1460, stream.len()] {
        let mut f = Framer::new(65_535);
        let mut got = Vec::new();
        let mut pings = 0;
        for chunk in stream.chunks(read) {
            f.push(chunk);
            while let Some(fr) = f.next_frame().unwrap() {
                match fr {
                    Frame::Message(b) => got.push(b),
                    Frame::Ping => pings += 1,
                }
            }
        }
        assert_eq!(pings, files.len().div_ceil(5));
        assert_eq!(got.len(), files.len());
        for (g, (_, want)) in got.iter().zip(&files) {
            assert_eq!(g, want);
        }
    }
}

#[test]
fn vias_without_branch_use_rfc2543_matching() {
    for name in [
        "demo-63-in-INVITE-im-alice-to-bob-no-branch",
        "demo-67-in-ACK-no-branch",
        "demo-69-in-MESSAGE-alice-to-bob",
        "demo-98-in-BYE-no-branch",
        "demo-102-in-SUBSCRIBE-unsubscribe-no-branch",
    ] {
        let m = msg(name);
        let via = m.top_via();
        assert_eq!(
            (via.transport, via.host, via.port),
            ("tcp", "127.0.0.1", Some(47894))
        );
        assert_eq!(via.branch(), None);
        assert!(!via.is_rfc3261());
        match ServerKey::of(&m) {
            Some(ServerKey::Rfc2543 {
                call_id,
                cseq,
                from_tag,
                sent_by,
                ..
            }) => {
                assert_eq!(&*call_id, m.call_id());
                assert_eq!(cseq, m.cseq().0);
                assert_eq!(Some(&*from_tag), m.from_tag());
                assert_eq!(&*sent_by, "127.0.0.1:47894");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // The ACK maps to the INVITE's transaction.
    let invite = ServerKey::of(&msg("demo-63-in-INVITE-im-alice-to-bob-no-branch"));
    assert_eq!(ServerKey::of(&msg("demo-67-in-ACK-no-branch")), invite);
    // The relayed 200 carries our Via on top and SIPE's branchless one below.
    let ok = msg("demo-65-in-200-INVITE-from-bob");
    let vias: Vec<_> = ok.header_values(HeaderName::Via).collect();
    assert_eq!(
        vias,
        [
            "SIP/2.0/TCP 127.0.0.1:5080;branch=z9hG4bKrl6493b69d4d0a",
            "SIP/2.0/tcp 127.0.0.1:47894"
        ]
    );
}

#[test]
fn lync_extension_methods() {
    let m = msg("demo-20-in-SERVICE-setContainerMembers");
    assert_eq!(m.method(), Some(&Method::Service));
    assert_eq!(m.cseq().1, &Method::Service);
    assert_eq!(
        m.content_type(),
        Some("application/msrtc-setcontainermembers+xml")
    );
    assert!(m.body().starts_with(b"<setContainerMembers"));
    let m = msg("synthetic-BENOTIFY-roaming-self");
    assert_eq!(m.method(), Some(&Method::Benotify));
    assert_eq!(m.cseq(), (4, &Method::Benotify));
    assert_eq!(m.to_tag(), Some("3660311156"));
    assert_eq!(
        m.header(HeaderName::Event),
        Some("vnd-microsoft-roaming-self")
    );
    let r = msg("contacts-add-49-out-200-addGroup-groupID");
    assert_eq!(r.cseq().1, &Method::Service);
    assert_eq!(r.content_type(), Some("application/SOAP+xml"));
}

/// The parameters of an `NTLM k=v, k="v"` credential, as the auth layer reads them.
fn ntlm_params(value: &str) -> Vec<(&str, &str)> {
    let Some(rest) = value.strip_prefix("NTLM ") else {
        panic!("not NTLM: {value}")
    };
    split_values(rest)
        .map(|p| {
            let Some((k, v)) = p.split_once('=') else {
                panic!("not k=v: {p}")
            };
            (k.trim(), unquote(v.trim()))
        })
        .collect()
}

#[test]
fn ntlm_authorization_is_kept_whole() {
    let m = msg("ntlm-2-REGISTER-ntlm-empty-gssapi");
    // Authorization is never split on commas by the message layer.
    assert_eq!(m.header_values(HeaderName::Authorization).count(), 1);
    let auth = m.header(HeaderName::Authorization).unwrap();
    assert_eq!(
        ntlm_params(auth),
        [
            ("qop", "auth"),
            ("realm", "SIP Communications Service"),
            ("targetname", "lync.example.com"),
            ("gssapi-data", ""),
            ("version", "3"),
        ]
    );

    let m = msg("ntlm-3-REGISTER-ntlm-authenticate");
    let auth = m.header(HeaderName::Authorization).unwrap();
    let raw = std::str::from_utf8(&load("sipe", "ntlm-3-REGISTER-ntlm-authenticate.sip"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Authorization: "))
        .unwrap()
        .to_owned();
    assert_eq!(auth, raw.trim_end());
    let p = ntlm_params(auth);
    let gssapi = p.iter().find(|(k, _)| *k == "gssapi-data").unwrap().1;
    assert!(
        gssapi.starts_with("TlRMTVNTUAADAAAA"),
        "NTLM AUTHENTICATE, base64"
    );
    let start = raw.find("gssapi-data=\"").unwrap() + 13;
    let want = &raw[start..start + raw[start..].find('"').unwrap()];
    assert_eq!(gssapi, want);
    assert_eq!(gssapi.len(), 392);
    assert!(gssapi.contains('+') && gssapi.contains('/'));
    assert_eq!(
        p.iter().find(|(k, _)| *k == "opaque").unwrap().1,
        "A5F3F706"
    );
    assert_eq!(p.len(), 6);
}

#[test]
fn register_contact_and_lync_headers() {
    let m = msg("ntlm-1-REGISTER-no-auth");
    // methods="INVITE, MESSAGE, ..." has commas inside quotes: still one Contact.
    let contacts: Vec<_> = m.header_values(HeaderName::Contact).collect();
    assert_eq!(contacts.len(), 1);
    let c = NameAddr::parse(contacts[0]).unwrap();
    let u = c.parsed_uri().unwrap();
    assert_eq!((u.user, u.host, u.port), (None, "127.0.0.1", Some(59484)));
    assert_eq!(u.transport(), Some("tcp"));
    assert_eq!(u.param("ms-opaque"), Some(Some("d3470f2e1d")));
    assert_eq!(c.param("proxy"), Some(Some("replace")));
    let methods = unquote(c.param("methods").flatten().unwrap());
    assert!(methods.split(", ").any(|x| x == "BENOTIFY"));
    assert_eq!(
        c.param("+sip.instance").flatten().map(unquote),
        Some("<urn:uuid:b7878522-d7fe-5c33-b30d-265f6618ae78>")
    );
    assert_eq!(m.from().param("epid"), Some(Some("cf0b98dadeb9")));
    assert!(m.has_option(HeaderName::Supported, "msrtc-event-categories"));
    assert!(m.has_option(HeaderName::Supported, "com.microsoft.msrtc.presence"));
    assert_eq!(m.header(HeaderName::Event), Some("registration"));
    assert_eq!(m.header_str("MS-Keep-Alive"), Some("UAC;hop-hop=yes"));
    assert_eq!(
        param(m.header_str("ms-keep-alive").unwrap(), "hop-hop"),
        Some(Some("yes"))
    );

    let r = msg("demo-02-out-200-REGISTER");
    assert_eq!(r.expires(), Some(300));
    assert_eq!(r.header_values(HeaderName::AllowEvents).count(), 7);
    // Supported on two lines
    assert!(r.has_option(HeaderName::Supported, "adhoclist"));
    assert!(r.has_option(HeaderName::Supported, "msrtc-event-categories"));
    let ka = r.header_str("ms-keep-alive").unwrap();
    assert_eq!(param(ka, "timeout"), Some(Some("300")));

    assert_eq!(msg("demo-112-in-REGISTER-expires-0").expires(), Some(0));
    assert_eq!(
        msg("demo-102-in-SUBSCRIBE-unsubscribe-no-branch").expires(),
        Some(0)
    );
}

#[test]
fn subscribe_and_im_specifics() {
    let m = msg("demo-12-in-SUBSCRIBE-presence-batchSub");
    assert!(m.has_option(HeaderName::Require, "categoryList"));
    assert!(m.has_option(HeaderName::Supported, "ms-benotify"));
    assert!(m.has_option(HeaderName::ProxyRequire, "ms-benotify"));
    assert_eq!(m.header_values(HeaderName::Accept).count(), 6);

    let m = msg("demo-63-in-INVITE-im-alice-to-bob-no-branch");
    let tf = m.header_str("ms-text-format").unwrap();
    assert!(tf.starts_with("text/plain; charset=UTF-8;msgr="));
    assert_eq!(
        param(tf, "ms-body"),
        Some(Some("aW0tYWxpY2UtdG8tYm9iLTg1NDEzNA=="))
    );
    assert_eq!(m.header_str("ms-conversation-id"), Some("358003462"));
    let contact = NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    let u = contact.parsed_uri().unwrap();
    assert_eq!(
        (u.user, u.host, u.port),
        (Some("alice"), "example.com", Some(47894))
    );
    assert_eq!(u.param("maddr"), Some(Some("127.0.0.1")));
    assert!(m.body().starts_with(b"v=0\r\n"));
}
