//! Running SIPp scenarios from `tests/sipp/` against a server.
//!
//! Every run is bounded (`-timeout`, `-recv_timeout`, plus a watchdog that kills the
//! process) and leaves its files in a directory of the test: the final statistics
//! (`-trace_stat`, parsed into [`SippRun`]), unexpected messages (`-trace_err`), every
//! message (`-trace_msg`) and the final screen (`-trace_screen`).

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::{free_port, free_port_block};
use crate::{ConfabServer, Context, Error, Result, read_lossy, tail, tests_dir};

/// SIP transport of a SIPp run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `-t u1`: UDP, one socket.
    Udp,
    /// `-t t1`: TCP, one connection.
    Tcp,
}

impl Transport {
    pub fn sipp_mode(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// One SIPp invocation (builder).
#[derive(Clone, Debug)]
pub struct Sipp {
    name: String,
    scenario: PathBuf,
    remote: Option<SocketAddr>,
    transport: Transport,
    local_port: u16,
    control_port: u16,
    media_port: u16,
    inf: Option<PathBuf>,
    keys: Vec<(String, String)>,
    calls: u32,
    rate: u32,
    pause_ms: Option<u32>,
    timeout: Duration,
    recv_timeout: Duration,
    extra: Vec<String>,
    dir: PathBuf,
}

/// Writes a SIPp injection file: first line `SEQUENTIAL`, then one `;`-separated row
/// per entry (each row ends with `;`).
pub fn write_csv(path: &Path, rows: &[Vec<String>]) -> Result<()> {
    let mut s = String::from("SEQUENTIAL\n");
    for r in rows {
        for f in r {
            s.push_str(f);
            s.push(';');
        }
        s.push('\n');
    }
    std::fs::write(path, s).ctx(format!("writing {}", path.display()))
}

/// The `[authentication ...]` CSV field for a user (SIPp only expands this keyword
/// when it comes whole from the injection file).
pub fn auth_field(user: &str, password: &str) -> String {
    format!("[authentication username={user} password={password}]")
}

impl Sipp {
    /// A run of `tests/sipp/<scenario>` whose files go to `dir/<name>-*`. Defaults:
    /// UDP, a free local port, 1 call, rate 10/s, global timeout 60 s, receive
    /// timeout 10 s.
    pub fn new(scenario: &str, dir: &Path) -> Sipp {
        let stem = scenario.trim_end_matches(".xml").to_string();
        Sipp {
            name: stem,
            scenario: tests_dir().join("sipp").join(scenario),
            remote: None,
            transport: Transport::Udp,
            local_port: free_port(),
            control_port: free_port(),
            media_port: free_port_block(4, true),
            inf: None,
            keys: Vec::new(),
            calls: 1,
            rate: 10,
            pause_ms: None,
            timeout: Duration::from_secs(60),
            recv_timeout: Duration::from_secs(10),
            extra: Vec::new(),
            dir: dir.to_path_buf(),
        }
    }

    /// A client run against `server` (remote = its SIP address, key `domain` set,
    /// files in the server's work dir).
    pub fn client(server: &ConfabServer, scenario: &str, transport: Transport) -> Sipp {
        Sipp::new(scenario, server.work_dir())
            .remote(server.sip_addr())
            .transport(transport)
            .key("domain", server.domain())
    }

    /// A server-mode run (scenario starts with `<recv>`) listening on `port`.
    pub fn server_mode(
        server: &ConfabServer,
        scenario: &str,
        transport: Transport,
        port: u16,
    ) -> Sipp {
        Sipp::new(scenario, server.work_dir())
            .transport(transport)
            .port(port)
            .key("domain", server.domain())
    }

    /// Label of this run's files (`<dir>/<name>-stat.csv`, ...).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
    pub fn remote(mut self, addr: SocketAddr) -> Self {
        self.remote = Some(addr);
        self
    }
    pub fn transport(mut self, t: Transport) -> Self {
        self.transport = t;
        self
    }
    /// Local SIP port (`-p`).
    pub fn port(mut self, port: u16) -> Self {
        self.local_port = port;
        self
    }
    pub fn local_port(&self) -> u16 {
        self.local_port
    }
    /// Injection file (`-inf`).
    pub fn inf(mut self, path: &Path) -> Self {
        self.inf = Some(path.to_path_buf());
        self
    }
    /// Writes `rows` as `<dir>/<name>.csv` and uses it as injection file.
    pub fn csv(self, rows: &[Vec<String>]) -> Result<Self> {
        std::fs::create_dir_all(&self.dir).ctx("creating the SIPp dir")?;
        let path = self.dir.join(format!("{}.csv", self.name));
        write_csv(&path, rows)?;
        Ok(self.inf(&path))
    }
    /// `-key k v` (`[k]` in the scenario).
    pub fn key(mut self, k: &str, v: &str) -> Self {
        self.keys.retain(|(kk, _)| kk != k);
        self.keys.push((k.into(), v.into()));
        self
    }
    /// `-m`: number of calls (scenario executions) before SIPp exits.
    pub fn calls(mut self, n: u32) -> Self {
        self.calls = n;
        self
    }
    /// `-r`: calls started per second.
    pub fn rate(mut self, r: u32) -> Self {
        self.rate = r;
        self
    }
    /// `-d`: duration of `<pause/>` in ms.
    pub fn pause_ms(mut self, ms: u32) -> Self {
        self.pause_ms = Some(ms);
        self
    }
    /// `-timeout`: SIPp quits after this (the watchdog kills it a bit later).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// `-recv_timeout`: a call fails when an expected message is this late.
    pub fn recv_timeout(mut self, t: Duration) -> Self {
        self.recv_timeout = t;
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.into());
        self
    }

    fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}-{suffix}", self.name))
    }

    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        if let Some(r) = self.remote {
            a.push(r.to_string());
        }
        let s = |x: &str| x.to_string();
        a.extend([s("-sf"), self.scenario.to_string_lossy().into_owned()]);
        if let Some(inf) = &self.inf {
            a.extend([s("-inf"), inf.to_string_lossy().into_owned()]);
        }
        a.extend([
            s("-i"),
            s("127.0.0.1"),
            s("-p"),
            self.local_port.to_string(),
            s("-t"),
            s(self.transport.sipp_mode()),
            s("-cp"),
            self.control_port.to_string(),
            s("-mp"),
            self.media_port.to_string(),
            s("-m"),
            self.calls.to_string(),
            s("-r"),
            self.rate.max(1).to_string(),
            s("-timeout"),
            format!("{}s", self.timeout.as_secs().max(1)),
            s("-timeout_error"),
            s("-recv_timeout"),
            format!("{}", self.recv_timeout.as_millis().max(1)),
            s("-nostdin"),
            // no BYE for aborted non-INVITE "calls" (noise in the server log)
            s("-default_behaviors"),
            s("all,-bye"),
            s("-trace_stat"),
            s("-stf"),
            self.file("stat.csv").to_string_lossy().into_owned(),
            s("-fd"),
            s("1"),
            s("-trace_err"),
            s("-error_file"),
            self.file("errors.log").to_string_lossy().into_owned(),
            s("-trace_msg"),
            s("-message_file"),
            self.file("messages.log").to_string_lossy().into_owned(),
            s("-trace_screen"),
            s("-screen_file"),
            self.file("screen.log").to_string_lossy().into_owned(),
        ]);
        if let Some(d) = self.pause_ms {
            a.extend([s("-d"), d.to_string()]);
        }
        for (k, v) in &self.keys {
            a.extend([s("-key"), k.clone(), v.clone()]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The command line (for messages).
    pub fn command_line(&self) -> String {
        format!("sipp {}", self.args().join(" "))
    }

    /// Starts SIPp in the background (for UAS roles); [`SippProcess::wait`] collects it.
    pub fn spawn(&self) -> Result<SippProcess> {
        crate::ensure!(
            self.scenario.is_file(),
            "SIPp scenario {} not found",
            self.scenario.display()
        );
        std::fs::create_dir_all(&self.dir).ctx("creating the SIPp dir")?;
        for f in ["stat.csv", "errors.log", "messages.log", "screen.log"] {
            let _ = std::fs::remove_file(self.file(f));
        }
        let args = self.args();
        let cmdline = format!("sipp {}", args.join(" "));
        std::fs::write(self.file("cmd"), &cmdline).ctx("writing the SIPp command")?;
        let out = File::create(self.file("stdout.log")).ctx("creating the SIPp stdout log")?;
        let err = out.try_clone().ctx("cloning a handle")?;
        let child = Command::new("sipp")
            .args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .ctx("spawning sipp (is sip-tester installed?)")?;
        Ok(SippProcess {
            child: Some(child),
            sipp: self.clone(),
            deadline: Instant::now() + self.timeout + Duration::from_secs(10),
            command: cmdline,
        })
    }

    /// Runs SIPp to completion.
    pub fn run(&self) -> Result<SippRun> {
        self.spawn()?.wait()
    }
}

/// A SIPp process started by [`Sipp::spawn`]; killed (by its handle) on drop.
pub struct SippProcess {
    child: Option<Child>,
    sipp: Sipp,
    deadline: Instant,
    command: String,
}

impl SippProcess {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether SIPp is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Like [`wait`](Self::wait), but kills SIPp if it has not exited within `limit`
    /// (e.g. a UAS whose client already finished).
    pub fn wait_for(mut self, limit: Duration) -> Result<SippRun> {
        self.deadline = self.deadline.min(Instant::now() + limit);
        self.wait()
    }

    /// Waits (bounded) until SIPp has bound its SIP port, so that a client can start.
    pub fn wait_listening(&mut self, timeout: Duration) -> Result<()> {
        let port = self.sipp.local_port;
        let end = Instant::now() + timeout;
        loop {
            if port_bound(port, self.sipp.transport) {
                return Ok(());
            }
            if !self.is_running() || Instant::now() >= end {
                let name = self.sipp.name.clone();
                let run = self.child.take().map(|mut c| {
                    let _ = c.kill();
                    let st = c.wait().ok().and_then(|s| s.code());
                    SippRun::collect(&self.sipp, &self.command, st, false)
                });
                return Err(Error(format!(
                    "SIPp `{name}` did not start listening on {} port {port}\n{}",
                    self.sipp.transport.name(),
                    run.map(|r| r.report()).unwrap_or_default()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for SIPp to exit (killing it at `-timeout` + 10 s) and collects the results.
    pub fn wait(mut self) -> Result<SippRun> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| Error::new("SIPp already collected"))?;
        let mut killed = false;
        let status = loop {
            if let Some(st) = child.try_wait().ctx("waiting for sipp")? {
                break st;
            }
            if Instant::now() >= self.deadline {
                let _ = child.kill();
                killed = true;
                break child.wait().ctx("waiting for sipp")?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(SippRun::collect(
            &self.sipp,
            &self.command,
            status.code(),
            killed,
        ))
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether some process has a UDP socket bound / a TCP socket listening on `port`
/// (read from /proc/net, so the check cannot steal the port from the process).
pub fn port_bound(port: u16, transport: Transport) -> bool {
    let files: &[&str] = match transport {
        Transport::Udp => &["/proc/net/udp", "/proc/net/udp6"],
        Transport::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
    };
    let want = format!(":{port:04X}");
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3
                    && cols[1].ends_with(&want)
                    && (transport == Transport::Udp || cols[3] == "0A")
            })
        })
    })
}

/// Outcome of a SIPp run.
#[derive(Clone, Debug)]
pub struct SippRun {
    pub name: String,
    pub command: String,
    /// SIPp's exit code: 0 all calls succeeded, 1 some failed, 97 internal stop,
    /// 99 no call processed, 255/254 fatal (None: killed by a signal).
    pub exit_code: Option<i32>,
    /// Killed by the watchdog.
    pub killed: bool,
    /// `SuccessfulCall(C)` of the last statistics row.
    pub successful: u64,
    /// `FailedCall(C)`.
    pub failed: u64,
    /// Non-zero `Failed*(C)` counters (why calls failed).
    pub failure_reasons: Vec<(String, u64)>,
    /// `-trace_err` file (unexpected messages, SIPp errors).
    pub errors: String,
    /// The final screen.
    pub screen: String,
    /// SIPp's stdout/stderr.
    pub stdout: String,
    pub messages_path: PathBuf,
}

impl SippRun {
    fn collect(s: &Sipp, command: &str, exit_code: Option<i32>, killed: bool) -> SippRun {
        let stat = read_lossy(&s.file("stat.csv"));
        let (successful, failed, failure_reasons) = parse_stat(&stat);
        SippRun {
            name: s.name.clone(),
            command: command.to_string(),
            exit_code,
            killed,
            successful,
            failed,
            failure_reasons,
            errors: read_lossy(&s.file("errors.log")),
            screen: read_lossy(&s.file("screen.log")),
            stdout: read_lossy(&s.file("stdout.log")),
            messages_path: s.file("messages.log"),
        }
    }

    /// Exit 0 and no failed call.
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0) && self.failed == 0 && !self.killed
    }

    /// The message trace (every SIP message SIPp sent/received).
    pub fn messages(&self) -> String {
        read_lossy(&self.messages_path)
    }

    /// A multi-line description for assertion messages.
    pub fn report(&self) -> String {
        let mut r = format!(
            "SIPp `{}`: exit {:?}{}, successful {}, failed {}{}\n  command: {}\n",
            self.name,
            self.exit_code,
            if self.killed {
                " (killed by the watchdog)"
            } else {
                ""
            },
            self.successful,
            self.failed,
            if self.failure_reasons.is_empty() {
                String::new()
            } else {
                format!(" {:?}", self.failure_reasons)
            },
            self.command
        );
        if !self.errors.trim().is_empty() {
            r.push_str(&format!(
                "  errors (-trace_err):\n{}",
                tail(&self.errors, 40)
            ));
        }
        if self.exit_code != Some(0) && !self.stdout.trim().is_empty() {
            r.push_str(&format!("  stdout/stderr:\n{}", tail(&self.stdout, 15)));
        }
        if !self.ok() {
            r.push_str(&format!(
                "  last messages ({}):\n{}",
                self.messages_path.display(),
                tail(&self.messages(), 60)
            ));
        }
        r
    }

    /// Requires exit 0, `successful` successful calls and none failed.
    pub fn expect(&self, successful: u64) -> Result<()> {
        crate::ensure!(
            self.ok() && self.successful == successful,
            "expected {successful} successful and 0 failed calls\n{}",
            self.report()
        );
        Ok(())
    }
}

/// Parses the last row of a `-trace_stat` CSV: (SuccessfulCall(C), FailedCall(C),
/// non-zero Failed*(C) counters).
pub fn parse_stat(csv: &str) -> (u64, u64, Vec<(String, u64)>) {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return (0, 0, Vec::new());
    };
    let Some(last) = lines.next_back() else {
        return (0, 0, Vec::new());
    };
    let names: Vec<&str> = header.split(';').collect();
    let values: Vec<&str> = last.split(';').collect();
    let get = |name: &str| -> u64 {
        names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| values.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let reasons = names
        .iter()
        .filter(|n| n.starts_with("Failed") && n.ends_with("(C)") && **n != "FailedCall(C)")
        .filter_map(|n| {
            let v = get(n);
            (v > 0).then(|| (n.trim_end_matches("(C)").to_string(), v))
        })
        .collect();
    (get("SuccessfulCall(C)"), get("FailedCall(C)"), reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing() {
        let csv = "StartTime;SuccessfulCall(C);FailedCall(C);FailedMaxUDPRetrans(C);FailedUnexpectedMessage(C);\n\
                   x;1;0;0;0;\n\
                   y;97;3;1;2;\n";
        let (s, f, r) = parse_stat(csv);
        assert_eq!((s, f), (97, 3));
        assert_eq!(
            r,
            vec![
                ("FailedMaxUDPRetrans".to_string(), 1),
                ("FailedUnexpectedMessage".to_string(), 2)
            ]
        );
        assert_eq!(parse_stat(""), (0, 0, vec![]));
    }
}
