//! Differential test against `sipx-sip` 1.0.1 (dev-dependency only): on the valid
//! corpus, the RFC 4475 messages and generated messages, both parsers must agree on
//! what confab relies on: method or status, Call-ID, CSeq, top Via branch, From tag
//! and body length. Where they deliberately disagree, the case is listed with why.

mod common;

use bytes::Bytes;
use confab_sip::{HeaderName, Limits, Message};
use proptest::prelude::*;
use sipx_sip::headers::{CSeq, CallId, From, Via};
use sipx_sip::{Finding, parse_datagram, validate};

/// What both parsers report for one message.
#[derive(Debug, PartialEq, Eq)]
struct Core {
    start: String,
    call_id: String,
    cseq: (u32, String),
    branch: Option<String>,
    from_tag: Option<String>,
    body_len: usize,
}

fn ours(b: &Bytes) -> Result<Core, String> {
    let m = Message::parse(b.clone(), &Limits::default()).map_err(|e| e.to_string())?;
    Ok(Core {
        start: match m.status() {
            Some(c) => c.to_string(),
            None => m
                .method()
                .map(|x| x.as_str().to_owned())
                .unwrap_or_default(),
        },
        call_id: m.call_id().to_owned(),
        cseq: (m.cseq().0, m.cseq().1.as_str().to_owned()),
        branch: m.top_via().branch().map(str::to_owned),
        from_tag: m.from_tag().map(str::to_owned),
        body_len: m.body().len(),
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// sipx: parse, then its own validation of the required headers. A missing
/// Max-Forwards is not an error for confab (RFC 2543 peers, responses) so that
/// finding is ignored; so is a Request-URI with headers (confab leaves it to the core,
/// see rfc4475.rs escruri).
fn theirs(b: &Bytes) -> Result<Core, String> {
    let m = parse_datagram(b.clone(), &sipx_sip::Limits::datagram()).map_err(|e| e.to_string())?;
    let findings: Vec<Finding> = validate(&m)
        .into_iter()
        .filter(|f| {
            !matches!(
                f,
                Finding::MissingRequiredHeader("Max-Forwards") | Finding::RequestUriHasHeaders
            )
        })
        .collect();
    if !findings.is_empty() {
        return Err(format!("{findings:?}"));
    }
    let h = m.headers();
    let err = |e: sipx_sip::HeaderError| e.to_string();
    let call_id = h.typed::<CallId>().ok_or("no Call-ID")?.map_err(err)?;
    let cseq = h.typed::<CSeq>().ok_or("no CSeq")?.map_err(err)?;
    let via = h.typed::<Via>().ok_or("no Via")?.map_err(err)?;
    let from = h.typed::<From>().ok_or("no From")?.map_err(err)?;
    Ok(Core {
        start: match &m {
            sipx_sip::Message::Request(r) => text(r.method.as_bytes()),
            sipx_sip::Message::Response(r) => r.status.code().to_string(),
        },
        call_id: text(&call_id.0),
        cseq: (cseq.sequence, text(cseq.method.as_bytes())),
        branch: via.branch().map(text),
        from_tag: from.tag().map(text),
        body_len: m.body().len(),
    })
}

/// Messages on which the two parsers deliberately disagree about acceptance.
const KNOWN: &[(&str, &str)] = &[
    (
        "rfc4475/badaspec",
        "confab trims spaces inside <> and accepts the message (RFC 4475 allows being \
         liberal); the unusable From URI is seen by the layer reading it",
    ),
    (
        "rfc4475/baddn",
        "confab takes an unquoted display name with a comma as text before '<' (RFC 4475 \
         allows being liberal); sipx refuses the To/From",
    ),
];

/// Valid corpus and RFC 4475 corpus: same verdict, and same values when both accept.
#[test]
fn corpus_agrees_with_sipx() {
    let mut compared = 0;
    for sub in ["rfc4475", "sipe"] {
        for (name, b) in common::corpus(sub) {
            let id = format!("{sub}/{name}");
            let (o, t) = (ours(&b), theirs(&b));
            let known = KNOWN.iter().any(|(k, _)| *k == id);
            match (&o, &t) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "{id}");
                    assert!(
                        !known,
                        "{id} is listed as a disagreement but both accept it"
                    );
                    compared += 1;
                }
                (Err(_), Err(_)) => assert!(!known, "{id}: both reject it now"),
                _ => assert!(known, "{id}: confab {o:?} vs sipx {t:?}"),
            }
        }
    }
    assert!(compared >= 70, "only {compared} messages compared");
    // Every listed disagreement still exists.
    for (id, _) in KNOWN {
        let (sub, name) = id.split_once('/').unwrap();
        let b = common::load(sub, &format!("{name}.sip"));
        assert_ne!(ours(&b).is_ok(), theirs(&b).is_ok(), "{id}");
    }
}

/// The Via lists agree value by value on the valid corpus (confab keeps the text,
/// sipx parses it: compare the branches and sent-by hosts).
#[test]
fn via_lists_agree() {
    for sub in ["rfc4475", "sipe"] {
        for (name, b) in common::corpus(sub) {
            let (Ok(m), Ok(x)) = (
                Message::parse(b.clone(), &Limits::default()),
                parse_datagram(b.clone(), &sipx_sip::Limits::datagram()),
            ) else {
                continue;
            };
            let ours: Vec<(Option<String>, String)> = m
                .header_values(HeaderName::Via)
                .map(|v| confab_sip::Via::parse(v).unwrap())
                .map(|v| (v.branch().map(str::to_owned), v.host.to_ascii_lowercase()))
                .collect();
            let theirs: Vec<(Option<String>, String)> = x
                .headers()
                .typed_all::<Via>()
                .map(|v| v.unwrap())
                .map(|v| {
                    (
                        v.branch().map(text),
                        v.host.to_string().to_ascii_lowercase(),
                    )
                })
                .collect();
            assert_eq!(ours, theirs, "{sub}/{name}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Generated valid messages (any method token, URIs, header order, compact forms,
    /// folding, comma-joined Vias, bodies): both accept and agree.
    #[test]
    fn generated_messages_agree(g in common::msggen::message(false)) {
        let b = Bytes::from(g.to_bytes());
        let o = ours(&b);
        let t = theirs(&b);
        prop_assert!(o.is_ok(), "confab: {:?}", o);
        prop_assert_eq!(o, t);
    }
}

/// Where the two parsers may disagree on a slightly broken message, and why. Every
/// disagreement found by mutating the valid corpus must fall in one of these.
///
/// confab refuses, sipx accepts:
const CONFAB_STRICTER: &[(&str, &str)] = &[
    (
        "Control character",
        "raw NUL/BEL/DEL... refused in every header (see KNOWN)",
    ),
    (
        "Invalid UTF-8",
        "header section must be UTF-8 (RFC 3261 TEXT-UTF8); sipx keeps bytes",
    ),
    (
        "Malformed Call-ID",
        "Call-ID = word [\"@\" word]: no whitespace; sipx takes any text",
    ),
    (
        "Malformed Via",
        "top Via: sent-protocol and transport tokens, host, port, named params",
    ),
    ("Malformed From", "unterminated quote / '<' in From"),
    ("Malformed To", "unterminated quote / '<' in To"),
];
/// sipx refuses, confab accepts (substrings of sipx's error):
const SIPX_STRICTER: &[(&str, &str)] = &[
    (
        "MalformedRequiredHeader",
        "confab checks From/To/Via structure, not every character of URIs and parameters: \
         they are parsed where used (Uri::parse, params)",
    ),
    (
        "bad Request-URI",
        "confab's parser only requires `scheme:` without whitespace or <>; the core runs \
         Uri::parse and answers 400/416",
    ),
    (
        "field name is not a token",
        "a header name folded before its colon (\"To\\r\\n : x\") is unfolded like any LWS",
    ),
    (
        "status code is not three digits",
        "a status line without SP after the code (no reason)",
    ),
    (
        "bare CR or LF",
        "stray CR/LF before the start line are skipped like leading CRLFs",
    ),
    (
        "malformed start line: empty",
        "leading CRLFs are skipped (RFC 3261 §7.5)",
    ),
];

/// Messages both parsers accept, read once.
static SEEDS: std::sync::LazyLock<Vec<Bytes>> = std::sync::LazyLock::new(|| {
    common::corpus("rfc4475")
        .into_iter()
        .chain(common::corpus("sipe"))
        .map(|(_, b)| b)
        .filter(|b| ours(b).is_ok() && theirs(b).is_ok())
        .collect()
});

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus_disagreements_are_documented(
        pick in any::<prop::sample::Index>(),
        pos in any::<prop::sample::Index>(),
        ins in prop::sample::select(vec![
            &b"+"[..], b"-", b" ", b"\t", b"0", b"\0", b",", b";", b"\"", b"<", b">", b":", b"%",
            b"\\", b"\xff", b"/", b"=", b"@", b"[", b"]", b"(", b"\r", b"\n", b"\r\n", b"\r\n ",
        ]),
        replace in any::<bool>(),
    ) {
        let mut v = pick.get(&SEEDS).to_vec();
        let head = v.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(v.len());
        let at = pos.index(head.max(1));
        let end = if replace { (at + 1).min(v.len()) } else { at };
        v.splice(at..end, ins.iter().copied());
        let b = Bytes::from(v);
        match (ours(&b), theirs(&b)) {
            (Err(e), Ok(_)) => prop_assert!(
                CONFAB_STRICTER.iter().any(|(k, _)| e.contains(k)),
                "undocumented: confab refuses ({}) what sipx accepts:\n{}", e, text(&b)
            ),
            (Ok(_), Err(e)) => prop_assert!(
                SIPX_STRICTER.iter().any(|(k, _)| e.contains(k)),
                "undocumented: sipx refuses ({}) what confab accepts:\n{}", e, text(&b)
            ),
            (Ok(a), Ok(t)) => prop_assert_eq!(a, t),
            (Err(_), Err(_)) => {}
        }
    }
}
