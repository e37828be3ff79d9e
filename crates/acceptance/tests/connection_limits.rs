//! Connections an unauthenticated party opens and leaves idle or half-written are
//! closed, one address cannot take every connection, and WebSocket messages are
//! held to the SIP message limit (issue 15, items 7, 8 and 9) — against a real
//! `confab serve` with short timeouts from its configuration file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_acceptance::sip::{TcpLink, Ua};
use confab_acceptance::ws::WsClient;
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, ensure};

const DOMAIN: &str = "example.com";
/// `limits.idle_timeout_secs` of these servers.
const IDLE: Duration = Duration::from_secs(2);
/// `limits.header_timeout_secs` of these servers.
const HEADER: Duration = Duration::from_secs(1);

/// A server with `[limits]` from `limits` (TOML lines), users alice and bob.
fn server_with(limits: &str) -> Result<(ConfabServer, tempfile::TempDir)> {
    let dir = confab_acceptance::temp_dir("limits-config")?;
    let file = dir.path().join("confab.toml");
    std::fs::write(&file, format!("[limits]\n{limits}\n"))
        .map_err(|e| Error(format!("writing {}: {e}", file.display())))?;
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain(DOMAIN)
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw")
            .arg("--config")
            .arg(&file.to_string_lossy()),
    )?;
    Ok((server, dir))
}

fn short_timeouts() -> Result<(ConfabServer, tempfile::TempDir)> {
    server_with(&format!(
        "idle_timeout_secs = {}\nheader_timeout_secs = {}",
        IDLE.as_secs(),
        HEADER.as_secs()
    ))
}

/// Reads from `s` until the server closes it; how long that took, or `None` if
/// it is still open after `limit`.
fn closed_within<S: Read>(s: &mut S, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(t0.elapsed()),
        }
    }
    None
}

fn tcp(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| Error(format!("connect {addr}: {e}")))?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
}

fn metric(server: &ConfabServer, line_start: &str) -> Result<u64> {
    let text = server.metrics()?;
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error(format!("no metric {line_start:?} in:\n{text}")))
}

#[test]
fn a_silent_tcp_connection_is_closed_after_the_idle_timeout() -> Result<()> {
    let (server, _cfg) = short_timeouts()?;
    let mut s = tcp(server.sip_addr())?;
    let took = closed_within(&mut s, Duration::from_secs(10));
    ensure!(
        took.is_some_and(|t| t >= IDLE - Duration::from_millis(300)),
        "silent TCP connection: closed after {took:?}, expected about {IDLE:?}\n{}",
        server.context()
    );
    ensure!(
        metric(
            &server,
            "confab_connections_timed_out_total{reason=\"idle\"}"
        )? >= 1,
        "no idle time-out counted"
    );
    Ok(())
}

#[test]
fn a_partial_sip_header_is_cut_at_the_header_deadline() -> Result<()> {
    let (server, _cfg) = short_timeouts()?;
    let mut s = tcp(server.sip_addr())?;
    // A header that never ends, a few bytes at a time (each write resets no timer).
    let t0 = Instant::now();
    let head = b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKslow\r\nX-Slow: ";
    s.write_all(head)?;
    let mut closed = None;
    while t0.elapsed() < Duration::from_secs(8) {
        if s.write_all(b"a").is_err() {
            closed = Some(t0.elapsed());
            break;
        }
        if let Some(t) = closed_within(&mut s, Duration::from_millis(250)) {
            closed = Some(t0.elapsed().max(t));
            break;
        }
    }
    ensure!(
        closed.is_some_and(|t| t < IDLE + Duration::from_millis(500)),
        "slow header: closed after {closed:?}, expected about {HEADER:?}\n{}",
        server.context()
    );
    ensure!(
        metric(
            &server,
            "confab_connections_timed_out_total{reason=\"header\"}"
        )? >= 1,
        "no header time-out counted"
    );
    Ok(())
}

fn tls_client(
    server: &ConfabServer,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let pem = server.data_dir().join("tls").join("cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pem).map_err(|e| Error(format!("{e}")))? {
        roots
            .add(cert.map_err(|e| Error(format!("{e}")))?)
            .map_err(|e| Error(format!("{e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error(format!("{e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = server.tls_addr();
    let name = ServerName::try_from(addr.ip().to_string()).map_err(|e| Error(format!("{e}")))?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| Error(format!("{e}")))?;
    let tcp = tcp(addr)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let t0 = Instant::now();
    while stream.conn.is_handshaking() {
        ensure!(
            t0.elapsed() < Duration::from_secs(5),
            "TLS handshake took too long"
        );
        match stream.conn.complete_io(&mut stream.sock) {
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(Error(format!("TLS handshake: {e}"))),
        }
    }
    Ok(stream)
}

#[test]
fn a_tls_session_that_never_sends_sip_is_closed() -> Result<()> {
    let (server, _cfg) = short_timeouts()?;
    let mut s = tls_client(&server)?;
    let took = closed_within(&mut s, Duration::from_secs(10));
    ensure!(
        took.is_some(),
        "a TLS session without SIP stayed open 10 s\n{}",
        server.context()
    );
    Ok(())
}

#[test]
fn a_partial_http_request_is_closed() -> Result<()> {
    let (server, _cfg) = short_timeouts()?;
    let mut s = tcp(server.http_addr()?)?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: confab\r\nX-Slow: ")?;
    let took = closed_within(&mut s, Duration::from_secs(8));
    ensure!(
        took.is_some(),
        "a partial HTTP request stayed open 8 s\n{}",
        server.context()
    );
    // A complete request is still answered.
    ensure!(server.metrics()?.contains("confab_connections"), "metrics");
    Ok(())
}

#[test]
fn an_idle_websocket_is_closed() -> Result<()> {
    let (server, _cfg) = short_timeouts()?;
    let mut ws = WsClient::connect(server.http_addr()?, "/", "sip", Duration::from_secs(5))?;
    ensure!(
        ws.closed_by_server(Duration::from_secs(10)),
        "an idle WebSocket stayed open 10 s\n{}",
        server.context()
    );
    Ok(())
}

#[test]
fn a_registered_tcp_flow_stays_open_past_the_idle_timeout() -> Result<()> {
    let (server, _cfg) = short_timeouts()?;
    let link = TcpLink::connect(server.sip_addr())?;
    let mut ua = Ua::new(link, "alice", "alicepw", DOMAIN);
    server.with_log(ua.register_ok(300))?;
    std::thread::sleep(IDLE * 2);
    // The same connection still carries a request and its answer.
    let r = server.with_log(ua.register_ok(300))?;
    ensure!(r.status() == Some(200), "{}", ua.transcript());
    Ok(())
}

#[test]
fn one_address_cannot_take_every_connection() -> Result<()> {
    // The default per-address cap (128), with long timeouts.
    let (server, _cfg) = server_with("idle_timeout_secs = 600")?;
    let mut held = Vec::new();
    for _ in 0..128 {
        held.push(tcp(server.sip_addr())?);
    }
    // The accepted ones are open (a SIP request on the last one is answered).
    let mut extra = Vec::new();
    for _ in 0..20 {
        extra.push(tcp(server.sip_addr())?);
    }
    for s in &mut extra {
        ensure!(
            closed_within(s, Duration::from_secs(5)).is_some(),
            "a connection over the per-address cap was kept\n{}",
            server.context()
        );
    }
    let refused = metric(
        &server,
        "confab_connections_refused_total{limit=\"per_ip\"}",
    )?;
    ensure!(refused == 20, "refused_total = {refused}, expected 20");
    // Another address is still served.
    let sock = socket_from("127.0.0.2", server.sip_addr())?;
    let mut ua = Ua::new(sock, "bob", "bobpw", DOMAIN);
    server.with_log(ua.register_ok(300))?;
    // Twenty refusals, at most one log line.
    let lines = server
        .log_text()
        .lines()
        .filter(|l| l.contains("connection refused"))
        .count();
    ensure!(
        lines == 1,
        "{lines} log lines for 20 refusals\n{}",
        server.context()
    );
    drop(held);
    Ok(())
}

/// A TCP link bound to a chosen loopback address.
fn socket_from(ip: &str, to: SocketAddr) -> Result<TcpLink> {
    TcpLink::connect_from(ip.parse().map_err(|e| Error(format!("{e}")))?, to)
}

#[test]
fn websocket_messages_over_the_sip_limit_close_the_connection() -> Result<()> {
    let (server, _cfg) = server_with("idle_timeout_secs = 600")?;
    // Fragments without FIN: 3 x 32 KiB is more than the 64 KiB limit.
    let mut ws = WsClient::connect(server.http_addr()?, "/", "sip", Duration::from_secs(5))?;
    let chunk = vec![b'a'; 32 * 1024];
    ws.send_raw_frame(false, 0x1, &chunk)?;
    for _ in 0..2 {
        if ws.send_raw_frame(false, 0x0, &chunk).is_err() {
            break;
        }
    }
    ensure!(
        ws.closed_by_server(Duration::from_secs(5)),
        "a fragmented message over the limit was buffered\n{}",
        server.context()
    );
    // One frame over the limit.
    let mut ws = WsClient::connect(server.http_addr()?, "/", "sip", Duration::from_secs(5))?;
    let _ = ws.send_raw_frame(true, 0x1, &vec![b'a'; 70 * 1024]);
    ensure!(
        ws.closed_by_server(Duration::from_secs(5)),
        "a frame over the limit was accepted\n{}",
        server.context()
    );
    Ok(())
}
