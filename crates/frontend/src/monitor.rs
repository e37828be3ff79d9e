//! Monitoring (Lync's Monitoring role, issue 13): what the front end sees of calls
//! and IM between its users, handed to a [`MonitorSink`] as [`Activity`] — one
//! small value per call step or message, no database work on the core task. The
//! sink (the binary's channel to its record writer) groups the activity into call
//! records and IM sessions off the signalling path.
//!
//! [`Recorder`] is the only interface the core uses: [`Recorder::observe`] looks at
//! a message before the core handles it, [`Recorder::finish`] at what the core
//! answered to it. Requests are recorded where the caller's own request enters the
//! deployment (not from trusted peers: a pool peer, the Mediation server or an
//! application), so a call crossing two front ends of a pool is recorded once.

use std::net::SocketAddr;
use std::sync::Arc;

use confab_sip::uri::Scheme;
use confab_sip::{Message, Method, Uri};

use crate::types::Output;

/// One step of a call or an IM conversation between users. Times are epoch ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// A user's INVITE to another user passed authentication (`im`: an INVITE-based
    /// IM session, SDP `m=message`; `first_text`: the INVITE carries the first
    /// message, as Lync clients send it in `ms-text-format`; `number`: the callee
    /// was dialed by number, normalized to this E.164 number).
    Offered {
        call_id: String,
        caller: String,
        callee: String,
        number: Option<String>,
        im: bool,
        first_text: bool,
        at: u64,
    },
    /// A final answer to the INVITE of call `call_id` towards the caller (from a
    /// callee's branch, or the front end's own).
    Final { call_id: String, code: u16, at: u64 },
    /// The caller acknowledged a final answer (ends a call that failed).
    Acked { call_id: String, at: u64 },
    /// BYE in the dialog of `call_id`.
    Bye { call_id: String, at: u64 },
    /// A MESSAGE between users, in a dialog (`in_dialog`) or pager-mode.
    Message {
        call_id: String,
        cseq: u32,
        from: String,
        to: String,
        in_dialog: bool,
        at: u64,
    },
}

/// Where the front end hands its [`Activity`]: must not block (a full queue drops).
pub trait MonitorSink: Send + Sync + std::fmt::Debug {
    fn record(&self, activity: Activity);
}

/// A request seen by [`Recorder::observe`] whose outcome depends on the core's
/// answer to it.
#[derive(Debug)]
pub struct Pending {
    src: SocketAddr,
    what: Activity,
}

/// The front end's side of monitoring (see the module documentation).
#[derive(Clone, Debug)]
pub struct Recorder {
    sink: Arc<dyn MonitorSink>,
    domain: String,
}

/// What [`Recorder::observe`] needs to know of the front end.
pub struct Context<'a> {
    /// The SIP domain served.
    pub domain: &'a str,
    /// This server's advertised host (Request-URIs may name it).
    pub host: &'a str,
    /// Whether the message came from a trusted peer (asked only for requests
    /// between users).
    pub trusted: &'a dyn Fn() -> bool,
    /// Whether an address (`user@domain`) is an enabled user.
    pub is_user: &'a dyn Fn(&str) -> bool,
    /// Whether an INVITE offers an IM session (the Lync application knows).
    pub is_im_offer: &'a dyn Fn(&Message) -> bool,
    /// The user owning the number a caller (first argument) dialed (second: a
    /// dial string or E.164 number), with the number normalized by the caller's
    /// dial plan (Enterprise Voice knows); `None` when no user owns it.
    pub number_owner: &'a NumberOwner<'a>,
}

/// `(caller, dialed)` to `(owner's address, normalized number)`.
pub type NumberOwner<'a> = dyn Fn(&str, &str) -> Option<(String, String)> + 'a;

impl Recorder {
    pub fn new(sink: Arc<dyn MonitorSink>, domain: &str) -> Recorder {
        Recorder {
            sink,
            domain: domain.to_ascii_lowercase(),
        }
    }

    /// Looks at a message before the core handles it: records what needs no
    /// answer, returns what [`Recorder::finish`] completes. Cheap for everything
    /// else (a method and a tag check).
    pub fn observe(
        &self,
        msg: &Message,
        src: SocketAddr,
        at: u64,
        cx: &Context<'_>,
    ) -> Option<Pending> {
        let Some(method) = msg.method() else {
            // A response: only final answers to INVITEs matter.
            let (_, m) = msg.cseq();
            if *m == Method::Invite && msg.status().is_some_and(|c| c >= 200) {
                self.sink.record(Activity::Final {
                    call_id: msg.call_id().to_owned(),
                    code: msg.status().unwrap_or(500),
                    at,
                });
            }
            return None;
        };
        let in_dialog = msg.to_tag().is_some();
        match method {
            Method::Ack => {
                self.sink.record(Activity::Acked {
                    call_id: msg.call_id().to_owned(),
                    at,
                });
                None
            }
            Method::Bye => {
                self.sink.record(Activity::Bye {
                    call_id: msg.call_id().to_owned(),
                    at,
                });
                None
            }
            Method::Invite if !in_dialog => {
                let (caller, callee, number) = self.parties(msg, cx)?;
                Some(Pending {
                    src,
                    what: Activity::Offered {
                        call_id: msg.call_id().to_owned(),
                        caller,
                        callee,
                        number,
                        im: (cx.is_im_offer)(msg),
                        first_text: msg
                            .header_str("ms-text-format")
                            .is_some_and(|v| v.contains("ms-body=")),
                        at,
                    },
                })
            }
            Method::Message => {
                let (from, to) = if in_dialog {
                    // In a dialog the Request-URI is a contact: From and To name
                    // the users (the sender may be either party of the dialog).
                    let from = local_aor(msg.from().parsed_uri().ok()?, &self.domain)?;
                    let to = local_aor(msg.to().parsed_uri().ok()?, &self.domain)?;
                    (from, to)
                } else {
                    let (from, to, _) = self.parties(msg, cx)?;
                    (from, to)
                };
                Some(Pending {
                    src,
                    what: Activity::Message {
                        call_id: msg.call_id().to_owned(),
                        cseq: msg.cseq().0,
                        from,
                        to,
                        in_dialog,
                        at,
                    },
                })
            }
            _ => None,
        }
    }

    /// The caller and the callee of a request from a user to a user, when it
    /// enters here from the caller (not a trusted peer). The callee is named by
    /// their address or dialed by number (`tel:`, `sip:NUMBER@domain;user=phone`,
    /// or a dial string at our domain that is no user's name): then the third
    /// value is the number, normalized.
    fn parties(&self, msg: &Message, cx: &Context<'_>) -> Option<(String, String, Option<String>)> {
        if (cx.trusted)() {
            return None;
        }
        let from = local_aor(msg.from().parsed_uri().ok()?, cx.domain)?;
        let ruri = Uri::parse(msg.request_uri()?).ok()?;
        let user = ruri.user_unescaped()?;
        // `sip:+14255550100;ext=1@host` keeps user parameters in the user part.
        let number = user.split(';').next().unwrap_or("");
        match ruri.scheme {
            Scheme::Tel => {}
            Scheme::Sip | Scheme::Sips => {
                if !(ruri.host.eq_ignore_ascii_case(cx.domain)
                    || ruri.host.eq_ignore_ascii_case(cx.host))
                {
                    return None;
                }
                if ruri.param("user").flatten() != Some("phone") {
                    let to = address(&user, &self.domain);
                    if (cx.is_user)(&to) {
                        return Some((from, to, None));
                    }
                }
            }
        }
        let (to, number) = (cx.number_owner)(&from, number)?;
        Some((from, to, Some(number)))
    }

    /// Completes a [`Pending`] request with what the core produced while handling
    /// it (`out`: the outputs added meanwhile). An answer of its own that
    /// challenges (401/407) records nothing (the authenticated retry will); a
    /// refused message is not counted; a refused call is recorded with its code.
    pub fn finish(&self, pending: Pending, out: &[Output]) {
        let code = out.iter().find_map(|o| match o {
            Output::Send { dest, data } if dest.addr == pending.src => status_code(data),
            _ => None,
        });
        match (pending.what, code) {
            (_, Some(401 | 407)) => {}
            (Activity::Message { .. }, Some(c)) if c >= 300 => {}
            (
                Activity::Offered {
                    call_id,
                    caller,
                    callee,
                    number,
                    im,
                    first_text,
                    at,
                },
                code,
            ) => {
                let final_code = code.filter(|c| *c >= 200);
                self.sink.record(Activity::Offered {
                    call_id: call_id.clone(),
                    caller,
                    callee,
                    number,
                    im,
                    first_text,
                    at,
                });
                if let Some(code) = final_code {
                    self.sink.record(Activity::Final { call_id, code, at });
                }
            }
            (what, _) => self.sink.record(what),
        }
    }
}

/// `user@domain` of a URI of this domain (not a phone number).
fn local_aor(u: Uri<'_>, domain: &str) -> Option<String> {
    if !u.host.eq_ignore_ascii_case(domain)
        || u.scheme == Scheme::Tel
        || u.param("user").flatten() == Some("phone")
    {
        return None;
    }
    let user = u.user_unescaped()?;
    let mut aor = address(&user, domain);
    aor.make_ascii_lowercase();
    Some(aor)
}

/// `user@domain` with the user part in lower case, in one allocation (the domain
/// as given).
fn address(user: &str, domain: &str) -> String {
    let mut s = String::with_capacity(user.len() + 1 + domain.len());
    if user.is_ascii() {
        s.push_str(user);
        s.make_ascii_lowercase();
    } else {
        s.push_str(&user.to_lowercase());
    }
    s.push('@');
    s.push_str(domain);
    s
}

/// The status code of a response's bytes (`SIP/2.0 NNN ...`).
fn status_code(data: &[u8]) -> Option<u16> {
    let rest = data.strip_prefix(b"SIP/2.0 ")?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use bytes::Bytes;

    use crate::types::{Dest, Transport};

    #[derive(Default, Debug)]
    struct Seen(Mutex<Vec<Activity>>);
    impl MonitorSink for Seen {
        fn record(&self, a: Activity) {
            self.0.lock().unwrap().push(a);
        }
    }

    fn msg(text: &str) -> Message {
        Message::parse(Bytes::from(text.replace('\n', "\r\n")), &Default::default()).unwrap()
    }

    fn request(method: &str, ruri: &str, from: &str, to_tag: &str, body: (&str, &str)) -> Message {
        let (ct, b) = body;
        let ct = if ct.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {ct}\n")
        };
        msg(&format!(
            "{method} {ruri} SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\n\
             From: <{from}>;tag=a\nTo: <sip:bob@example.com>{to_tag}\nCall-ID: c1\n\
             CSeq: 2 {method}\nMax-Forwards: 70\n{ct}Content-Length: {}\n\n{b}",
            b.len()
        ))
    }

    fn out(addr: SocketAddr, text: &str) -> Output {
        Output::Send {
            dest: Dest {
                transport: Transport::Udp,
                addr,
                conn: None,
            },
            data: Bytes::from(text.to_owned()),
        }
    }

    fn setup() -> (Arc<Seen>, Recorder) {
        let seen = Arc::new(Seen::default());
        let r = Recorder::new(seen.clone(), "Example.com");
        (seen, r)
    }

    const SRC: &str = "127.0.0.1:5099";

    fn cx(trusted: bool) -> Context<'static> {
        Context {
            domain: "example.com",
            host: "127.0.0.1",
            trusted: if trusted { &|| true } else { &|| false },
            is_user: &|u| u == "bob@example.com" || u == "alice@example.com",
            // What the Lync application checks, reduced to the SDP line.
            is_im_offer: &|m| String::from_utf8_lossy(m.body()).contains("m=message"),
            // What Enterprise Voice answers: bob owns +14255550101, which alice's
            // dial plan makes of 5550101.
            number_owner: &|caller, dialed| {
                (caller == "alice@example.com" && matches!(dialed, "5550101" | "+14255550101"))
                    .then(|| ("bob@example.com".to_owned(), "+14255550101".to_owned()))
            },
        }
    }

    #[test]
    fn calls_dialed_by_number_are_calls_to_the_number_owner() {
        let (seen, r) = setup();
        let src: SocketAddr = SRC.parse().unwrap();
        for (i, ruri) in [
            "sip:5550101@example.com",
            "sip:+14255550101@example.com;user=phone",
            "sip:+14255550101;ext=7@127.0.0.1;user=phone",
            "tel:+14255550101",
        ]
        .into_iter()
        .enumerate()
        {
            let invite = request("INVITE", ruri, "sip:alice@example.com", "", ("", ""));
            let p = r.observe(&invite, src, i as u64, &cx(false)).expect(ruri);
            r.finish(p, &[]);
        }
        let got = seen.0.lock().unwrap().clone();
        assert_eq!(got.len(), 4, "{got:?}");
        for a in &got {
            assert!(
                matches!(a, Activity::Offered { caller, callee, number: Some(n), .. }
                if caller == "alice@example.com" && callee == "bob@example.com" && n == "+14255550101"),
                "{a:?}"
            );
        }
        // Numbers nobody owns, a number from a trusted peer, another domain's
        // dial string: no call between users.
        for (ruri, trusted) in [
            ("sip:5550199@example.com", false),
            ("tel:+14255550199", false),
            ("sip:5550101@example.com", true),
            ("sip:5550101@other.org;user=phone", false),
        ] {
            let invite = request("INVITE", ruri, "sip:alice@example.com", "", ("", ""));
            assert!(r.observe(&invite, src, 9, &cx(trusted)).is_none(), "{ruri}");
        }
        // Calls by name carry no number.
        let invite = request(
            "INVITE",
            "sip:bob@example.com",
            "sip:alice@example.com",
            "",
            ("", ""),
        );
        let p = r.observe(&invite, src, 10, &cx(false)).unwrap();
        assert!(matches!(p.what, Activity::Offered { number: None, .. }));
    }

    #[test]
    fn a_call_is_recorded_once_authenticated_and_refusals_with_their_code() {
        let (seen, r) = setup();
        let src: SocketAddr = SRC.parse().unwrap();
        let invite = request(
            "INVITE",
            "sip:bob@example.com",
            "sip:alice@example.com",
            "",
            ("", ""),
        );
        // Challenged: nothing.
        let p = r.observe(&invite, src, 1, &cx(false)).unwrap();
        r.finish(
            p,
            &[out(src, "SIP/2.0 407 Proxy Authentication Required\r\n")],
        );
        assert!(seen.0.lock().unwrap().is_empty());
        // Forwarded (100 Trying to the caller, the INVITE elsewhere): offered.
        let p = r.observe(&invite, src, 2, &cx(false)).unwrap();
        r.finish(
            p,
            &[
                out(src, "SIP/2.0 100 Trying\r\n"),
                out(
                    "127.0.0.1:6000".parse().unwrap(),
                    "INVITE sip:bob@x SIP/2.0\r\n",
                ),
            ],
        );
        // Refused by the front end: offered and its final code.
        let p = r.observe(&invite, src, 3, &cx(false)).unwrap();
        r.finish(p, &[out(src, "SIP/2.0 480 User is offline\r\n")]);
        let got = seen.0.lock().unwrap().clone();
        assert_eq!(got.len(), 3);
        assert!(
            matches!(&got[0], Activity::Offered { caller, callee, im: false, at: 2, .. }
            if caller == "alice@example.com" && callee == "bob@example.com")
        );
        assert_eq!(
            got[2],
            Activity::Final {
                call_id: "c1".into(),
                code: 480,
                at: 3
            }
        );
    }

    #[test]
    fn only_calls_between_users_entering_here() {
        let (_seen, r) = setup();
        let src: SocketAddr = SRC.parse().unwrap();
        let none = [
            request(
                "INVITE",
                "sip:bob@example.com",
                "sip:alice@example.com",
                "",
                ("", ""),
            ),
            request(
                "INVITE",
                "sip:carol@example.com",
                "sip:alice@example.com",
                "",
                ("", ""),
            ),
            request(
                "INVITE",
                "tel:+14255550100",
                "sip:alice@example.com",
                "",
                ("", ""),
            ),
            request(
                "INVITE",
                "sip:bob@example.com",
                "sip:+1555@example.com;user=phone",
                "",
                ("", ""),
            ),
            request(
                "INVITE",
                "sip:bob@other.org",
                "sip:alice@example.com",
                "",
                ("", ""),
            ),
            request(
                "SUBSCRIBE",
                "sip:bob@example.com",
                "sip:alice@example.com",
                "",
                ("", ""),
            ),
        ];
        for (i, m) in none.iter().enumerate() {
            // The first from a trusted peer (the Mediation server, a pool peer).
            assert!(r.observe(m, src, 1, &cx(i == 0)).is_none(), "{i}");
        }
        let im = request(
            "INVITE",
            "sip:bob@127.0.0.1",
            "sip:Alice@example.com",
            "",
            ("application/sdp", "v=0\nm=message 5060 sip null\n"),
        );
        let p = r.observe(&im, src, 1, &cx(false)).unwrap();
        assert!(matches!(p.what, Activity::Offered { im: true, .. }));
    }

    #[test]
    fn messages_responses_acks_and_byes() {
        let (seen, r) = setup();
        let src: SocketAddr = SRC.parse().unwrap();
        let pager = request(
            "MESSAGE",
            "sip:bob@example.com",
            "sip:alice@example.com",
            "",
            ("text/plain", "hi"),
        );
        let p = r.observe(&pager, src, 5, &cx(false)).unwrap();
        r.finish(p, &[out(src, "SIP/2.0 480 User is offline\r\n")]);
        let p = r.observe(&pager, src, 6, &cx(false)).unwrap();
        r.finish(p, &[]);
        let in_dialog = request(
            "MESSAGE",
            "sip:bob@127.0.0.1:7000",
            "sip:alice@example.com",
            ";tag=b",
            ("text/plain", "hi"),
        );
        let p = r.observe(&in_dialog, src, 7, &cx(true)).unwrap();
        r.finish(p, &[]);
        let bye = request(
            "BYE",
            "sip:bob@127.0.0.1:7000",
            "sip:alice@example.com",
            ";tag=b",
            ("", ""),
        );
        assert!(r.observe(&bye, src, 8, &cx(false)).is_none());
        let resp = msg(
            "SIP/2.0 486 Busy Here\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\n\
             From: <sip:alice@example.com>;tag=a\nTo: <sip:bob@example.com>;tag=b\n\
             Call-ID: c1\nCSeq: 2 INVITE\nContent-Length: 0\n\n",
        );
        assert!(r.observe(&resp, src, 9, &cx(false)).is_none());
        let got = seen.0.lock().unwrap().clone();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(matches!(
            &got[0],
            Activity::Message {
                in_dialog: false,
                at: 6,
                cseq: 2,
                ..
            }
        ));
        assert!(matches!(
            &got[1],
            Activity::Message {
                in_dialog: true,
                at: 7,
                ..
            }
        ));
        assert_eq!(
            got[2],
            Activity::Bye {
                call_id: "c1".into(),
                at: 8
            }
        );
        assert_eq!(
            got[3],
            Activity::Final {
                call_id: "c1".into(),
                code: 486,
                at: 9
            }
        );
        assert_eq!(status_code(b"SIP/2.0 2"), None);
    }
}
