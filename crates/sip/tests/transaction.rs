//! RFC 3261 §17 transaction layer, driven with a fake clock: `base` is one
//! `Instant::now()` and every other instant is `base + offset`, so timer firings are
//! checked to the millisecond.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::parse_str;
use confab_sip::transaction::{
    ClientKey, RequestMatch, ResponseMatch, ServerKey, T1, T2, T4, TimerEvent, Transactions,
};
use confab_sip::{HeaderName, Message, Method, ResponseBuilder};

type Tx = Transactions<&'static str>;
const PEER: &str = "udp:192.0.2.1:5060";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn request(method: &str, branch: Option<&str>, cseq: u32, cseq_method: &str) -> Message {
    let via = match branch {
        Some(b) => format!("SIP/2.0/UDP 192.0.2.1:5060;branch={b}"),
        None => "SIP/2.0/UDP 192.0.2.1:5060".to_owned(),
    };
    parse_str(&format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: {via}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: tx-test-1@192.0.2.1\r\n\
         CSeq: {cseq} {cseq_method}\r\n\
         Route: <sip:proxy.example.com;lr>\r\n\
         Content-Length: 0\r\n\r\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn req(method: &str, branch: &str) -> Message {
    request(method, Some(branch), 1, method)
}

fn response_to(req: &Message, code: u16) -> Message {
    let b = ResponseBuilder::new(req, code).to_tag("b2").build();
    Message::parse(b, &Default::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn new_key(m: RequestMatch<&'static str>) -> ServerKey {
    match m {
        RequestMatch::New(k) => k,
        other => panic!("expected a new transaction, got {other:?}"),
    }
}

/// Runs every timer until none is left (or `until`), returning `(offset, event)`.
fn run_timers(
    tx: &mut Tx,
    base: Instant,
    until: Duration,
) -> Vec<(Duration, TimerEvent<&'static str>)> {
    let mut out = Vec::new();
    while let Some(at) = tx.next_deadline() {
        if at > base + until {
            break;
        }
        for e in tx.poll(at) {
            out.push((at - base, e));
        }
    }
    out
}

fn retransmit_times(events: &[(Duration, TimerEvent<&'static str>)]) -> Vec<u64> {
    events
        .iter()
        .filter(|(_, e)| matches!(e, TimerEvent::Retransmit(..)))
        .map(|(t, _)| t.as_millis() as u64)
        .collect()
}

/// Timer E/G schedule: T1, 2T1, 4T1, then T2 (4 s) until 64*T1.
const CAPPED: [u64; 10] = [
    500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
];

// ------------------------------------------------------------------ server, non-INVITE

/// Completed non-INVITE transactions (Timer J) live in a compact store ordered by
/// completion: many of them, completed at different times, from different sources,
/// with and without an RFC 3261 branch, each answered with its own response until
/// exactly 64*T1 after it, while an INVITE's timers keep running beside them.
#[test]
fn many_completed_non_invite_transactions_expire_in_completion_order() {
    const PEERS: [&str; 3] = [
        "udp:192.0.2.1:5060",
        "udp:192.0.2.2:5060",
        "udp:192.0.2.3:5060",
    ];
    let base = Instant::now();
    let mut tx = Tx::new();
    let invite = req("INVITE", "z9hG4bKinv-beside");
    let ikey = new_key(tx.on_request(&invite, PEER, false, base));
    tx.mark_verified(&ikey);
    let busy = ResponseBuilder::new(&invite, 486).to_tag("i").build();
    assert_eq!(tx.respond(&ikey, 486, busy, base), Some(PEER));

    let mut done = Vec::new();
    for i in 0..30u32 {
        let at = base + ms(u64::from(i) * 100);
        // Every third request has no branch (RFC 2543 matching on Call-ID, CSeq...).
        let m = if i % 3 == 2 {
            request("MESSAGE", None, i + 1, "MESSAGE")
        } else {
            req(
                if i % 2 == 0 { "REGISTER" } else { "MESSAGE" },
                &format!("z9hG4bKmany{i}"),
            )
        };
        let peer = PEERS[i as usize % 3];
        let key = new_key(tx.on_request(&m, peer, false, at));
        let answer = ResponseBuilder::new(&m, 200)
            .to_tag(format!("t{i}"))
            .header("Expires", i.to_string())
            .build();
        // Half are stored with their request's lines referred to (what the front
        // end does for its own answers), half whole (proxied answers).
        let sent = if i % 4 < 2 {
            tx.respond_to(&key, &m, 200, answer.clone(), at)
        } else {
            tx.respond(&key, 200, answer.clone(), at)
        };
        assert_eq!(sent, Some(peer));
        done.push((m, peer, answer, at));
    }
    assert_eq!(tx.completed_count(), 30);
    assert_eq!(tx.server_count(), 31);
    for (m, peer, answer, at) in &done {
        assert_eq!(
            tx.on_request(m, peer, false, *at + 64 * T1 - ms(1)),
            RequestMatch::Retransmission(Some((*peer, answer.clone()))),
            "until Timer J: the stored answer, byte for byte"
        );
    }
    // The same request from elsewhere is not a copy of the first: a new request.
    let (m, ..) = &done[0];
    let key = new_key(tx.on_request(m, "udp:elsewhere", false, base + ms(1)));
    tx.respond_stateless(&key, 403, Bytes::from_static(b"403"), base + ms(1));
    // The INVITE's Timer G still fires among them.
    let events = run_timers(&mut tx, base, ms(600));
    assert_eq!(retransmit_times(&events), [500]);
    // Expiry in completion order, to the millisecond.
    for (i, (m, _, _, at)) in done.iter().enumerate() {
        tx.poll(*at + 64 * T1 - ms(1));
        assert_eq!(
            tx.completed_count(),
            30 - i,
            "entry {i} lives until its Timer J"
        );
        tx.poll(*at + 64 * T1);
        assert_eq!(tx.completed_count(), 29 - i);
        assert!(matches!(
            tx.on_request(m, PEERS[0], false, *at + 64 * T1),
            RequestMatch::New(_)
        ));
    }
}

/// The store is bounded: past the limit the oldest completed transactions end early
/// (their request is new again), the newest are still answered.
#[test]
fn completed_transactions_are_bounded() {
    let base = Instant::now();
    let mut tx = Tx::new();
    tx.set_completed_limit(4096);
    let mut done = Vec::new();
    for i in 0..100 {
        let m = req("MESSAGE", &format!("z9hG4bKbound{i}"));
        let key = new_key(tx.on_request(&m, PEER, false, base));
        let ok = ResponseBuilder::new(&m, 200).to_tag("b").build();
        tx.respond(&key, 200, ok.clone(), base);
        done.push((m, ok));
    }
    let kept = tx.completed_count();
    assert!((1..20).contains(&kept), "kept {kept} of 100 within 4 KiB");
    let (newest, ok) = &done[99];
    assert_eq!(
        tx.on_request(newest, PEER, false, base + ms(1)),
        RequestMatch::Retransmission(Some((PEER, ok.clone())))
    );
    assert!(matches!(
        tx.on_request(&done[0].0, PEER, false, base + ms(1)),
        RequestMatch::New(_)
    ));
}

#[test]
fn udp_non_invite_server_absorbs_retransmissions_until_timer_j() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let m = req("MESSAGE", "z9hG4bKmsg1");
    let key = new_key(tx.on_request(&m, PEER, false, base));
    assert!(matches!(key, ServerKey::Rfc3261 { .. }));
    // Before the TU answers, a retransmission has nothing to resend.
    assert_eq!(
        tx.on_request(&m, PEER, false, base + ms(400)),
        RequestMatch::Retransmission(None)
    );
    let ok = ResponseBuilder::new(&m, 200).to_tag("x").build();
    assert_eq!(
        tx.respond(&key, 200, ok.clone(), base + ms(500)),
        Some(PEER)
    );
    // A second final response is refused.
    assert_eq!(
        tx.respond(&key, 500, Bytes::from_static(b"x"), base + ms(600)),
        None
    );
    for t in [1_000, 5_000, 30_000] {
        assert_eq!(
            tx.on_request(&m, PEER, false, base + ms(t)),
            RequestMatch::Retransmission(Some((PEER, ok.clone())))
        );
    }
    // No retransmissions of a non-INVITE response; Timer J (64*T1) ends it.
    assert!(tx.poll(base + ms(500) + 64 * T1 - ms(1)).is_empty());
    assert_eq!(tx.server_count(), 1);
    assert!(tx.poll(base + ms(500) + 64 * T1).is_empty());
    assert_eq!(tx.server_count(), 0);
    assert_eq!(tx.next_deadline(), None);
    // Afterwards the same request is new again.
    assert!(matches!(
        tx.on_request(&m, PEER, false, base + ms(40_000)),
        RequestMatch::New(_)
    ));
}

/// A response built from its request is kept without the lines it copied from the
/// request (Via, From, To before the tag, Call-ID, CSeq, a Contact before
/// `;expires=`): every retransmission until Timer J still gets the first answer
/// byte for byte, rebuilt from the retransmitted request; a request with the same
/// key that is not a copy of the first (a branch reused with another From, CSeq or
/// Contact) is handled as a new request, never answered with lines it did not
/// send; after 64*T1 the request is new again. The entry, bookkeeping included,
/// takes less than half the response's size: the store keeps it under a bound of
/// that.
#[test]
fn response_stored_without_the_request_lines_is_rebuilt_byte_for_byte() {
    let base = Instant::now();
    let mut tx = Tx::new();
    tx.set_common_lines(&[b"SIP/2.0 200 OK", b"Content-Length: 0"]);
    let register = |from_tag: &str, cseq: u32, contact: &str| {
        parse_str(&format!(
            "REGISTER sip:example.com SIP/2.0\r\n\
             v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKreg1;rport\r\n\
             Max-Forwards: 70\r\n\
             f: <sip:alice@example.com>;tag={from_tag}\r\n\
             t: <sip:alice@example.com>\r\n\
             i: reg-1@192.0.2.1\r\n\
             CSeq: {cseq} REGISTER\r\n\
             m: {contact}\r\n\
             Expires: 40\r\n\
             Content-Length: 0\r\n\r\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let contact = "<sip:alice@192.0.2.1:5060>";
    let m = register("a1", 7, contact);
    let key = new_key(tx.on_request(&m, PEER, false, base));
    let ok = ResponseBuilder::new(&m, 200)
        .to_tag("3f2a9c")
        .header("Contact", format!("{contact};expires=40"))
        .header("Expires", "40")
        .build();
    assert!(ok.starts_with(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKreg1;rport\r\n"
    ));
    tx.set_completed_limit(ok.len() / 2);
    assert_eq!(
        tx.respond_to(&key, &m, 200, ok.clone(), base + ms(2)),
        Some(PEER)
    );
    assert_eq!(
        tx.completed_count(),
        1,
        "kept within half the response's size"
    );
    // The retransmission is the same bytes: a fresh parse of them.
    let again = || {
        Message::parse(m.as_bytes().clone(), &Default::default()).unwrap_or_else(|e| panic!("{e}"))
    };
    for t in [500, 1_500, 3_500, 31_999] {
        assert_eq!(
            tx.on_request(&again(), PEER, false, base + ms(2) + ms(t)),
            RequestMatch::Retransmission(Some((PEER, ok.clone()))),
            "at {t} ms"
        );
    }
    for other in [
        register("a2", 7, contact),
        register("a1", 8, contact),
        register("a1", 7, "<sip:alice@192.0.2.99:5060>"),
    ] {
        let key = new_key(tx.on_request(&other, PEER, false, base + ms(1_000)));
        // A retransmission of it is absorbed while it is pending.
        assert_eq!(
            tx.on_request(&other, PEER, false, base + ms(1_001)),
            RequestMatch::Retransmission(None)
        );
        tx.respond_stateless(&key, 403, Bytes::from_static(b"403"), base + ms(1_002));
    }
    assert_eq!(tx.completed_count(), 1);
    tx.poll(base + ms(2) + 64 * T1 - ms(1));
    assert_eq!(tx.completed_count(), 1);
    tx.poll(base + ms(2) + 64 * T1);
    assert_eq!(tx.completed_count(), 0);
    assert!(matches!(
        tx.on_request(&again(), PEER, false, base + ms(2) + 64 * T1),
        RequestMatch::New(_)
    ));
}

#[test]
fn stateless_challenge_ends_a_non_invite_transaction_but_not_an_invite() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let m = req("REGISTER", "z9hG4bKreg1");
    let key = new_key(tx.on_request(&m, PEER, false, base));
    let challenge = ResponseBuilder::new(&m, 401).to_tag("x").build();
    assert_eq!(tx.respond_stateless(&key, 401, challenge, base), Some(PEER));
    // Nothing is kept: no Timer J, and a retransmission is a new request.
    assert_eq!(tx.server_count(), 0);
    assert_eq!(tx.next_deadline(), None);
    assert!(matches!(
        tx.on_request(&m, PEER, false, base + ms(500)),
        RequestMatch::New(_)
    ));
    // An unknown transaction is not answered.
    assert_eq!(
        tx.respond_stateless(&key, 401, Bytes::from_static(b"x"), base + ms(600)),
        Some(PEER)
    );
    assert_eq!(
        tx.respond_stateless(&key, 401, Bytes::from_static(b"x"), base + ms(600)),
        None
    );

    // An INVITE's 407 over UDP from a source nobody verified is sent once: a
    // spoofed source must not get it eleven times (issue 15, item 10).
    let inv = req("INVITE", "z9hG4bKinv1");
    let key = new_key(tx.on_request(&inv, PEER, false, base));
    let challenge = ResponseBuilder::new(&inv, 407).to_tag("y").build();
    assert_eq!(
        tx.respond_stateless(&key, 407, challenge.clone(), base),
        Some(PEER)
    );
    assert_eq!(tx.server_count(), 0);
    assert!(run_timers(&mut tx, base, Duration::from_secs(60)).is_empty());
    // Its ACK matches nothing and goes to the core (which drops it).
    let ack = request("ACK", Some("z9hG4bKinv1"), 1, "ACK");
    assert_eq!(
        tx.on_request(&ack, PEER, false, base + ms(100)),
        RequestMatch::Ack
    );
}

#[test]
fn unverified_invite_final_responses_are_sent_once_verified_ones_retransmitted() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let inv = req("INVITE", "z9hG4bKamp1");
    let key = new_key(tx.on_request(&inv, PEER, false, base));
    let nf = ResponseBuilder::new(&inv, 404).to_tag("y").build();
    assert_eq!(tx.respond(&key, 404, nf.clone(), base), Some(PEER));
    assert!(run_timers(&mut tx, base, Duration::from_secs(60)).is_empty());
    assert_eq!(tx.server_count(), 0);

    let inv = req("INVITE", "z9hG4bKamp2");
    let key = new_key(tx.on_request(&inv, PEER, false, base));
    tx.mark_verified(&key);
    let busy = ResponseBuilder::new(&inv, 486).to_tag("y").build();
    assert_eq!(tx.respond(&key, 486, busy.clone(), base), Some(PEER));
    assert_eq!(tx.poll(base + T1), vec![TimerEvent::Retransmit(PEER, busy)]);
}

#[test]
fn provisional_is_resent_for_retransmissions() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let m = req("SUBSCRIBE", "z9hG4bKsub1");
    let key = new_key(tx.on_request(&m, PEER, false, base));
    let trying = ResponseBuilder::new(&m, 100).build();
    assert_eq!(tx.respond(&key, 100, trying.clone(), base), Some(PEER));
    assert_eq!(
        tx.on_request(&m, PEER, false, base + ms(500)),
        RequestMatch::Retransmission(Some((PEER, trying)))
    );
}

// ------------------------------------------------------------------ server, INVITE

#[test]
fn invite_server_486_retransmitted_by_timer_g_then_timer_h() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let inv = req("INVITE", "z9hG4bKinv1");
    let key = new_key(tx.on_request(&inv, PEER, false, base));
    tx.mark_verified(&key);
    let trying = ResponseBuilder::new(&inv, 100).build();
    assert_eq!(tx.respond(&key, 100, trying.clone(), base), Some(PEER));
    assert!(
        tx.poll(base + ms(10_000)).is_empty(),
        "1xx is never retransmitted by the layer"
    );
    assert_eq!(
        tx.on_request(&inv, PEER, false, base + ms(10_000)),
        RequestMatch::Retransmission(Some((PEER, trying)))
    );

    let busy = ResponseBuilder::new(&inv, 486).to_tag("b2").build();
    let t0 = base + ms(10_000);
    assert_eq!(tx.respond(&key, 486, busy.clone(), t0), Some(PEER));
    let events = run_timers(&mut tx, t0, Duration::from_secs(60));
    // Timer G: T1, doubling, capped at T2; Timer H at 64*T1.
    assert_eq!(retransmit_times(&events), CAPPED);
    for (_, e) in &events {
        if let TimerEvent::Retransmit(to, b) = e {
            assert_eq!((*to, b), (PEER, &busy));
        }
    }
    let last = events.last().unwrap();
    assert_eq!(last, &(64 * T1, TimerEvent::ServerNoAck(key)));
    assert_eq!(tx.server_count(), 0);
    assert_eq!(T2, 8 * T1);
}

#[test]
fn invite_server_ack_stops_timer_g_and_is_absorbed() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let inv = req("INVITE", "z9hG4bKinv2");
    let key = new_key(tx.on_request(&inv, PEER, false, base));
    tx.mark_verified(&key);
    let busy = ResponseBuilder::new(&inv, 486).to_tag("b2").build();
    tx.respond(&key, 486, busy.clone(), base).unwrap();
    // two retransmissions (0.5 s, 1.5 s), then the ACK arrives at 2 s
    let events = run_timers(&mut tx, base, ms(2_000));
    assert_eq!(retransmit_times(&events), [500, 1_500]);
    // A retransmitted INVITE gets the 486 again.
    assert_eq!(
        tx.on_request(&inv, PEER, false, base + ms(1_800)),
        RequestMatch::Retransmission(Some((PEER, busy)))
    );
    let ack = request("ACK", Some("z9hG4bKinv2"), 1, "ACK");
    assert_eq!(ServerKey::of(&ack), Some(key.clone()));
    assert_eq!(
        tx.on_request(&ack, PEER, false, base + ms(2_000)),
        RequestMatch::AckAbsorbed
    );
    // Confirmed: ACK retransmissions absorbed, no more 486, no Timer H event.
    assert_eq!(
        tx.on_request(&ack, PEER, false, base + ms(3_000)),
        RequestMatch::AckAbsorbed
    );
    let later = run_timers(&mut tx, base, Duration::from_secs(60));
    assert!(later.is_empty(), "{later:?}");
    // Timer I (T4) has ended the transaction: a late ACK goes to the core.
    assert_eq!(tx.server_count(), 0);
    assert_eq!(
        tx.on_request(&ack, PEER, false, base + ms(2_000) + T4),
        RequestMatch::Ack
    );
}

#[test]
fn invite_2xx_moves_the_server_transaction_to_accepted() {
    // RFC 6026 §7.1 (issue 15, item 14): after a 2xx the INVITE server
    // transaction stays Accepted until Timer L (64*T1): a retransmitted INVITE is
    // absorbed, not handled as a new request; ACKs and further 2xx pass.
    let base = Instant::now();
    let mut tx = Tx::new();
    let inv = req("INVITE", "z9hG4bKinv3");
    let key = new_key(tx.on_request(&inv, PEER, false, base));
    let ok = ResponseBuilder::new(&inv, 200).to_tag("b").build();
    assert_eq!(tx.respond(&key, 200, ok.clone(), base), Some(PEER));
    assert_eq!(tx.server_count(), 1);
    assert_eq!(
        tx.on_request(&inv, PEER, false, base + ms(500)),
        RequestMatch::Retransmission(None),
        "a retransmitted INVITE is absorbed; the TU retransmits 2xx"
    );
    // Another 2xx (a forked answer) is passed on.
    assert_eq!(tx.respond(&key, 200, ok, base + ms(600)), Some(PEER));
    // The ACK for a 2xx has its own branch and goes to the core.
    assert_eq!(
        tx.on_request(&req("ACK", "z9hG4bKack3"), PEER, false, base),
        RequestMatch::Ack
    );
    // Nothing is retransmitted by the layer; Timer L ends the transaction.
    let e = run_timers(&mut tx, base, Duration::from_secs(60));
    assert!(retransmit_times(&e).is_empty(), "{e:?}");
    assert_eq!(tx.server_count(), 0);
    assert!(matches!(
        tx.on_request(&inv, PEER, false, base + 64 * T1 + ms(1)),
        RequestMatch::New(_)
    ));
}

#[test]
fn branchless_ack_for_2xx_in_accepted_goes_to_the_core() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let inv = request("INVITE", None, 5, "INVITE");
    let key = new_key(tx.on_request(&inv, PEER, false, base));
    tx.respond(
        &key,
        200,
        ResponseBuilder::new(&inv, 200).to_tag("b").build(),
        base,
    );
    let ack = request("ACK", None, 5, "ACK");
    assert_eq!(
        tx.on_request(&ack, PEER, false, base + ms(100)),
        RequestMatch::Ack
    );
}

#[test]
fn cancel_finds_its_invite() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let inv = req("INVITE", "z9hG4bKinv4");
    let key = new_key(tx.on_request(&inv, PEER, false, base));
    let cancel = request("CANCEL", Some("z9hG4bKinv4"), 1, "CANCEL");
    assert_eq!(ServerKey::cancel_target(&cancel), key);
    assert!(tx.has_server(&ServerKey::cancel_target(&cancel)));
    // CANCEL is its own (non-INVITE) transaction.
    let ck = new_key(tx.on_request(&cancel, PEER, false, base));
    assert_ne!(ck, key);
    assert_eq!(tx.server_count(), 2);
}

// ------------------------------------------------------------------ RFC 2543 matching

#[test]
fn rfc2543_requests_without_branch_match_their_retransmissions() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let inv = request("INVITE", None, 7, "INVITE");
    let key = new_key(tx.on_request(&inv, PEER, false, base));
    assert!(matches!(key, ServerKey::Rfc2543 { cseq: 7, .. }));
    assert_eq!(
        tx.on_request(&inv, PEER, false, base + ms(500)),
        RequestMatch::Retransmission(None)
    );
    let busy = ResponseBuilder::new(&inv, 486).to_tag("b2").build();
    // A verified sender (authenticated, trusted, in a signed dialog): its final
    // answer is kept and re-sent on a retransmission (unverified ones are answered
    // statelessly, see `unverified_invite_final_responses_are_sent_once...`).
    tx.mark_verified(&key);
    tx.respond(&key, 486, busy.clone(), base + ms(600)).unwrap();
    assert_eq!(
        tx.on_request(&inv, PEER, false, base + ms(700)),
        RequestMatch::Retransmission(Some((PEER, busy)))
    );
    // A new CSeq is a new transaction; so is the same request from another sent-by.
    assert!(matches!(
        tx.on_request(&request("INVITE", None, 8, "INVITE"), PEER, false, base),
        RequestMatch::New(_)
    ));
    let other = parse_str(
        &String::from_utf8_lossy(inv.as_bytes()).replace("192.0.2.1:5060", "192.0.2.99:5060"),
    )
    .unwrap();
    assert!(matches!(
        tx.on_request(&other, PEER, false, base),
        RequestMatch::New(_)
    ));
    // The branchless ACK matches the INVITE (CSeq number, Call-ID, From tag, sent-by).
    let ack = request("ACK", None, 7, "ACK");
    assert_eq!(
        tx.on_request(&ack, PEER, false, base + ms(800)),
        RequestMatch::AckAbsorbed
    );
}

#[test]
fn sipe_branchless_message_and_invite() {
    // pidgin-sipe sends INVITE, ACK, MESSAGE and BYE without a branch.
    let base = Instant::now();
    let mut tx = Tx::new();
    let load = |n: &str| common::parse(&common::load("sipe", n)).unwrap();
    let msg = load("demo-69-in-MESSAGE-alice-to-bob.sip");
    let key = new_key(tx.on_request(&msg, PEER, true, base));
    // TCP: the transaction ends with the response; a retransmission would be new.
    tx.respond(&key, 200, ResponseBuilder::new(&msg, 200).build(), base)
        .unwrap();
    assert_eq!(tx.server_count(), 0);
    let msg = load("demo-69-in-MESSAGE-alice-to-bob.sip");
    let key = new_key(tx.on_request(&msg, PEER, false, base));
    let ok = ResponseBuilder::new(&msg, 200).build();
    tx.respond(&key, 200, ok.clone(), base).unwrap();
    assert_eq!(
        tx.on_request(&msg, PEER, false, base + ms(1)),
        RequestMatch::Retransmission(Some((PEER, ok)))
    );

    let inv = load("demo-63-in-INVITE-im-alice-to-bob-no-branch.sip");
    let key = new_key(tx.on_request(&inv, PEER, true, base));
    tx.respond(
        &key,
        200,
        ResponseBuilder::new(&inv, 200).to_tag("309579907").build(),
        base,
    )
    .unwrap();
    // The ACK of the 2xx has no transaction: the core gets it.
    let ack = load("demo-67-in-ACK-no-branch.sip");
    assert_eq!(tx.on_request(&ack, PEER, true, base), RequestMatch::Ack);
}

#[test]
fn bare_magic_cookie_branch_falls_back_to_rfc2543() {
    // RFC 4475 badbranch: two different requests whose branch is only "z9hG4bK"
    // must not be taken for retransmissions of each other.
    let base = Instant::now();
    let mut tx = Tx::new();
    let a = request("OPTIONS", Some("z9hG4bK"), 1, "OPTIONS");
    let b = request("OPTIONS", Some("z9hG4bK"), 2, "OPTIONS");
    let ka = new_key(tx.on_request(&a, PEER, false, base));
    assert!(matches!(ka, ServerKey::Rfc2543 { .. }));
    assert!(matches!(
        tx.on_request(&b, PEER, false, base),
        RequestMatch::New(_)
    ));
    assert_eq!(
        tx.on_request(&a, PEER, false, base),
        RequestMatch::Retransmission(None)
    );
}

// ------------------------------------------------------------------ client, non-INVITE

fn client_key(m: &Message) -> ClientKey {
    let Some(branch) = m.top_via().branch() else {
        panic!("no branch")
    };
    ClientKey {
        branch: branch.into(),
        method: m.cseq().1.clone(),
    }
}

#[test]
fn client_non_invite_timer_e_then_timer_f() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let m = req("NOTIFY", "z9hG4bKcli1");
    let key = client_key(&m);
    tx.start_client(key.clone(), m.as_bytes().clone(), PEER, false, base);
    let events = run_timers(&mut tx, base, Duration::from_secs(60));
    assert_eq!(retransmit_times(&events), CAPPED);
    assert!(events.iter().all(|(_, e)| match e {
        TimerEvent::Retransmit(to, b) => *to == PEER && b == m.as_bytes(),
        _ => true,
    }));
    assert_eq!(
        events.last().unwrap(),
        &(64 * T1, TimerEvent::ClientTimeout(key))
    );
    assert_eq!(tx.client_count(), 0);
}

#[test]
fn client_non_invite_provisional_then_final() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let m = req("MESSAGE", "z9hG4bKcli2");
    let key = client_key(&m);
    tx.start_client(key.clone(), m.as_bytes().clone(), PEER, false, base);
    let e = run_timers(&mut tx, base, ms(1_600));
    assert_eq!(retransmit_times(&e), [500, 1_500]);
    // A 1xx at 1.6 s: Proceeding; the next retransmission (due at 3.5 s) comes, then
    // every T2.
    let trying = response_to(&m, 100);
    assert_eq!(
        tx.on_response(&trying, base + ms(1_600)),
        ResponseMatch::Provisional(key.clone())
    );
    // Every provisional response goes up (§17.1.1.2).
    assert_eq!(
        tx.on_response(&trying, base + ms(1_700)),
        ResponseMatch::Provisional(key.clone())
    );
    let e = run_timers(&mut tx, base, ms(12_000));
    assert_eq!(retransmit_times(&e), [3_500, 7_500, 11_500]);
    let ok = response_to(&m, 200);
    assert_eq!(
        tx.on_response(&ok, base + ms(12_000)),
        ResponseMatch::Final(key.clone(), None)
    );
    assert_eq!(
        tx.on_response(&ok, base + ms(12_100)),
        ResponseMatch::Retransmission(None)
    );
    // Timer K (T4), then the transaction is gone and no timeout is reported.
    let e = run_timers(&mut tx, base, Duration::from_secs(60));
    assert!(
        retransmit_times(&e).is_empty()
            && e.iter()
                .all(|(_, e)| !matches!(e, TimerEvent::ClientTimeout(_))),
        "{e:?}"
    );
    assert_eq!(tx.client_count(), 0);
    assert_eq!(tx.on_response(&ok, base + ms(40_000)), ResponseMatch::Stray);
}

#[test]
fn stray_responses() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let m = req("MESSAGE", "z9hG4bKcli3");
    tx.start_client(client_key(&m), m.as_bytes().clone(), PEER, false, base);
    let other = req("MESSAGE", "z9hG4bKother");
    assert_eq!(
        tx.on_response(&response_to(&other, 200), base),
        ResponseMatch::Stray
    );
    // Same branch, other method (CSeq): another transaction.
    let opt = req("OPTIONS", "z9hG4bKcli3");
    assert_eq!(
        tx.on_response(&response_to(&opt, 200), base),
        ResponseMatch::Stray
    );
    // A request is never a response.
    assert_eq!(tx.on_response(&m, base), ResponseMatch::Stray);
}

// ------------------------------------------------------------------ client, INVITE

#[test]
fn client_invite_timer_a_doubles_and_timer_b_times_out() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let inv = req("INVITE", "z9hG4bKcinv1");
    let key = client_key(&inv);
    tx.start_client(key.clone(), inv.as_bytes().clone(), PEER, false, base);
    let events = run_timers(&mut tx, base, Duration::from_secs(60));
    // Timer A doubles without the T2 cap: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    assert_eq!(
        retransmit_times(&events),
        [500, 1_500, 3_500, 7_500, 15_500, 31_500]
    );
    assert_eq!(
        events.last().unwrap(),
        &(64 * T1, TimerEvent::ClientTimeout(key))
    );
    assert_eq!(tx.client_count(), 0);
}

#[test]
fn client_invite_1xx_stops_timer_a_and_non_2xx_is_acked() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let inv = req("INVITE", "z9hG4bKcinv2");
    let key = client_key(&inv);
    tx.start_client(key.clone(), inv.as_bytes().clone(), PEER, false, base);
    let e = run_timers(&mut tx, base, ms(600));
    assert_eq!(retransmit_times(&e), [500]);
    let ringing = response_to(&inv, 180);
    assert_eq!(
        tx.on_response(&ringing, base + ms(600)),
        ResponseMatch::Provisional(key.clone())
    );
    // No retransmission after the 1xx, and no Timer B: ringing may last longer than
    // 64*T1 (ending it is the TU's Timer C).
    let e = run_timers(&mut tx, base, ms(100_000));
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(tx.client_count(), 1);

    let busy = response_to(&inv, 486);
    let t = base + ms(100_000);
    let ack = match tx.on_response(&busy, t) {
        ResponseMatch::Final(k, Some((to, ack))) => {
            assert_eq!((k, to), (key.clone(), PEER));
            ack
        }
        other => panic!("{other:?}"),
    };
    let a = Message::parse(ack.clone(), &Default::default()).unwrap();
    assert_eq!(a.method(), Some(&Method::Ack));
    assert_eq!(a.request_uri(), inv.request_uri());
    assert_eq!(a.cseq(), (1, &Method::Ack));
    assert_eq!(a.call_id(), inv.call_id());
    assert_eq!(a.from_tag(), Some("a1"));
    assert_eq!(a.to_tag(), Some("b2"), "To of the response");
    assert_eq!(
        a.top_via_str(),
        inv.top_via_str(),
        "same branch as the INVITE"
    );
    assert_eq!(
        a.header(HeaderName::Route),
        Some("<sip:proxy.example.com;lr>")
    );
    assert_eq!(a.max_forwards(), Some(70));
    // A retransmitted 486 gets the same ACK again.
    assert_eq!(
        tx.on_response(&busy, t + ms(500)),
        ResponseMatch::Retransmission(Some((PEER, ack)))
    );
    // Timer D (32 s on UDP) ends the transaction.
    assert!(tx.poll(t + ms(31_999)).is_empty());
    assert_eq!(tx.client_count(), 1);
    assert!(tx.poll(t + ms(32_000)).is_empty());
    assert_eq!(tx.client_count(), 0);
}

#[test]
fn client_invite_every_provisional_goes_up() {
    // Issue 15, item 13: a callee that sends 100, then 180, then 183 with early
    // media: all three reach the TU, and Timer A stays stopped.
    let base = Instant::now();
    let mut tx = Tx::new();
    let inv = req("INVITE", "z9hG4bKcinv9");
    let key = client_key(&inv);
    tx.start_client(key.clone(), inv.as_bytes().clone(), PEER, false, base);
    for (i, code) in [100u16, 180, 183, 180].into_iter().enumerate() {
        assert_eq!(
            tx.on_response(&response_to(&inv, code), base + ms(100 + i as u64)),
            ResponseMatch::Provisional(key.clone()),
            "{code}"
        );
    }
    let e = run_timers(&mut tx, base, ms(100_000));
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn client_invite_2xx_ends_the_transaction() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let inv = req("INVITE", "z9hG4bKcinv3");
    let key = client_key(&inv);
    tx.start_client(key.clone(), inv.as_bytes().clone(), PEER, false, base);
    assert_eq!(
        tx.on_response(&response_to(&inv, 200), base + ms(100)),
        ResponseMatch::Final(key, None)
    );
    assert_eq!(tx.client_count(), 0);
    // 2xx retransmissions go to the TU (stray for the transaction layer).
    assert_eq!(
        tx.on_response(&response_to(&inv, 200), base + ms(600)),
        ResponseMatch::Stray
    );
    assert!(run_timers(&mut tx, base, Duration::from_secs(60)).is_empty());
}

// ------------------------------------------------------------------ reliable transports

#[test]
fn tcp_transactions_never_retransmit() {
    let base = Instant::now();
    let mut tx = Tx::new();
    // server non-INVITE: over after the final response (Timer J = 0)
    let m = req("MESSAGE", "z9hG4bKtcp1");
    let key = new_key(tx.on_request(&m, PEER, true, base));
    tx.respond(&key, 200, ResponseBuilder::new(&m, 200).build(), base)
        .unwrap();
    assert_eq!(tx.server_count(), 0);
    assert_eq!(tx.next_deadline(), None);

    // server INVITE: no Timer G, Timer H still guards the ACK; the ACK ends it at once.
    let inv = req("INVITE", "z9hG4bKtcp2");
    let key = new_key(tx.on_request(&inv, PEER, true, base));
    tx.respond(
        &key,
        486,
        ResponseBuilder::new(&inv, 486).to_tag("b").build(),
        base,
    )
    .unwrap();
    let ack = request("ACK", Some("z9hG4bKtcp2"), 1, "ACK");
    assert_eq!(
        tx.on_request(&ack, PEER, true, base + ms(100)),
        RequestMatch::AckAbsorbed
    );
    assert_eq!(tx.server_count(), 0);
    let inv = req("INVITE", "z9hG4bKtcp3");
    let key = new_key(tx.on_request(&inv, PEER, true, base));
    tx.respond(
        &key,
        486,
        ResponseBuilder::new(&inv, 486).to_tag("b").build(),
        base,
    )
    .unwrap();
    let e = run_timers(&mut tx, base, Duration::from_secs(60));
    assert_eq!(e, [(64 * T1, TimerEvent::ServerNoAck(key))]);

    // client non-INVITE: no Timer E, Timer F still applies
    let n = req("NOTIFY", "z9hG4bKtcp4");
    let key = client_key(&n);
    tx.start_client(key.clone(), n.as_bytes().clone(), PEER, true, base);
    let e = run_timers(&mut tx, base, Duration::from_secs(60));
    assert_eq!(e, [(64 * T1, TimerEvent::ClientTimeout(key))]);

    // client INVITE: no Timer A, Timer B applies; a final response ends it at once
    // (Timer D = 0) with the ACK.
    let inv = req("INVITE", "z9hG4bKtcp5");
    let key = client_key(&inv);
    tx.start_client(key.clone(), inv.as_bytes().clone(), PEER, true, base);
    assert!(matches!(
        tx.on_response(&response_to(&inv, 603), base + ms(10)),
        ResponseMatch::Final(_, Some(_))
    ));
    assert_eq!(tx.client_count(), 0);
    assert!(run_timers(&mut tx, base, Duration::from_secs(60)).is_empty());
    let inv = req("INVITE", "z9hG4bKtcp6");
    let key = client_key(&inv);
    tx.start_client(key.clone(), inv.as_bytes().clone(), PEER, true, base);
    let e = run_timers(&mut tx, base, Duration::from_secs(60));
    assert_eq!(e, [(64 * T1, TimerEvent::ClientTimeout(key))]);
}

#[test]
fn forget_client_drops_its_timers() {
    let base = Instant::now();
    let mut tx = Tx::new();
    let m = req("MESSAGE", "z9hG4bKfor1");
    let key = client_key(&m);
    tx.start_client(key.clone(), m.as_bytes().clone(), PEER, false, base);
    tx.forget_client(&key);
    assert_eq!(tx.client_count(), 0);
    assert!(run_timers(&mut tx, base, Duration::from_secs(60)).is_empty());
}
