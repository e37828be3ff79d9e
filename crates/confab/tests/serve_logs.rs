//! What `confab serve` writes to its log when a new operator starts it: no
//! terminal colour codes in a file or pipe, and which address it advertises.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child (by its own handle) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `confab serve` with its standard error on a pipe and returns what it
/// logged until a line containing `until` (at most 30 s).
fn serve_log(sip: &str, until: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_confab"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args([
            "serve",
            "--sip",
            sip,
            "--tls",
            &format!("127.0.0.1:{}", free_port()),
            "--http",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let stderr = server.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + Duration::from_secs(30);
    let mut log = String::new();
    while let Ok(line) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        log.push_str(&line);
        log.push('\n');
        if line.contains(until) {
            return log;
        }
    }
    panic!("no log line with {until:?} within 30 s:\n{log}");
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let log = serve_log(
        &format!("127.0.0.1:{}", free_port()),
        "confab front end ready",
    );
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a piped log:\n{log:?}"
    );
    assert!(log.contains(" INFO "), "{log}");
}

/// The address the kernel would send from on the default route, as the server
/// finds it (none on a machine without a route).
fn primary_v4() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect(SocketAddr::from((Ipv4Addr::new(198, 51, 100, 1), 9)))
        .ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn a_wildcard_bind_advertises_the_primary_address_and_says_so() {
    let log = serve_log(
        &format!("0.0.0.0:{}", free_port()),
        "confab front end ready",
    );
    let line = log
        .lines()
        .find(|l| l.contains("in Via, Record-Route and Contact"))
        .unwrap_or_else(|| panic!("no line saying what is advertised:\n{log}"));
    match primary_v4() {
        Some(ip) => {
            assert!(
                line.contains(&format!("advertising {ip} ")),
                "expected {ip}: {line}"
            );
            assert!(line.contains("primary address"), "{line}");
            assert!(!line.contains("127.0.0.1"), "{line}");
        }
        None => assert!(line.contains("advertising 127.0.0.1"), "{line}"),
    }
}
