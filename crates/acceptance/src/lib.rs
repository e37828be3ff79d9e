//! Acceptance-test harness for confab.
//!
//! Everything here treats confab as a black box: the `confab` binary is run as a
//! child process ([`ConfabServer`]) in a fresh temporary data directory, users are
//! provisioned through its CLI, and the server is driven from the outside by real SIP
//! tools ([`Sipp`], the baresip script under `tests/clients/baresip/`, pidgin-sipe in
//! bitlbee through `tests/clients/sipe/` ([`sipe`])) or by the small clients in this
//! crate ([`sip::Ua`] over UDP, TCP or WebSocket).
//!
//! Conventions:
//! * everything listens on and talks to 127.0.0.1 only;
//! * every port comes from [`ports`], so tests can run in parallel;
//! * every wait is bounded; child processes are killed (by their own handle) on drop;
//! * failures carry the relevant logs (server log tail, SIPp errors) in the message.
//!
//! Environment variables:
//! * `CONFAB_BIN` - use this `confab` binary instead of building/finding one;
//! * `CONFAB_SKIP_EXTERNAL=1` - skip (instead of fail) tests whose external tools
//!   (`sipp`, `baresip`, `python3`) are not installed;
//! * `CONFAB_KEEP_TMP=1` - keep the temporary directories (their paths are printed);
//! * `CONFAB_TEST_EXTERNAL=sip=HOST:PORT[,http=HOST:PORT][,domain=D]` - do not spawn
//!   confab but run the tests against an already running server that has the test
//!   users provisioned (used to validate the harness against a reference registrar;
//!   tests that need to restart or provision the server skip themselves).

pub mod digest;
pub mod monitoring;
pub mod pg;
pub mod ports;
pub mod server;
pub mod sip;
pub mod sipe;
pub mod sipe_chat;
pub mod sipp;
pub mod tls_gateway;
pub mod tools;
pub mod web;
pub mod ws;
pub mod xccos;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use ports::{free_port, free_port_pair, free_ports};
pub use server::{ConfabServer, ServerOptions, run_bounded};
pub use sipp::{Sipp, SippRun, Transport};
pub use tools::tools_required;

/// Error of the harness: a human-readable message that already contains the
/// relevant context (log tails etc.). `Debug` prints the message verbatim so that
/// `#[test] fn x() -> Result<()>` and `.unwrap()` show readable multi-line text.
#[derive(Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(format!("I/O error: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `ensure!(cond, "format", args..)`: return an [`Error`] from the enclosing function
/// when `cond` is false.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::Error(format!($($arg)+)));
        }
    };
}

/// Adds context to errors: `io_call().ctx("while doing x")?`.
pub trait Context<T> {
    fn ctx(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error(format!("{what}: {e}")))
    }
}

/// The repository root (the Cargo workspace root).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// `tests/` at the repository root (SIPp scenarios, client scripts).
pub fn tests_dir() -> PathBuf {
    repo_root().join("tests")
}

/// The last `n` lines of `text`, indented, for failure messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("    ... ({start} earlier lines)\n"));
    }
    for l in &lines[start..] {
        out.push_str("    ");
        out.push_str(l);
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("    (empty)\n");
    }
    out
}

/// Reads a file as (lossy) UTF-8; empty string if it does not exist.
pub fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Polls `f` every `step` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(
    timeout: Duration,
    step: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(step);
    }
}

/// A process-unique, hard-to-guess token (tags, branches, message texts).
pub fn unique_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:08x}{:04x}", ports::random_u64() as u32, n & 0xffff)
}

/// Whether `CONFAB_KEEP_TMP=1` asks to keep temporary directories.
pub fn keep_tmp() -> bool {
    std::env::var("CONFAB_KEEP_TMP").is_ok_and(|v| v == "1")
}

/// A temporary directory `confab-<prefix>.XXXX` under the system temp dir that is
/// deleted on drop unless `CONFAB_KEEP_TMP=1`.
pub fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    let prefix = format!("confab-{prefix}.");
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix);
    if keep_tmp() {
        b.disable_cleanup(true);
    }
    let d = b.tempdir().ctx("creating a temporary directory")?;
    if keep_tmp() {
        eprintln!("[acceptance] keeping {}", d.path().display());
    }
    Ok(d)
}
