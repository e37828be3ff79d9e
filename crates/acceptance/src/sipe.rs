//! Driving the real Lync-protocol client, pidgin-sipe inside bitlbee, through
//! `tests/clients/sipe/run_sipe.py` (one `PASS`/`FAIL` line per check, last line
//! `N passed, M failed`), and the signature man-in-the-middle `sig_mitm.py`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ConfabServer, Error, Result, free_port, free_port_pair, tail, tests_dir};

/// The tools every SIPE test needs (`tools_required(SIPE_TOOLS)`).
pub const SIPE_TOOLS: &[&str] = &["bitlbee", "python3", "gcc"];

/// Parses run_sipe.py's last `N passed, M failed` line.
pub fn summary(out: &str) -> Option<(usize, usize)> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains(" passed, ") && l.ends_with(" failed"))?;
    let mut it = line.split_whitespace();
    let passed = it.next()?.parse().ok()?;
    let failed = it.nth(1)?.parse().ok()?;
    Some((passed, failed))
}

/// The checks of a run: `(passed, "name   detail")`, from the `== checks ==` block
/// at the end (or from every PASS/FAIL line when the block is missing).
pub fn checks(out: &str) -> Vec<(bool, String)> {
    let block = match out.rfind("== checks ==") {
        Some(i) => &out[i..],
        None => out,
    };
    block
        .lines()
        .filter_map(|l| {
            if let Some(rest) = l.strip_prefix("PASS ") {
                Some((true, rest.trim().to_string()))
            } else {
                l.strip_prefix("FAIL ")
                    .map(|rest| (false, rest.trim().to_string()))
            }
        })
        .collect()
}

/// How a test calls run_sipe.py: `python3 run_sipe.py HOST PORT --user U
/// --password P ARGS...`, with its own TMPDIR (`workdir/label`, which then holds
/// the bitlbee/baresip work dirs) and output file `run_sipe.out` there.
pub struct SipeCmd {
    label: String,
    host: String,
    dir: PathBuf,
    port: u16,
    args: Vec<String>,
}

impl SipeCmd {
    /// User 1 signs in to 127.0.0.1:`port` (see [`SipeCmd::host`]; the server's TCP or TLS port, or a
    /// man-in-the-middle's) with NTLM over `transport`; bitlbee on free IRC
    /// ports (two consecutive ones, for `--user2`).
    pub fn new(
        workdir: &Path,
        label: &str,
        port: u16,
        transport: &str,
        (user, password): (&str, &str),
    ) -> SipeCmd {
        let args = [
            "--user",
            user,
            "--password",
            password,
            "--auth",
            "ntlm",
            "--transport",
            transport,
            "--irc-port",
            &free_port_pair().to_string(),
            "--timeout",
            "30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        SipeCmd {
            label: label.to_owned(),
            host: "127.0.0.1".to_owned(),
            dir: workdir.join(label),
            port,
            args,
        }
    }

    /// Port of `server` for `transport` (`tls` -> the TLS port, else SIP TCP).
    pub fn server_port(server: &ConfabServer, transport: &str) -> u16 {
        if transport == "tls" {
            server.tls_addr().port()
        } else {
            server.sip_port()
        }
    }

    /// User 1 signs in to this loopback address instead of 127.0.0.1 (a front
    /// end of a pool bound to 127.0.0.2, say).
    pub fn host(mut self, host: impl Into<std::net::IpAddr>) -> Self {
        self.host = host.into().to_string();
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_owned());
        self
    }

    pub fn args(mut self, a: &[&str]) -> Self {
        self.args.extend(a.iter().map(|s| s.to_string()));
        self
    }

    /// `--baresip USER:PW --baresip-transport T --baresip-ports SIP,CTRL,RTP` on
    /// free ports (baresip binds SIP and SIP+1, RTP and RTP+1).
    pub fn baresip(self, user_pw: &str, transport: &str) -> Self {
        let ports = format!("{},{},{}", free_port_pair(), free_port(), free_port_pair());
        self.args(&[
            "--baresip",
            user_pw,
            "--baresip-transport",
            transport,
            "--baresip-ports",
            &ports,
        ])
    }

    /// The directory of this run (TMPDIR of run_sipe.py).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn start(self) -> Result<SipeRun> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error(format!("mkdir {}: {e}", self.dir.display())))?;
        let out_path = self.dir.join("run_sipe.out");
        let out = File::create(&out_path).map_err(|e| Error(format!("{e}")))?;
        let err = out.try_clone().map_err(|e| Error(format!("{e}")))?;
        let script = tests_dir().join("clients/sipe/run_sipe.py");
        let child = Command::new("python3")
            .arg(&script)
            .arg(&self.host)
            .arg(self.port.to_string())
            .args(&self.args)
            .env("TMPDIR", &self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| Error(format!("spawning run_sipe.py: {e}")))?;
        Ok(SipeRun {
            label: self.label,
            dir: self.dir,
            child: Some(child),
            out_path,
        })
    }
}

/// A running run_sipe.py; killed (by its own handle) if dropped unfinished. The
/// script stops its bitlbee/baresip children itself, also on SIGTERM timeouts of
/// its own; a kill here is the last resort for a hung script.
pub struct SipeRun {
    pub label: String,
    pub dir: PathBuf,
    child: Option<Child>,
    out_path: PathBuf,
}

/// What a finished run printed.
pub struct SipeOutput {
    pub label: String,
    pub dir: PathBuf,
    /// Exit status 0 (all checks passed).
    pub ok: bool,
    pub text: String,
}

impl SipeRun {
    /// Waits (bounded) until the script's output has a line containing `needle`
    /// (e.g. `PASS sign-in`), while it runs. Returns whether it appeared.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let text = std::fs::read_to_string(&self.out_path).unwrap_or_default();
            if text.lines().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Waits (bounded) for the script; a timeout is an error with its output tail.
    pub fn finish(mut self, timeout: Duration) -> Result<SipeOutput> {
        let Some(mut child) = self.child.take() else {
            return Err(Error(format!("{}: already finished", self.label)));
        };
        let end = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(200)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Err(e) => return Err(Error(format!("{}: waiting: {e}", self.label))),
            }
        };
        let text = std::fs::read_to_string(&self.out_path).unwrap_or_default();
        match status {
            None => Err(Error(format!(
                "{}: run_sipe.py timed out after {timeout:?}\n{}",
                self.label,
                tail(&text, 80)
            ))),
            Some(s) => Ok(SipeOutput {
                label: self.label.clone(),
                dir: self.dir.clone(),
                ok: s.success(),
                text,
            }),
        }
    }
}

impl Drop for SipeRun {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl SipeOutput {
    /// Requires: at least one check, none failed, exit 0, and for every entry of
    /// `required` a check line (hence a PASS one) that contains it. The error lists what is
    /// missing or failed, the script's output tail and the server context.
    pub fn require(&self, required: &[&str], server: &ConfabServer) -> Result<()> {
        let checks = checks(&self.text);
        let mut problems = Vec::new();
        for (ok, line) in &checks {
            if !ok {
                problems.push(format!("FAIL {line}"));
            }
        }
        for want in required {
            // A check that ran and failed is listed above already.
            if !checks.iter().any(|(_, l)| l.contains(want)) {
                problems.push(format!("missing check {want:?} (not run)"));
            }
        }
        match summary(&self.text) {
            None => problems.push("no `N passed, M failed` line".into()),
            Some((0, _)) => problems.push("no check passed".into()),
            Some(_) if !self.ok && problems.is_empty() => {
                problems.push("run_sipe.py exited non-zero".into())
            }
            Some(_) => {}
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error(format!(
            "{}: {} problem(s):\n  {}\n--- run_sipe.py ({}) ---\n{}{}",
            self.label,
            problems.len(),
            problems.join("\n  "),
            self.dir.display(),
            tail(&self.text, 120),
            server.context()
        )))
    }

    /// SIPE checked the server's MS-SIPAE signatures (it logs every validation)
    /// and never found an invalid or a missing one.
    pub fn require_signed(&self) -> Result<()> {
        let log = self.client_log();
        let validated = log
            .matches("signature of incoming message validated")
            .count();
        let invalid = log.matches("Invalid message signature").count();
        let unsigned = log.matches("message without authentication data").count();
        if validated == 0 || invalid > 0 || unsigned > 0 {
            return Err(Error(format!(
                "{}: SIPE validated {validated} server signatures, found {invalid} invalid and \
                 ignored {unsigned} unsigned message(s); SIPE log ({}):\n{}",
                self.label,
                self.dir.display(),
                tail(&log, 60)
            )));
        }
        Ok(())
    }

    /// The bitlbee/SIPE debug log(s) of this run (every SIP message SIPE sent and
    /// received).
    pub fn client_log(&self) -> String {
        client_log(&self.dir)
    }
}

/// The bitlbee/SIPE debug log(s) under a run's TMPDIR.
pub fn client_log(dir: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("confab-bitlbee.")
            })
            .map(|e| e.path().join("bitlbee.log"))
            .collect();
        paths.sort();
        for p in paths {
            text.push_str(&std::fs::read_to_string(p).unwrap_or_default());
        }
    }
    text
}

/// `tests/clients/sipe/sig_mitm.py`: a TCP relay between the client and confab
/// that forges (`forge`) or removes (`strip`) the signature of the first client
/// request after the REGISTER 200 (`pass`: relays unchanged).
pub struct SigMitm {
    child: Option<Child>,
    out_path: PathBuf,
    /// Where the client must connect (127.0.0.1).
    pub port: u16,
}

/// The `SUMMARY` line of sig_mitm.py, plus its whole output.
#[derive(Debug, Default)]
pub struct MitmReport {
    pub tampered: bool,
    pub server_closed: bool,
    pub client_closed_first: bool,
    /// Seconds from the tampered request to the server's close.
    pub close_after_s: Option<f64>,
    pub response_to_tampered: Option<u16>,
    /// Refusals (>= 300, except the NTLM 401s to REGISTER) before the tamper.
    pub refused_before: usize,
    /// Method of the tampered request.
    pub method: String,
    pub text: String,
}

impl SigMitm {
    /// Starts the relay on a free port towards the server's SIP TCP port and waits
    /// (at most 10 s) for its `LISTENING` line. It exits by itself `grace` after
    /// the tampered connection closed, or after `timeout`.
    pub fn start(
        server: &ConfabServer,
        dir: &Path,
        mode: &str,
        timeout: Duration,
    ) -> Result<SigMitm> {
        std::fs::create_dir_all(dir).map_err(|e| Error(format!("mkdir {}: {e}", dir.display())))?;
        let port = free_port();
        let out_path = dir.join("sig_mitm.out");
        let out = File::create(&out_path).map_err(|e| Error(format!("{e}")))?;
        let err = out.try_clone().map_err(|e| Error(format!("{e}")))?;
        let script = tests_dir().join("clients/sipe/sig_mitm.py");
        let child = Command::new("python3")
            .arg(&script)
            .args(["--listen", &port.to_string()])
            .args(["--target", &server.sip_addr().to_string()])
            .args(["--mode", mode])
            .args(["--timeout", &timeout.as_secs().to_string()])
            .args(["--grace", "1"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| Error(format!("spawning sig_mitm.py: {e}")))?;
        let mut m = SigMitm {
            child: Some(child),
            out_path,
            port,
        };
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&m.out_path).unwrap_or_default();
            if text.contains("LISTENING ") {
                return Ok(m);
            }
            let exited = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= end {
                return Err(Error(format!(
                    "sig_mitm.py did not start listening ({exited:?}):\n{}",
                    tail(&text, 20)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for the relay to exit and parses its SUMMARY line.
    pub fn finish(mut self, timeout: Duration) -> Result<MitmReport> {
        let Some(mut child) = self.child.take() else {
            return Err(Error::new("sig_mitm.py: already finished"));
        };
        let end = Instant::now() + timeout;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let _ = child.wait();
        let text = std::fs::read_to_string(&self.out_path).unwrap_or_default();
        let Some(line) = text.lines().rev().find(|l| l.starts_with("SUMMARY ")) else {
            return Err(Error(format!(
                "sig_mitm.py printed no SUMMARY line within {timeout:?}:\n{}",
                tail(&text, 30)
            )));
        };
        let mut r = MitmReport {
            text: text.clone(),
            ..MitmReport::default()
        };
        for kv in line["SUMMARY ".len()..].split_whitespace() {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "tampered" => r.tampered = v == "1",
                "server_closed" => r.server_closed = v == "1",
                "client_closed_first" => r.client_closed_first = v == "1",
                "close_after_s" => r.close_after_s = v.parse().ok(),
                "response_to_tampered" => r.response_to_tampered = v.parse().ok(),
                "refused_before" => r.refused_before = v.parse().unwrap_or(usize::MAX),
                "method" => r.method = v.to_string(),
                _ => {}
            }
        }
        Ok(r)
    }
}

impl Drop for SigMitm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_checks() {
        let out = "PASS sign-in a   x\nFAIL typing a -> b  none\n== checks ==\n\
                   PASS sign-in a   x\nFAIL typing a -> b  none\n1 passed, 1 failed\n";
        assert_eq!(summary(out), Some((1, 1)));
        assert_eq!(
            checks(out),
            vec![
                (true, "sign-in a   x".to_string()),
                (false, "typing a -> b  none".to_string())
            ]
        );
        assert_eq!(summary("nothing"), None);
    }
}
