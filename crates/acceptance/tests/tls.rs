//! SIP over TLS (rustls on both sides): the client verifies the server against the
//! self-signed certificate `confab serve` generated into its data directory, signs
//! in with digest and exchanges a MESSAGE with a UDP user.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_acceptance::sip::{Link, Ua, UdpLink, take_stream_message};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, ensure, unique_token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const DOMAIN: &str = "example.com";

struct TlsLink {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    local: std::net::SocketAddr,
    buf: Vec<u8>,
}

impl TlsLink {
    fn connect(server: &ConfabServer) -> Result<TlsLink> {
        let pem = server.data_dir().join("tls").join("cert.pem");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&pem)
            .map_err(|e| Error(format!("{}: {e}", pem.display())))?
        {
            let cert = cert.map_err(|e| Error(format!("{}: {e}", pem.display())))?;
            roots
                .add(cert)
                .map_err(|e| Error(format!("bad certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error(format!("TLS config: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let addr = server.tls_addr();
        let name =
            ServerName::try_from(addr.ip().to_string()).map_err(|e| Error(format!("{e}")))?;
        let conn = rustls::ClientConnection::new(Arc::new(config), name)
            .map_err(|e| Error(format!("{e}")))?;
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| Error(format!("connect {addr}: {e}")))?;
        let local = tcp.local_addr().map_err(|e| Error(format!("{e}")))?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        // Complete the handshake now, so a certificate problem shows up here.
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| Error(format!("TLS handshake with {addr}: {e}")))?;
        Ok(TlsLink {
            stream,
            local,
            buf: Vec::new(),
        })
    }
}

impl Link for TlsLink {
    fn send(&mut self, data: &[u8]) -> Result<()> {
        self.stream
            .write_all(data)
            .map_err(|e| Error(format!("TLS send: {e}")))?;
        self.stream
            .flush()
            .map_err(|e| Error(format!("TLS flush: {e}")))
    }
    fn recv(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let end = Instant::now() + timeout;
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(m) = take_stream_message(&mut self.buf) {
                return Ok(Some(m));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| Error(format!("{e}")))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Error::new("TLS connection closed by the server")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(Error(format!("TLS recv: {e}"))),
            }
        }
    }
    fn via(&self) -> String {
        format!("SIP/2.0/TLS {}", self.local)
    }
    fn contact_hostport(&self) -> String {
        self.local.to_string()
    }
    fn transport_param(&self) -> Option<&'static str> {
        Some("tls")
    }
    fn reliable(&self) -> bool {
        true
    }
}

#[test]
fn tls_user_registers_and_exchanges_messages_with_udp_user() -> Result<()> {
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain(DOMAIN)
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw"),
    )?;
    if server.skip_if_external("tls_user_registers_and_exchanges_messages_with_udp_user") {
        return Ok(());
    }
    let mut alice = Ua::new(
        server.with_log(TlsLink::connect(&server))?,
        "alice",
        "alicepw",
        DOMAIN,
    );
    server.with_log(alice.register_ok(300))?;
    let mut bob = Ua::new(UdpLink::new(server.sip_addr())?, "bob", "bobpw", DOMAIN);
    server.with_log(bob.register_ok(300))?;

    for (what, from_alice) in [("TLS->UDP", true), ("UDP->TLS", false)] {
        let text = format!("confab {what} {}", unique_token());
        let (sent, received) = std::thread::scope(|s| {
            if from_alice {
                let to = bob.aor();
                let rx = s.spawn(|| bob.wait_message_containing(&text, Duration::from_secs(10)));
                let sent = alice.send_message(&to, &text);
                (
                    sent,
                    rx.join()
                        .unwrap_or_else(|_| Err(Error::new("receiver panicked"))),
                )
            } else {
                let to = alice.aor();
                let rx = s.spawn(|| alice.wait_message_containing(&text, Duration::from_secs(10)));
                let sent = bob.send_message(&to, &text);
                (
                    sent,
                    rx.join()
                        .unwrap_or_else(|_| Err(Error::new("receiver panicked"))),
                )
            }
        });
        let resp = server.with_log(sent)?;
        ensure!(
            resp.status() == Some(200),
            "{what}: final response {} (want 200)",
            resp.first_line
        );
        server.with_log(received)?;
    }
    Ok(())
}
