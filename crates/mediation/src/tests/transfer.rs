//! REFER-less blind transfer (b2bua/transfer.rs): the gateway never sees a REFER.

use super::*;

const TARGET_SDP: &str = "v=0\r\no=- 3 3 IN IP4 10.3.3.3\r\ns=-\r\nc=IN IP4 10.3.3.3\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";

/// A confirmed inbound call: the gateway (gw1) called alice's number; alice's
/// side answered. Returns the INVITE the front end got (the pool leg).
fn inbound_call(m: &mut Mediation, t0: Instant) -> Message {
    let invite = with_body(
        "INVITE sip:5550100@127.0.0.1:5070;user=phone SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKg1
From: \"PSTN\" <sip:12065550111@127.0.0.2>;tag=g1
To: <sip:5550100@127.0.0.1>
Call-ID: gw-call
CSeq: 1 INVITE
Contact: <sip:gw@127.0.0.2:5080>",
        GW_SDP,
    );
    let out = m.on_datagram(invite, addr(GW1), t0, &mut NoRelays);
    let inv = to(&out, FE).remove(0);
    let out = m.on_datagram(
        answer(&inv, 200, Some(CLIENT_SDP)),
        addr(FE),
        t0,
        &mut NoRelays,
    );
    let ok = to(&out, GW1).remove(0);
    assert_eq!(ok.status(), Some(200));
    let ack = no_body(&format!(
        "ACK sip:mediation@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKg2
From: \"PSTN\" <sip:12065550111@127.0.0.2>;tag=g1
To: <sip:5550100@127.0.0.1>;tag={}
Call-ID: gw-call
CSeq: 1 ACK",
        ok.to_tag().unwrap()
    ));
    assert!(m.on_datagram(ack, addr(GW1), t0, &mut NoRelays).is_empty());
    inv
}

/// An in-dialog request from alice's side of the call `inv` opened.
fn from_alice(inv: &Message, method: &str, cseq: u32, extra: &str) -> Bytes {
    no_body(&format!(
        "{method} sip:mediation@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr{cseq}
From: <sip:alice@example.com>;tag=gwtag
To: {}
Call-ID: {}
CSeq: {cseq} {method}{extra}",
        inv.header(HeaderName::From).unwrap(),
        inv.call_id()
    ))
}

fn sipfrag(m: &Message) -> String {
    assert_eq!(m.method(), Some(&Method::Notify));
    assert_eq!(m.header_str("Event"), Some("refer"));
    String::from_utf8_lossy(m.body()).trim().to_owned()
}

#[test]
fn blind_transfer_to_a_user_re_invites_the_gateway_and_hangs_up_the_transferor() {
    let mut m = mediation(false);
    let t0 = Instant::now();
    let inv = inbound_call(&mut m, t0);

    // alice transfers the caller to bob.
    let refer = from_alice(&inv, "REFER", 2, "\nRefer-To: <sip:bob@example.com>");
    let out = m.on_datagram(refer.clone(), addr(FE), t0, &mut NoRelays);
    assert!(to(&out, GW1).is_empty(), "the gateway sees no REFER");
    let fe = to(&out, FE);
    assert_eq!(fe[0].status(), Some(202));
    assert_eq!(fe[1].call_id(), inv.call_id());
    assert_eq!(sipfrag(&fe[1]), "SIP/2.0 100 Trying");
    assert!(
        fe[1]
            .header_str("Subscription-State")
            .unwrap()
            .starts_with("active")
    );
    let target = fe[2].clone();
    assert_eq!(target.method(), Some(&Method::Invite));
    assert_eq!(target.request_uri(), Some("sip:bob@example.com"));
    assert_ne!(target.call_id(), inv.call_id());
    assert!(
        target.body().is_empty(),
        "no offer: bob's answer brings one"
    );
    assert!(
        target
            .header(HeaderName::From)
            .unwrap()
            .contains("sip:12065550111@example.com"),
        "bob sees the PSTN caller"
    );
    // A retransmitted REFER gets the same 202 again.
    let out = m.on_datagram(refer, addr(FE), t0, &mut NoRelays);
    assert_eq!(to(&out, FE)[0].status(), Some(202));
    // The INVITE to bob is retransmitted until an answer.
    let out = m.poll(t0 + Duration::from_millis(600), &mut NoRelays);
    assert_eq!(to(&out, FE)[0].call_id(), target.call_id());

    // bob rings, then answers with his offer: the gateway is re-INVITEd with it.
    let out = m.on_datagram(answer(&target, 180, None), addr(FE), t0, &mut NoRelays);
    assert!(out.is_empty(), "{out:?}");
    let bob_ok = answer(&target, 200, Some(TARGET_SDP));
    let out = m.on_datagram(bob_ok.clone(), addr(FE), t0, &mut NoRelays);
    let reinvite = to(&out, GW1).remove(0);
    assert_eq!(reinvite.method(), Some(&Method::Invite));
    assert_eq!(reinvite.call_id(), "gw-call");
    assert_eq!(reinvite.request_uri(), Some("sip:gw@127.0.0.2:5080"));
    assert_eq!(reinvite.to_tag(), Some("g1"));
    assert_eq!(reinvite.body(), TARGET_SDP.as_bytes());
    assert!(
        to(&out, FE).is_empty(),
        "bob's ACK waits for the gateway's answer"
    );
    // bob's retransmitted 200 changes nothing.
    assert!(
        m.on_datagram(bob_ok, addr(FE), t0, &mut NoRelays)
            .is_empty()
    );

    // The gateway answers: ACKed; bob gets the gateway's answer in his ACK;
    // alice gets NOTIFY 200 (terminated) and a BYE.
    let out = m.on_datagram(
        answer(&reinvite, 200, Some(GW_SDP)),
        addr(GW1),
        t0,
        &mut NoRelays,
    );
    let gw = to(&out, GW1);
    assert_eq!(gw[0].method(), Some(&Method::Ack));
    assert_eq!(gw[0].cseq().0, reinvite.cseq().0);
    let fe = to(&out, FE);
    assert_eq!(fe.len(), 3, "{fe:?}");
    assert_eq!(fe[0].method(), Some(&Method::Ack));
    assert_eq!(fe[0].call_id(), target.call_id());
    assert_eq!(fe[0].to_tag(), Some("gwtag"));
    assert_eq!(fe[0].body(), GW_SDP.as_bytes());
    assert_eq!(fe[1].call_id(), inv.call_id());
    assert_eq!(sipfrag(&fe[1]), "SIP/2.0 200 OK");
    assert!(
        fe[1]
            .header_str("Subscription-State")
            .unwrap()
            .starts_with("terminated")
    );
    assert_eq!(fe[2].method(), Some(&Method::Bye));
    assert_eq!(fe[2].call_id(), inv.call_id());
    // alice's own BYE crossing ours is answered; so is nothing else of hers.
    let out = m.on_datagram(from_alice(&inv, "BYE", 3, ""), addr(FE), t0, &mut NoRelays);
    assert_eq!(to(&out, FE)[0].status(), Some(200));
    assert!(
        m.on_datagram(answer(&fe[2], 200, None), addr(FE), t0, &mut NoRelays)
            .is_empty()
    );
    assert_eq!(m.call_count(), 1);

    // The PSTN party hangs up: bob's dialog gets the BYE.
    let bye = no_body(&format!(
        "BYE sip:mediation@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKg3
From: \"PSTN\" <sip:12065550111@127.0.0.2>;tag=g1
To: {}
Call-ID: gw-call
CSeq: 2 BYE",
        reinvite.header(HeaderName::From).unwrap()
    ));
    let out = m.on_datagram(bye, addr(GW1), t0, &mut NoRelays);
    assert_eq!(to(&out, GW1)[0].status(), Some(200));
    let bob_bye = to(&out, FE).remove(0);
    assert_eq!(bob_bye.method(), Some(&Method::Bye));
    assert_eq!(bob_bye.call_id(), target.call_id());
    assert_eq!(bob_bye.to_tag(), Some("gwtag"));
    let out = m.on_datagram(answer(&bob_bye, 200, None), addr(FE), t0, &mut NoRelays);
    let r = records(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].code, 200);
    assert_eq!(m.call_count(), 0);
}

#[test]
fn transfer_to_a_number_goes_over_the_routes_trunks_and_a_failure_is_notified() {
    let mut m = mediation(false);
    let t0 = Instant::now();
    let inv = inbound_call(&mut m, t0);
    // Refusals before anything is placed (each a new REFER, next CSeq).
    let mut cseq = 2;
    for (extra, code) in [
        ("", 400),
        ("\nRefer-To: <sip:bob@other.org>", 403),
        (
            "\nRefer-To: <sip:bob@example.com?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>",
            501,
        ),
        ("\nRefer-To: <sip:999@example.com;user=phone>", 404),
        ("\nRefer-To: <tel:+4930123456>", 403),
    ] {
        let out = m.on_datagram(
            from_alice(&inv, "REFER", cseq, extra),
            addr(FE),
            t0,
            &mut NoRelays,
        );
        let fe = to(&out, FE);
        assert_eq!(fe.len(), 1, "{extra}: {fe:?}");
        assert_eq!(fe[0].status(), Some(code), "{extra}");
        cseq += 1;
    }

    // A number nobody owns: normalized, over the route's first trunk (gw1,
    // with its translation), no offer.
    let refer = from_alice(
        &inv,
        "REFER",
        cseq,
        "\nRefer-To: <sip:5550199@example.com;user=phone>",
    );
    let out = m.on_datagram(refer, addr(FE), t0, &mut NoRelays);
    assert_eq!(to(&out, FE)[0].status(), Some(202));
    let t1 = to(&out, GW1).remove(0);
    assert_eq!(t1.method(), Some(&Method::Invite));
    assert_eq!(
        t1.request_uri(),
        Some("sip:14255550199@127.0.0.2:5080;user=phone")
    );
    assert!(t1.body().is_empty());
    // gw1 is silent: the next trunk after the failover timeout.
    let out = m.poll(t0 + Duration::from_secs(5), &mut NoRelays);
    let t2 = to(&out, GW2).remove(0);
    assert_eq!(
        t2.request_uri(),
        Some("sip:+14255550199@127.0.0.3:5080;user=phone")
    );
    // gw2 answers busy: ACKed, alice is told, the call goes on.
    let out = m.on_datagram(answer(&t2, 486, None), addr(GW2), t0, &mut NoRelays);
    assert_eq!(to(&out, GW2)[0].method(), Some(&Method::Ack));
    let fe = to(&out, FE);
    assert_eq!(sipfrag(&fe[0]), "SIP/2.0 486 X");
    assert!(
        fe[0]
            .header_str("Subscription-State")
            .unwrap()
            .starts_with("terminated")
    );
    assert!(to(&out, GW1).is_empty());
    assert_eq!(m.call_count(), 1);
    // Nothing is due for the call before its 32 s: no stray retransmission or
    // hang-up (the timer heap may wake the loop early; that sends nothing).
    assert!(
        m.poll(t0 + Duration::from_secs(30), &mut NoRelays)
            .is_empty()
    );
    assert_eq!(m.call_count(), 1);

    // A second transfer, to a user's number, while alice hangs up early: the
    // gateway's party stays for the target; the target refuses: hung up.
    let refer = from_alice(&inv, "REFER", cseq + 1, "\nRefer-To: <tel:+14255550100>");
    let out = m.on_datagram(refer, addr(FE), t0, &mut NoRelays);
    let fe = to(&out, FE);
    let target = fe[2].clone();
    assert_eq!(target.request_uri(), Some("sip:alice@example.com"));
    let out = m.on_datagram(
        from_alice(&inv, "BYE", cseq + 2, ""),
        addr(FE),
        t0,
        &mut NoRelays,
    );
    assert_eq!(to(&out, FE)[0].status(), Some(200));
    assert!(to(&out, GW1).is_empty(), "the PSTN party is kept");
    let out = m.on_datagram(answer(&target, 480, None), addr(FE), t0, &mut NoRelays);
    assert_eq!(to(&out, FE)[0].method(), Some(&Method::Ack));
    let gw_bye = to(&out, GW1).remove(0);
    assert_eq!(gw_bye.method(), Some(&Method::Bye));
    let out = m.on_datagram(answer(&gw_bye, 200, None), addr(GW1), t0, &mut NoRelays);
    assert_eq!(records(&out).len(), 1);
    assert_eq!(m.call_count(), 0);
}
