//! HTTPS for the web tests: one request at a time over rustls, the server
//! verified against its own (self-signed) certificate; and where the browser
//! tests (tests/web, headless Chromium) put their screenshots.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::{ConfabServer, Error, Result, repo_root};

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

pub fn tls_config(server: &ConfabServer) -> Result<Arc<rustls::ClientConfig>> {
    let pem = server.data_dir().join("tls").join("cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(&pem).map_err(|e| Error(format!("{}: {e}", pem.display())))?
    {
        let cert = cert.map_err(|e| Error(format!("{}: {e}", pem.display())))?;
        roots
            .add(cert)
            .map_err(|e| Error(format!("bad certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error(format!("TLS config: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// One HTTPS request (`Connection: close`), the server verified against its own
/// certificate; a POST's body is sent as JSON.
pub fn https(
    server: &ConfabServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Answer> {
    let mut all = headers.to_vec();
    let body = body.unwrap_or("");
    if method == "POST" {
        all.push(("Content-Type", "application/json"));
    }
    let a = https_bytes(server, method, path, &all, body.as_bytes())?;
    Ok(Answer {
        status: a.status,
        headers: a.headers,
        body: String::from_utf8_lossy(&a.body).into_owned(),
    })
}

/// An HTTP answer with its body as bytes.
pub struct RawAnswer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// One HTTPS request with a byte body (`Content-Length` always sent for POST and
/// PUT), the answer's body as bytes.
pub fn https_bytes(
    server: &ConfabServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<RawAnswer> {
    let addr = server.http_addr()?;
    let name = ServerName::try_from(addr.ip().to_string()).map_err(|e| Error(format!("{e}")))?;
    let conn = rustls::ClientConnection::new(tls_config(server)?, name)
        .map_err(|e| Error(format!("{e}")))?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| Error(format!("connect {addr}: {e}")))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| Error(format!("{e}")))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes)
        .map_err(|e| Error(format!("{method} {path}: {e}")))?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            // The server may close without close_notify once the answer is out.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => return Err(Error(format!("{method} {path}: reading: {e}"))),
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            Error(format!(
                "{method} {path}: no HTTP answer: {:?}",
                String::from_utf8_lossy(&raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error(format!("{method} {path}: bad status line in {head:?}")))?;
    let mut hs = HashMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            hs.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let body = if hs
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Ok(RawAnswer {
        status,
        headers: hs,
        body,
    })
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]).into_owned();
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// Where the browser tests save their screenshots: `target/web-screenshots/`
/// (or `$CARGO_TARGET_DIR/web-screenshots/`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("web-screenshots")
}

/// The Chromium the browser tests drive (`$CHROMIUM`, else Debian's).
pub fn chromium_path() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Why the browser tests cannot run here, if they cannot.
pub fn browser_skip_reason() -> Option<String> {
    let web = repo_root().join("tests").join("web");
    let chromium = chromium_path();
    if !Path::new(&chromium).exists() {
        Some(format!(
            "{chromium} is not installed (apt-get install chromium)"
        ))
    } else if !web.join("node_modules").join("playwright-core").exists() {
        Some("tests/web/node_modules is missing (run `npm ci` in tests/web)".to_owned())
    } else if Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        Some("node is not installed".to_owned())
    } else {
        None
    }
}
