//! Idle and header timeouts, registered flows and per-address caps of the TCP
//! transport, over real loopback sockets (timeouts of a second or two).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_frontend::{Dest, Output};
use confab_transport::{Connections, Event, TransportLimits, Transports};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

async fn start(limits: TransportLimits) -> (Transports, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel(1024);
    let conns = Connections::new(limits, tx);
    let t = Transports::start("127.0.0.1:0".parse().unwrap(), None, conns)
        .await
        .unwrap();
    (t, rx)
}

fn limits(idle: u64, header: u64) -> TransportLimits {
    TransportLimits {
        idle_timeout: Duration::from_secs(idle),
        header_timeout: Duration::from_secs(header),
        ..TransportLimits::default()
    }
}

/// Reads until the server closes the connection; how long that took, or `None`
/// when it is still open after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((t0 + limit).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t0.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

const REGISTER: &str = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bKreg1\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: reg-1\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@127.0.0.1:5099;transport=tcp>\r\nContent-Length: 0\r\n\r\n";

fn answer(method: &str, expires: Option<u32>) -> Bytes {
    let exp = expires
        .map(|e| format!("Expires: {e}\r\n"))
        .unwrap_or_default();
    Bytes::from(format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bKreg1\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>;tag=2\r\nCall-ID: reg-1\r\nCSeq: 1 {method}\r\n{exp}Content-Length: 0\r\n\r\n"
    ))
}

/// The next message event (skipping others), with its source.
async fn next_message(rx: &mut mpsc::Receiver<Event>) -> Dest {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(Event::Message(_, dest))) => return dest,
            Ok(Some(_)) => {}
            other => panic!("no message event: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let (t, _rx) = start(limits(1, 10)).await;
    let mut s = TcpStream::connect(t.tcp_addr()).await.unwrap();
    let took = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("a silent connection must be closed");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert_eq!(t.connections().timed_out(), (1, 0));
    assert_eq!(t.connections().count(), 0);
}

#[tokio::test]
async fn keep_alive_pings_do_not_hold_an_unregistered_connection() {
    let (t, _rx) = start(limits(1, 10)).await;
    let mut s = TcpStream::connect(t.tcp_addr()).await.unwrap();
    let pinger = async {
        for _ in 0..20 {
            if s.write_all(b"\r\n\r\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    pinger.await;
    assert!(
        closed_within(&mut s, Duration::from_secs(1))
            .await
            .is_some(),
        "pings alone kept the connection open"
    );
}

#[tokio::test]
async fn a_message_sent_byte_by_byte_is_cut_at_the_header_deadline() {
    let (t, _rx) = start(limits(30, 1)).await;
    let s = TcpStream::connect(t.tcp_addr()).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let t0 = Instant::now();
    let trickle = tokio::spawn(async move {
        for b in REGISTER.as_bytes().iter().take(200) {
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf))
        .await
        .expect("still open 5 s into a slow header");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(t.connections().timed_out(), (0, 1));
    trickle.abort();
}

#[tokio::test]
async fn a_registered_flow_outlives_the_idle_timeout_and_an_unregistered_one_does_not() {
    let (t, mut rx) = start(limits(1, 10)).await;
    let mut registered = TcpStream::connect(t.tcp_addr()).await.unwrap();
    registered.write_all(REGISTER.as_bytes()).await.unwrap();
    let reg_dest = next_message(&mut rx).await;
    t.deliver(Output::Send {
        dest: reg_dest,
        data: answer("REGISTER", Some(60)),
    });
    let mut other = TcpStream::connect(t.tcp_addr()).await.unwrap();
    other.write_all(REGISTER.as_bytes()).await.unwrap();
    let dest = next_message(&mut rx).await;
    // Any other 200 (here to a MESSAGE) does not make a flow.
    t.deliver(Output::Send {
        dest,
        data: answer("MESSAGE", Some(60)),
    });

    let mut buf = [0u8; 4096];
    let n = registered.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200"));
    assert!(
        closed_within(&mut other, Duration::from_secs(4))
            .await
            .is_some(),
        "the unregistered connection stayed open"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Still open: a request over it reaches the server.
    registered.write_all(REGISTER.as_bytes()).await.unwrap();
    let again = next_message(&mut rx).await;
    assert_eq!(again.conn, reg_dest.conn, "the same connection");
    assert_eq!(t.connections().count(), 1);
}

#[tokio::test]
async fn unregistering_ends_the_flow() {
    let (t, mut rx) = start(limits(1, 10)).await;
    let mut s = TcpStream::connect(t.tcp_addr()).await.unwrap();
    s.write_all(REGISTER.as_bytes()).await.unwrap();
    let dest = next_message(&mut rx).await;
    t.deliver(Output::Send {
        dest,
        data: answer("REGISTER", Some(60)),
    });
    t.deliver(Output::Send {
        dest,
        data: answer("REGISTER", Some(0)),
    });
    assert!(
        closed_within(&mut s, Duration::from_secs(4))
            .await
            .is_some(),
        "an unregistered flow must fall back to the idle timeout"
    );
}

async fn connect_from(ip: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(format!("{ip}:0").parse().unwrap())?;
    s.connect(to).await
}

#[tokio::test]
async fn one_address_is_capped_and_others_still_get_in() {
    let lim = TransportLimits {
        max_connections_per_ip: 3,
        ..limits(30, 10)
    };
    let (t, _rx) = start(lim).await;
    let conns: Arc<Connections> = t.connections().clone();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.1", t.tcp_addr()).await.unwrap());
    }
    // Wait until the three are registered.
    let end = Instant::now() + Duration::from_secs(5);
    while conns.count() < 3 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(conns.count(), 3);
    let mut extra = Vec::new();
    for _ in 0..5 {
        extra.push(connect_from("127.0.0.1", t.tcp_addr()).await.unwrap());
    }
    for s in &mut extra {
        assert!(
            closed_within(s, Duration::from_secs(3)).await.is_some(),
            "a connection over the per-address cap stayed open"
        );
    }
    assert_eq!(conns.refused(), (5, 0));
    // Another address is served.
    let mut other = connect_from("127.0.0.2", t.tcp_addr()).await.unwrap();
    assert!(
        closed_within(&mut other, Duration::from_millis(500))
            .await
            .is_none(),
        "another address was refused"
    );
    assert_eq!(conns.count(), 4);
    drop(held);
}
