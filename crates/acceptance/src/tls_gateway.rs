//! A PSTN gateway over SIP/TLS for the Mediation role's TLS trunks.
//!
//! Debian's SIPp is built without OpenSSL (`-t l1` is refused), so this small
//! user agent server plays the gateway over TLS: rustls with a self-signed
//! certificate naming 127.0.0.1 (made by `confab-tls`, whose file the server is
//! given as `[mediation] gateway_ca`). It answers one call — `INVITE` -> `100`,
//! `180`, `200` (SDP pointing at an RTP echo socket); `ACK`; `BYE` -> `200` —
//! echoes the caller's RTP meanwhile, and reports every request it received.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// What the gateway saw.
#[derive(Debug, Clone, Default)]
pub struct GatewayLog {
    /// Each request received, whole (start line, headers, body).
    pub requests: Vec<String>,
    /// RTP packets echoed.
    pub rtp_echoed: u64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

impl GatewayLog {
    /// The requests' start lines.
    pub fn start_lines(&self) -> Vec<&str> {
        self.requests
            .iter()
            .map(|r| r.lines().next().unwrap_or(""))
            .collect()
    }
}

/// A running TLS gateway (one call).
pub struct TlsGateway {
    pub addr: SocketAddr,
    /// The certificate to trust (`[mediation] gateway_ca`).
    pub ca_file: PathBuf,
    handle: Option<JoinHandle<GatewayLog>>,
    stop: Arc<AtomicBool>,
}

impl TlsGateway {
    /// Listens on 127.0.0.1:`port` with a certificate created in `dir`.
    pub fn start(dir: &Path, port: u16) -> Result<TlsGateway> {
        let material = confab_tls::load_or_create(dir, &["gateway.invalid".to_owned()])
            .map_err(|e| Error(format!("gateway certificate: {e}")))?;
        let config = confab_tls::server_config(&material)
            .map_err(|e| Error(format!("gateway TLS configuration: {e}")))?;
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut log = GatewayLog::default();
            if let Err(e) = serve(&listener, config, &s, &mut log) {
                log.error = Some(e.0);
            }
            log
        });
        Ok(TlsGateway {
            addr,
            ca_file: material.cert_path,
            handle: Some(handle),
            stop,
        })
    }

    /// Waits (at most `limit`) for the call to end and returns what was seen.
    pub fn finish(mut self, limit: Duration) -> GatewayLog {
        let end = Instant::now() + limit;
        while self.handle.as_ref().is_some_and(|h| !h.is_finished()) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_else(|| GatewayLog {
                error: Some("the gateway thread panicked".into()),
                ..GatewayLog::default()
            })
    }
}

impl Drop for TlsGateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How long the gateway waits for its call at most.
const CALL_LIMIT: Duration = Duration::from_secs(60);

fn serve(
    listener: &TcpListener,
    config: Arc<rustls::ServerConfig>,
    stop: &AtomicBool,
    log: &mut GatewayLog,
) -> Result<()> {
    let end = Instant::now() + CALL_LIMIT;
    let (tcp, _) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::Relaxed) || Instant::now() > end {
                    return Err(Error("no connection came".into()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    };
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(Duration::from_millis(200)))?;
    let conn =
        rustls::ServerConnection::new(config).map_err(|e| Error(format!("TLS session: {e}")))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let echo = RtpEcho::start()?;
    let mut buf: Vec<u8> = Vec::new();
    let tag = "gwtls1";
    loop {
        if stop.load(Ordering::Relaxed) || Instant::now() > end {
            log.rtp_echoed = echo.stop();
            return Err(Error("the call did not end in time".into()));
        }
        let Some(msg) = next_message(&mut tls, &mut buf)? else {
            continue;
        };
        log.requests.push(msg.clone());
        let method = msg.split_whitespace().next().unwrap_or("").to_owned();
        match method.as_str() {
            "INVITE" => {
                write(&mut tls, &response(&msg, "100 Trying", None, None))?;
                write(&mut tls, &response(&msg, "180 Ringing", Some(tag), None))?;
                let sdp = format!(
                    "v=0\r\no=gw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
                    echo.port
                );
                write(&mut tls, &response(&msg, "200 OK", Some(tag), Some(&sdp)))?;
            }
            "BYE" => {
                write(&mut tls, &response(&msg, "200 OK", None, None))?;
                log.rtp_echoed = echo.stop();
                return Ok(());
            }
            "ACK" => {}
            _ => write(&mut tls, &response(&msg, "200 OK", None, None))?,
        }
    }
}

fn write(tls: &mut impl Write, data: &str) -> Result<()> {
    tls.write_all(data.as_bytes())?;
    tls.flush()?;
    Ok(())
}

/// The next complete SIP message from the stream (`None`: nothing yet).
fn next_message(rd: &mut impl Read, buf: &mut Vec<u8>) -> Result<Option<String>> {
    loop {
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    let name = name.trim().to_ascii_lowercase();
                    (name == "content-length" || name == "l").then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0usize);
            if buf.len() >= end + 4 + len {
                let msg: Vec<u8> = buf.drain(..end + 4 + len).collect();
                return Ok(Some(String::from_utf8_lossy(&msg).into_owned()));
            }
        }
        let mut chunk = [0u8; 4096];
        match rd.read(&mut chunk) {
            Ok(0) => return Err(Error("the Mediation server closed the connection".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(Error(format!("reading from the Mediation server: {e}"))),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The values of header `name` (full name only) in `msg`'s header section.
fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

/// A response to `req`: its Via, From, To (with `tag` added), Call-ID, CSeq.
fn response(req: &str, status: &str, tag: Option<&str>, sdp: Option<&str>) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in headers(req, "Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["From", "Call-ID", "CSeq"] {
        for v in headers(req, name) {
            out.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    for v in headers(req, "To") {
        match tag {
            Some(t) if !v.contains(";tag=") => out.push_str(&format!("To: {v};tag={t}\r\n")),
            _ => out.push_str(&format!("To: {v}\r\n")),
        }
    }
    if tag.is_some() {
        out.push_str("Contact: <sip:gateway@127.0.0.1;transport=tls>\r\n");
    }
    match sdp {
        Some(b) => out.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => out.push_str("Content-Length: 0\r\n\r\n"),
    }
    out
}

/// Sends every UDP packet back where it came from.
struct RtpEcho {
    port: u16,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl RtpEcho {
    fn start() -> Result<RtpEcho> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let port = sock.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (s, c) = (stop.clone(), count.clone());
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf)
                    && sock.send_to(&buf[..n], from).is_ok()
                {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(RtpEcho {
            port,
            stop,
            count,
            handle: Some(handle),
        })
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for RtpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
