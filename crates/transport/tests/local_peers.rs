//! Two servers of one process linked in-process (`Transports::link_local`): what
//! one sends to the other's UDP address arrives parsed, from the sender's UDP
//! address, in order, without the kernel; everything else still goes over UDP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use confab_frontend::{Dest, Output, Transport};
use confab_transport::local::LinkError;
use confab_transport::{Connections, Event, TransportLimits, Transports};
use tokio::sync::mpsc;

async fn start(queue: usize) -> (Transports, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel(queue);
    let conns = Connections::new(TransportLimits::default(), tx);
    let t = Transports::start("127.0.0.1:0".parse().unwrap(), None, conns)
        .await
        .unwrap();
    (t, rx)
}

fn options(n: usize) -> Bytes {
    Bytes::from(format!(
        "OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK{n}\r\n\
         From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: c{n}\r\n\
         CSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ))
}

fn udp(addr: std::net::SocketAddr) -> Dest {
    Dest {
        transport: Transport::Udp,
        addr,
        conn: None,
    }
}

async fn next(rx: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("channel open")
}

#[tokio::test]
async fn linked_servers_exchange_messages_in_process_and_in_order() {
    let (a, mut a_rx) = start(1024).await;
    let (b, mut b_rx) = start(4).await; // a small queue: some datagrams wait for room
    a.link_local(a.udp_addr(), vec![(b.udp_addr(), b.connections().clone())])
        .unwrap();
    b.link_local(b.udp_addr(), vec![(a.udp_addr(), a.connections().clone())])
        .unwrap();
    assert_eq!(
        a.link_local(a.udp_addr(), vec![]),
        Err(LinkError::AlreadyLinked)
    );

    // A batch from a's core (the path of the sending task), then one directly.
    let mut outs: Vec<Output> = (1..=20)
        .map(|n| Output::Send {
            dest: udp(b.udp_addr()),
            data: options(n),
        })
        .collect();
    a.deliver_all(&mut outs);
    for n in 1..=21 {
        if n == 21 {
            // (a direct send may overtake a batch still queued for the sending
            // task, over the kernel as well: sent once the batch has arrived)
            a.deliver(Output::Send {
                dest: udp(b.udp_addr()),
                data: options(21),
            });
        }
        match next(&mut b_rx).await {
            Event::Message(m, from) => {
                assert_eq!(from.addr, a.udp_addr(), "source is a's UDP address");
                assert_eq!(from.transport, Transport::Udp);
                assert_eq!(m.call_id(), format!("c{n}"));
            }
            other => panic!("expected message {n}, got {other:?}"),
        }
    }
    assert_eq!(a.local_counts(), (21, 0));

    // The other way, and a malformed datagram is reported as such.
    b.deliver(Output::Send {
        dest: udp(a.udp_addr()),
        data: Bytes::from_static(b"NOT SIP AT ALL\r\n\r\n"),
    });
    assert!(matches!(next(&mut a_rx).await, Event::Malformed(_, d) if d.addr == b.udp_addr()));

    // An address that is not linked still goes through the kernel.
    let other = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    a.deliver(Output::Send {
        dest: udp(other.local_addr().unwrap()),
        data: options(99),
    });
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), other.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, a.udp_addr());
    assert!(buf[..n].starts_with(b"OPTIONS "));
    assert_eq!(
        a.local_counts(),
        (21, 0),
        "the kernel's datagram is not counted"
    );
}

#[tokio::test]
async fn a_wildcard_address_cannot_be_linked() {
    let (a, _a_rx) = start(16).await;
    let any = "0.0.0.0:5060".parse().unwrap();
    assert_eq!(a.link_local(any, vec![]), Err(LinkError::Wildcard(any)));
}
