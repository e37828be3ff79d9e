//! Heap bytes per completed non-INVITE server transaction kept for Timer J over
//! UDP, counted exactly by an instrumented allocator: 5,000 digest REGISTERs as
//! SIPp's `hold_register.xml` sends them, each answered with a 200 like the front
//! end's (Contact with expires, Expires, Allow, Server), the transport's copy of
//! the response freed. Printed without and with the front end's common lines
//! (`Transactions::set_common_lines`), then also without the lines the response
//! copies from its request (`Transactions::respond_to`, what the front end does).
//! `cargo bench -p confab-sip --bench timer_j_memory`; the whole front end per
//! endpoint is `cargo bench -p confab-frontend --bench memory`.

use std::alloc::System;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::transaction::{RequestMatch, Transactions};
use confab_sip::{Message, ResponseBuilder};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The same shape as the front end's destination (transport, address, connection).
#[derive(Clone, Debug, PartialEq, Hash)]
struct Dest {
    transport: u8,
    addr: SocketAddr,
    conn: Option<u64>,
}

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INFO, UPDATE, PRACK, REFER";
const SERVER: &str = "confab/0.1.0";
const N: usize = 5_000;

fn dest(i: usize) -> Dest {
    Dest {
        transport: 0,
        addr: SocketAddr::from(([127, 0, 0, 1], 20_000 + (i % 10_000) as u16)),
        conn: None,
    }
}

fn register(i: usize) -> Option<Message> {
    let p = 20_000 + i % 10_000;
    let raw = format!(
        "REGISTER sip:bench.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-{i}-2-0\r\n\
         From: <sip:user{i:04}@bench.test>;tag={i}SIPpTag002\r\n\
         To: <sip:user{i:04}@bench.test>\r\n\
         Call-ID: 2-{i}@127.0.0.1\r\n\
         CSeq: 3 REGISTER\r\n\
         Contact: <sip:user{i:04}@127.0.0.1:{p}>\r\n\
         Max-Forwards: 70\r\n\
         Expires: 40\r\n\
         Authorization: Digest username=\"user{i:04}\", realm=\"bench.test\", \
         nonce=\"abcdefabcdefabcdefabcdefabcdef\", uri=\"sip:bench.test\", \
         response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Message::parse(Bytes::from(raw), &Default::default()).ok()
}

/// Bytes per completed transaction and the response size.
fn measure(common: bool, with_request: bool) -> (i64, usize) {
    let reqs: Vec<Message> = (0..N).filter_map(register).collect();
    assert_eq!(reqs.len(), N);
    let now = Instant::now();
    let mut tx: Transactions<Dest> = Transactions::new();
    if common {
        let server = format!("Server: {SERVER}");
        let allow = format!("Allow: {ALLOW}");
        tx.set_common_lines(&[
            b"SIP/2.0 200 OK",
            b"SIP/2.0 202 Accepted",
            server.as_bytes(),
            allow.as_bytes(),
            b"Content-Length: 0",
        ]);
    }
    let mut response_bytes = 0;
    let mut first = None;
    let region = Region::new(GLOBAL);
    for (i, m) in reqs.iter().enumerate() {
        let RequestMatch::New(key) = tx.on_request(m, dest(i), false, now) else {
            panic!("REGISTER {i} is not new");
        };
        let p = 20_000 + i % 10_000;
        let ok = ResponseBuilder::new(m, 200)
            .to_tag(format!("{:016x}", i * 7919))
            .header("Server", SERVER)
            .header(
                "Contact",
                format!("<sip:user{i:04}@127.0.0.1:{p}>;expires=40"),
            )
            .header("Expires", "40")
            .header("Allow", ALLOW)
            .build();
        response_bytes += ok.len();
        if i == 7 {
            first = Some(ok.clone());
        }
        // The transport's copy is freed once sent.
        let sent = ok.clone();
        if with_request {
            tx.respond_to(&key, m, 200, ok, now);
        } else {
            tx.respond(&key, 200, ok, now);
        }
        drop(sent);
    }
    let change = region.change();
    let net = change.bytes_allocated as i64 - change.bytes_deallocated as i64;
    // Still answered byte for byte, then gone after Timer J.
    let again = tx.on_request(&reqs[7], dest(7), false, now + Duration::from_secs(31));
    assert_eq!(
        again,
        RequestMatch::Retransmission(first.map(|b| (dest(7), b)))
    );
    tx.poll(now + Duration::from_secs(33));
    assert_eq!(tx.server_count(), 0);
    (net / N as i64, response_bytes / N)
}

fn main() {
    let (plain, response) = measure(false, false);
    let (common, _) = measure(true, false);
    let (request, _) = measure(true, true);
    println!(
        "heap bytes per completed REGISTER transaction kept for Timer J ({N}, response {response} B):"
    );
    println!("  compact store                            {plain:>5} B");
    println!("  compact store, front end's common lines  {common:>5} B");
    println!("  ... and the request's lines referred to  {request:>5} B");
}
