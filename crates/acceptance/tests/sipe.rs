//! The real Lync-protocol client, pidgin-sipe (inside bitlbee), signs in to confab
//! with NTLM (MS-SIPAE) over TCP and over TLS; a wrong password is refused and the
//! client reports it. Driven by tests/clients/sipe/run_sipe.py (one `PASS`/`FAIL`
//! line per check, last line `N passed, M failed`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, free_port, tail, tests_dir, tools_required,
};

/// Parses the `N passed, M failed` line.
fn summary(out: &str) -> Option<(usize, usize)> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains(" passed, ") && l.ends_with(" failed"))?;
    let mut it = line.split_whitespace();
    let passed = it.next()?.parse().ok()?;
    let failed = it.nth(1)?.parse().ok()?;
    Some((passed, failed))
}

struct Run {
    label: String,
    child: Child,
    out_path: std::path::PathBuf,
}

/// Starts run_sipe.py for one user (its own bitlbee on a free IRC port, its own
/// temp dir under `workdir`).
fn start_sipe(
    server: &ConfabServer,
    workdir: &Path,
    label: &str,
    (user, password, login): (&str, &str, Option<&str>),
    transport: &str,
    stay: u32,
) -> Result<Run> {
    let dir = workdir.join(label);
    std::fs::create_dir_all(&dir).map_err(|e| Error(format!("mkdir {}: {e}", dir.display())))?;
    let out_path = dir.join("run_sipe.out");
    let out = std::fs::File::create(&out_path).map_err(|e| Error(format!("{e}")))?;
    let err = out.try_clone().map_err(|e| Error(format!("{e}")))?;
    let port = if transport == "tls" {
        server.tls_addr().port()
    } else {
        server.sip_port()
    };
    let script = tests_dir().join("clients/sipe/run_sipe.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .args(["--user", user, "--password", password])
        .args(["--auth", "ntlm", "--transport", transport])
        .args(["--irc-port", &free_port().to_string()])
        .args(["--timeout", "30", "--stay", &stay.to_string()])
        .env("TMPDIR", &dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(l) = login {
        cmd.args(["--login", l]);
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error(format!("spawning run_sipe.py: {e}")))?;
    Ok(Run {
        label: label.to_owned(),
        child,
        out_path,
    })
}

/// Waits (bounded) for a run; returns its output.
fn finish(mut run: Run, timeout: Duration) -> Result<(bool, String)> {
    let end = Instant::now() + timeout;
    let status = loop {
        match run.child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(200)),
            Ok(None) => {
                let _ = run.child.kill();
                let _ = run.child.wait();
                break None;
            }
            Err(e) => return Err(Error(format!("{}: waiting: {e}", run.label))),
        }
    };
    let text = std::fs::read_to_string(&run.out_path).unwrap_or_default();
    match status {
        None => Err(Error(format!(
            "{}: run_sipe.py timed out\n{}",
            run.label,
            tail(&text, 80)
        ))),
        Some(s) => Ok((s.success(), text)),
    }
}

fn check_passed(label: &str, ok: bool, out: &str, server: &ConfabServer) -> Result<()> {
    match summary(out) {
        Some((passed, 0)) if passed >= 1 && ok => Ok(()),
        other => Err(Error(format!(
            "{label}: {other:?} (exit ok: {ok})\n--- run_sipe.py ---\n{}{}",
            tail(out, 120),
            server.context()
        ))),
    }
}

fn two_users_sign_in(transport: &str) -> Result<()> {
    if !tools_required(&["bitlbee", "python3", "gcc"]) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alice-secret")
            .user("bob@example.com", "bob-secret"),
    )?;
    let work = server.work_dir().join(format!("sipe-{transport}"));
    // Both users at the same time: each stays signed in a few seconds.
    let a = start_sipe(
        &server,
        &work,
        "alice",
        ("alice@example.com", "alice-secret", None),
        transport,
        6,
    )?;
    let b = start_sipe(
        &server,
        &work,
        "bob",
        ("bob@example.com", "bob-secret", Some("EXAMPLE\\bob")),
        transport,
        6,
    )?;
    let (ok_a, out_a) = finish(a, Duration::from_secs(180))?;
    let (ok_b, out_b) = finish(b, Duration::from_secs(180))?;
    check_passed("alice", ok_a, &out_a, &server)?;
    check_passed("bob", ok_b, &out_b, &server)?;
    for out in [&out_a, &out_b] {
        if !out
            .lines()
            .any(|l| l.starts_with("PASS") && l.contains("sign-in"))
        {
            return Err(Error(format!("no PASS sign-in line:\n{}", tail(out, 60))));
        }
    }
    // SIPE checked the server's signatures (it logs every validation) and never
    // found an invalid or missing one.
    for user in ["alice", "bob"] {
        let log = client_log(&work.join(user));
        let validated = log
            .matches("signature of incoming message validated")
            .count();
        if validated == 0
            || log.contains("Invalid message signature")
            || log.contains("message without authentication data")
        {
            return Err(Error(format!(
                "{user}: SIPE validated {validated} server signatures; log:\n{}",
                tail(&log, 60)
            )));
        }
    }
    Ok(())
}

/// The bitlbee/SIPE debug log(s) of one run (under its TMPDIR).
fn client_log(dir: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with("confab-bitlbee.")
            {
                text.push_str(
                    &std::fs::read_to_string(e.path().join("bitlbee.log")).unwrap_or_default(),
                );
            }
        }
    }
    text
}

#[test]
fn sipe_two_users_sign_in_ntlm_tcp() -> Result<()> {
    two_users_sign_in("tcp")
}

#[test]
fn sipe_two_users_sign_in_ntlm_tls() -> Result<()> {
    two_users_sign_in("tls")
}

#[test]
fn sipe_wrong_password_is_refused() -> Result<()> {
    if !tools_required(&["bitlbee", "python3", "gcc"]) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alice-secret"),
    )?;
    let work = server.work_dir().join("sipe-wrongpw");
    let run = start_sipe(
        &server,
        &work,
        "alice",
        ("alice@example.com", "not-the-password", None),
        "tcp",
        0,
    )?;
    let (ok, out) = finish(run, Duration::from_secs(180))?;
    let refused = out
        .lines()
        .any(|l| l.starts_with("FAIL") && l.contains("sign-in"));
    let reported = out.contains("Login error")
        || out.contains("rejected")
        || out.contains("Failed to authenticate");
    if ok || !refused || !reported {
        return Err(Error(format!(
            "wrong password: want a FAIL sign-in line with the client's login error (exit ok: {ok})\n{}{}",
            tail(&out, 80),
            server.context()
        )));
    }
    Ok(())
}

#[test]
fn summary_line_parsing() {
    assert_eq!(summary("PASS x\n2 passed, 0 failed\n"), Some((2, 0)));
    assert_eq!(summary("nothing"), None);
}
