//! [`ConfabServer`]: the `confab` binary as a child process in a temporary data
//! directory, on free loopback ports.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use crate::{Context, Error, Result, free_port, read_lossy, repo_root, tail};

/// What to provision and how to run `confab serve`.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// SIP domain and digest realm (`--domain`). Default `example.com`.
    pub domain: String,
    /// Users added one by one with `confab --data DIR user add ADDRESS --password PW`.
    pub users: Vec<(String, String)>,
    /// Users added in one go with `confab --data DIR user import FILE.csv`
    /// (`address,password` rows, no header line).
    pub import: Vec<(String, String)>,
    /// Extra arguments appended to `confab --data DIR serve ...`.
    pub extra_args: Vec<String>,
    /// Extra environment variables for every `confab` invocation.
    pub env: Vec<(String, String)>,
    /// How long to wait for the SIP TCP port and `GET /metrics` to answer.
    pub ready_timeout: Duration,
    /// The loopback address the server binds (default 127.0.0.1; several servers
    /// of one pool use 127.0.0.2, 127.0.0.3...).
    pub ip: std::net::Ipv4Addr,
    /// Serve the web port over HTTPS (confab's default). Off by default here: the
    /// harness then passes `--web-tls false` so that the plain HTTP and WebSocket
    /// clients of the tests work; `crates/acceptance/tests/web_admin.rs` tests HTTPS.
    pub https: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            domain: "example.com".into(),
            users: Vec::new(),
            import: Vec::new(),
            extra_args: Vec::new(),
            env: Vec::new(),
            ready_timeout: Duration::from_secs(20),
            ip: std::net::Ipv4Addr::LOCALHOST,
            https: false,
        }
    }
}

impl ServerOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn domain(mut self, domain: &str) -> Self {
        self.domain = domain.into();
        self
    }

    /// Adds a user with `user add` (`address` = `alice@example.com`).
    pub fn user(mut self, address: &str, password: &str) -> Self {
        self.users.push((address.into(), password.into()));
        self
    }

    /// Adds users with one `user import` of a CSV file.
    pub fn import_users(mut self, users: impl IntoIterator<Item = (String, String)>) -> Self {
        self.import.extend(users);
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Binds SIP, TLS and HTTP on this loopback address instead of 127.0.0.1.
    pub fn ip(mut self, ip: std::net::Ipv4Addr) -> Self {
        self.ip = ip;
        self
    }

    /// HTTPS on the web port (see [`ServerOptions::https`]).
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }

    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }
}

/// A running `confab serve` (or, with `CONFAB_TEST_EXTERNAL`, an external server).
///
/// The child is killed (`Child::kill`, by its own handle) when this is dropped.
pub struct ConfabServer {
    dir: tempfile::TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    bin: Option<PathBuf>,
    opts: ServerOptions,
    sip: SocketAddr,
    tls: SocketAddr,
    http: Option<SocketAddr>,
    child: Option<Child>,
    runs: u32,
}

/// SIP address, HTTP address, domain of `CONFAB_TEST_EXTERNAL`.
type External = (SocketAddr, Option<SocketAddr>, Option<String>);

/// `CONFAB_TEST_EXTERNAL=sip=HOST:PORT[,http=HOST:PORT][,domain=D]`.
fn external_target() -> Result<Option<External>> {
    let Ok(spec) = std::env::var("CONFAB_TEST_EXTERNAL") else {
        return Ok(None);
    };
    if spec.trim().is_empty() {
        return Ok(None);
    }
    let (mut sip, mut http, mut domain) = (None, None, None);
    for part in spec.split(',') {
        let (k, v) = part.split_once('=').unwrap_or(("sip", part));
        match k.trim() {
            "sip" => {
                sip = Some(
                    v.trim()
                        .parse::<SocketAddr>()
                        .ctx("CONFAB_TEST_EXTERNAL sip=")?,
                )
            }
            "http" => {
                http = Some(
                    v.trim()
                        .parse::<SocketAddr>()
                        .ctx("CONFAB_TEST_EXTERNAL http=")?,
                )
            }
            "domain" => domain = Some(v.trim().to_string()),
            other => return Err(Error(format!("CONFAB_TEST_EXTERNAL: unknown key {other}"))),
        }
    }
    let sip = sip.ok_or_else(|| Error::new("CONFAB_TEST_EXTERNAL needs sip=HOST:PORT"))?;
    Ok(Some((sip, http, domain)))
}

impl ConfabServer {
    /// Creates the temporary data directory, provisions `opts.users` / `opts.import`
    /// through the CLI, starts `confab serve` on free ports and waits until it is ready.
    pub fn start(opts: ServerOptions) -> Result<ConfabServer> {
        let dir = crate::temp_dir("acceptance")?;
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).ctx("creating the data dir")?;
        let log_path = dir.path().join("server.log");
        if let Some((sip, http, domain)) = external_target()? {
            let mut opts = opts;
            if let Some(d) = domain {
                opts.domain = d;
            }
            let mut s = ConfabServer {
                dir,
                data_dir,
                log_path,
                bin: None,
                opts,
                sip,
                tls: sip,
                http,
                child: None,
                runs: 0,
            };
            eprintln!("[acceptance] using external server {sip} (CONFAB_TEST_EXTERNAL)");
            s.wait_ready()?;
            return Ok(s);
        }
        let bin = confab_bin()?;
        let ip = opts.ip;
        let mut s = ConfabServer {
            dir,
            data_dir,
            log_path,
            bin: Some(bin),
            opts,
            sip: SocketAddr::from((ip, free_port())),
            tls: SocketAddr::from((ip, free_port())),
            http: Some(SocketAddr::from((ip, free_port()))),
            child: None,
            runs: 0,
        };
        for (addr, pw) in s.opts.users.clone() {
            s.add_user(&addr, &pw)?;
        }
        if !s.opts.import.is_empty() {
            let import = s.opts.import.clone();
            s.import_users(&import)?;
        }
        s.spawn()?;
        s.wait_ready()?;
        Ok(s)
    }

    /// True when the tests run against `CONFAB_TEST_EXTERNAL` (no child process).
    pub fn is_external(&self) -> bool {
        self.bin.is_none()
    }

    /// For tests that need to control the server process: prints SKIPPED and returns
    /// true when running against an external server.
    pub fn skip_if_external(&self, test: &str) -> bool {
        if self.is_external() {
            eprintln!("SKIPPED {test}: needs a confab child process (CONFAB_TEST_EXTERNAL is set)");
            println!("SKIPPED: {test}");
        }
        self.is_external()
    }

    pub fn domain(&self) -> &str {
        &self.opts.domain
    }
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
    }
    pub fn sip_port(&self) -> u16 {
        self.sip.port()
    }
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls
    }
    /// The HTTP listener (metrics, SIP over WebSocket at `/`).
    pub fn http_addr(&self) -> Result<SocketAddr> {
        self.http
            .ok_or_else(|| Error::new("no HTTP address (CONFAB_TEST_EXTERNAL without http=)"))
    }
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    /// The temporary directory of this server (for SIPp files, CSVs, client logs).
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    /// Everything the server (and the CLI invocations) printed so far.
    pub fn log_text(&self) -> String {
        read_lossy(&self.log_path)
    }
    /// The last `n` lines of [`log_text`](Self::log_text), indented.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log_text(), n)
    }
    /// A block for failure messages: where the log is and its tail.
    pub fn context(&self) -> String {
        if self.is_external() {
            return format!("(external server {})\n", self.sip);
        }
        format!(
            "--- confab log {} (last 40 lines) ---\n{}",
            self.log_path.display(),
            self.log_tail(40)
        )
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => self.is_external(),
        }
    }

    fn bin(&self) -> Result<&Path> {
        self.bin.as_deref().ok_or_else(|| {
            Error::new("not available against an external server (CONFAB_TEST_EXTERNAL)")
        })
    }

    fn append_log(&self, line: &str) {
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
        {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Runs `confab --data DIR ARGS...` (bounded to 60 s) and returns its stdout;
    /// fails on a non-zero exit. The invocation and its output go to the server log.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let bin = self.bin()?;
        let mut cmd = Command::new(bin);
        cmd.arg("--data").arg(&self.data_dir).args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.env("NO_COLOR", "1");
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let shown = format!(
            "confab --data {} {}",
            self.data_dir.display(),
            args.join(" ")
        );
        let out = run_bounded(cmd, Duration::from_secs(60)).ctx(format!("running `{shown}`"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        self.append_log(&format!(
            "=== `{shown}` -> {}\n{stdout}{stderr}",
            out.status
        ));
        if !out.status.success() {
            return Err(Error(format!(
                "`{shown}` failed ({})\nstdout:\n{}stderr:\n{}",
                out.status,
                tail(&stdout, 20),
                tail(&stderr, 20)
            )));
        }
        Ok(stdout)
    }

    /// `confab user add ADDRESS --password PW`.
    pub fn add_user(&self, address: &str, password: &str) -> Result<()> {
        self.cli(&["user", "add", address, "--password", password])
            .map(|_| ())
    }

    /// `confab user import FILE.csv` with `address,password` rows (no header).
    pub fn import_users(&self, users: &[(String, String)]) -> Result<()> {
        let csv = self
            .dir
            .path()
            .join(format!("import-{}.csv", crate::unique_token()));
        let mut text = String::new();
        for (a, p) in users {
            text.push_str(&format!("{a},{p}\n"));
        }
        std::fs::write(&csv, text).ctx("writing the import CSV")?;
        let csv_s = csv.to_string_lossy().into_owned();
        self.cli(&["user", "import", &csv_s]).map(|_| ())
    }

    /// `confab user list` (stdout).
    pub fn list_users(&self) -> Result<String> {
        self.cli(&["user", "list"])
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = self.bin()?.to_path_buf();
        self.runs += 1;
        let http = self.http_addr()?;
        let mut args: Vec<String> = vec![
            "--data".into(),
            self.data_dir.to_string_lossy().into_owned(),
            "serve".into(),
            "--domain".into(),
            self.opts.domain.clone(),
            "--sip".into(),
            self.sip.to_string(),
            "--tls".into(),
            self.tls.to_string(),
            "--http".into(),
            http.to_string(),
        ];
        if !self.opts.https {
            args.extend(["--web-tls".into(), "false".into()]);
        }
        args.extend(self.opts.extra_args.iter().cloned());
        self.append_log(&format!("=== run {}: confab {}", self.runs, args.join(" ")));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .ctx("opening the server log")?;
        let log2 = log.try_clone().ctx("cloning the log handle")?;
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log2)
            .stderr(log);
        // plain text in server.log (tracing-subscriber honours NO_COLOR)
        cmd.env("NO_COLOR", "1");
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().ctx(format!("spawning {}", bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits (bounded by `ready_timeout`) until the SIP TCP port accepts connections
    /// and `GET /metrics` answers 200.
    pub fn wait_ready(&mut self) -> Result<()> {
        let end = Instant::now() + self.opts.ready_timeout;
        let mut last = String::from("nothing tried yet");
        loop {
            let exited = match &mut self.child {
                Some(c) => c.try_wait().ok().flatten(),
                None => None,
            };
            if let Some(status) = exited {
                return Err(Error(format!(
                    "confab exited during start-up ({status}; {last})\n{}",
                    self.context()
                )));
            }
            match TcpStream::connect_timeout(&self.sip, Duration::from_millis(300)) {
                Err(e) => last = format!("SIP TCP {}: {e}", self.sip),
                Ok(_) => match self.http {
                    None => return Ok(()),
                    Some(h) if self.opts.https => {
                        match TcpStream::connect_timeout(&h, Duration::from_millis(300)) {
                            Ok(_) => return Ok(()),
                            Err(e) => last = format!("HTTPS {h}: {e}"),
                        }
                    }
                    Some(h) => match http_get(h, "/metrics", Duration::from_secs(2)) {
                        Ok((200, _)) => return Ok(()),
                        Ok((code, _)) => last = format!("GET http://{h}/metrics -> {code}"),
                        Err(e) => last = format!("GET http://{h}/metrics: {e}"),
                    },
                },
            }
            if Instant::now() >= end {
                return Err(Error(format!(
                    "confab not ready after {:?}: {last}\n{}",
                    self.opts.ready_timeout,
                    self.context()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Appends [`context`](Self::context) (the server log tail) to an error.
    pub fn with_log<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| Error(format!("{e}\n{}", self.context())))
    }

    /// `GET /metrics` body (Prometheus text).
    pub fn metrics(&self) -> Result<String> {
        let (code, body) = http_get(self.http_addr()?, "/metrics", Duration::from_secs(5))?;
        crate::ensure!(code == 200, "GET /metrics -> {code}");
        Ok(body)
    }

    /// SIGKILL (`Child::kill`) and reap; no chance for the server to clean up.
    pub fn kill9(&mut self) -> Result<()> {
        self.bin()?;
        if let Some(mut c) = self.child.take() {
            let pid = c.id();
            let _ = c.kill();
            let _ = c.wait();
            self.append_log(&format!("=== killed pid {pid} with SIGKILL"));
        }
        Ok(())
    }

    /// Graceful stop: SIGTERM (via `kill -TERM PID`), up to 10 s, then SIGKILL.
    pub fn stop(&mut self) -> Result<()> {
        self.bin()?;
        if let Some(mut c) = self.child.take() {
            let pid = c.id();
            if matches!(c.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let end = Instant::now() + Duration::from_secs(10);
                while Instant::now() < end && matches!(c.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if matches!(c.try_wait(), Ok(None)) {
                    self.append_log(&format!("=== pid {pid} ignored SIGTERM for 10 s; SIGKILL"));
                    let _ = c.kill();
                }
            }
            let status = c.wait().ctx("waiting for confab")?;
            self.append_log(&format!("=== pid {pid} stopped: {status}"));
        }
        Ok(())
    }

    /// Stops the server if it runs (gracefully), then starts it again on the same
    /// ports and data directory and waits until it is ready.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// Starts the server again after [`kill9`](Self::kill9) / [`stop`](Self::stop).
    pub fn start_again(&mut self) -> Result<()> {
        self.bin()?;
        if self.child.is_some() {
            return Err(Error::new("start_again: the server is still running"));
        }
        self.spawn()?;
        self.wait_ready()
    }
}

impl Drop for ConfabServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a command with piped output, killing it after `timeout`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<std::process::Output> {
    let mut child = cmd.spawn().ctx("spawn")?;
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().ctx("wait")? {
            break st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error(format!("timed out after {timeout:?}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}

/// Minimal HTTP/1.1 GET: returns (status, body). Handles Content-Length, chunked and
/// close-delimited bodies.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ctx(format!("connect {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: confab-acceptance\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = Instant::now() + timeout;
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                if complete_http(&buf) {
                    break;
                }
                return Err(Error(format!("GET {path}: read timeout")));
            }
            Err(e) => return Err(Error(format!("GET {path}: {e}"))),
        }
        if complete_http(&buf) || Instant::now() >= end {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| Error(format!("GET {path}: bad response {:?}", tail(head, 3))))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

fn complete_http(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let lower = head.to_ascii_lowercase();
    for l in lower.lines() {
        if let Some(v) = l.strip_prefix("content-length:") {
            return v.trim().parse::<usize>().is_ok_and(|n| body.len() >= n);
        }
    }
    if lower.contains("chunked") {
        return body.contains("\r\n0\r\n") || body.starts_with("0\r\n");
    }
    false
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size_line, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Path of the `confab` binary: `CONFAB_BIN`, else `target/<profile>/confab` of the
/// build that produced this test binary. Built once per test binary with
/// `cargo build -p confab --bin confab` when missing, when any workspace source is
/// newer than it, or when `CONFAB_BUILD=1`.
pub fn confab_bin() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| resolve_bin().map_err(|e| e.0))
        .clone()
        .map_err(Error)
}

fn profile_dir() -> (PathBuf, Option<(PathBuf, String)>) {
    // Integration tests live in target/<profile>/deps/<name>-<hash>.
    if let Ok(exe) = std::env::current_exe()
        && let Some(deps) = exe.parent()
        && deps.file_name().is_some_and(|n| n == "deps")
        && let Some(profile) = deps.parent()
        && let Some(target) = profile.parent()
        && target.join("CACHEDIR.TAG").exists()
    {
        let name = profile
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "debug".into());
        return (profile.to_path_buf(), Some((target.to_path_buf(), name)));
    }
    (repo_root().join("target").join("debug"), None)
}

/// Newest mtime of what goes into the `confab` binary: for every crate under
/// `crates/` except this one, `Cargo.toml`, `build.rs`, `src/**` and `migrations/**`;
/// plus the workspace `Cargo.toml` and `Cargo.lock`. (Tests, benches and examples of
/// other crates do not count: touching them must not trigger a rebuild.)
fn newest_source_mtime(root: &Path) -> Option<SystemTime> {
    fn newer(newest: &mut Option<SystemTime>, p: &Path) {
        if let Ok(m) = std::fs::metadata(p).and_then(|m| m.modified())
            && newest.is_none_or(|n| m > n)
        {
            *newest = Some(m);
        }
    }
    fn walk(dir: &Path, newest: &mut Option<SystemTime>, depth: u32) {
        if depth > 12 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, newest, depth + 1);
            } else {
                newer(newest, &p);
            }
        }
    }
    let mut newest = None;
    if let Ok(rd) = std::fs::read_dir(root.join("crates")) {
        for e in rd.flatten() {
            let krate = e.path();
            if !krate.is_dir() || e.file_name() == "acceptance" {
                continue;
            }
            newer(&mut newest, &krate.join("Cargo.toml"));
            newer(&mut newest, &krate.join("build.rs"));
            walk(&krate.join("src"), &mut newest, 0);
            walk(&krate.join("migrations"), &mut newest, 0);
        }
    }
    newer(&mut newest, &root.join("Cargo.toml"));
    newer(&mut newest, &root.join("Cargo.lock"));
    newest
}

fn resolve_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CONFAB_BIN") {
        let p = PathBuf::from(p);
        crate::ensure!(p.is_file(), "CONFAB_BIN={} does not exist", p.display());
        return Ok(p);
    }
    let root = repo_root();
    let (profile, target) = profile_dir();
    let bin = profile.join("confab");
    let bin_mtime = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let forced = std::env::var("CONFAB_BUILD").is_ok_and(|v| v == "1");
    let stale = match (bin_mtime, newest_source_mtime(&root)) {
        (None, _) => true,
        (Some(b), Some(src)) => src > b,
        (Some(_), None) => false,
    };
    if forced || stale {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&root)
            .args([
                "build",
                "-p",
                "confab",
                "--bin",
                "confab",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"));
        if let Some((target_dir, name)) = &target {
            cmd.arg("--target-dir").arg(target_dir);
            let prof = if name == "debug" {
                "dev"
            } else {
                name.as_str()
            };
            cmd.args(["--profile", prof]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        eprintln!(
            "[acceptance] building confab ({}): cargo build -p confab --bin confab",
            if bin_mtime.is_none() {
                "missing"
            } else {
                "sources newer than the binary"
            }
        );
        let out = run_bounded(cmd, Duration::from_secs(1800)).ctx("cargo build -p confab")?;
        if !out.status.success() {
            return Err(Error(format!(
                "`cargo build -p confab --bin confab` failed ({}):\n{}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 40)
            )));
        }
    }
    crate::ensure!(
        bin.is_file(),
        "confab binary not found at {} (set CONFAB_BIN or run `cargo build -p confab`)",
        bin.display()
    );
    Ok(bin)
}
