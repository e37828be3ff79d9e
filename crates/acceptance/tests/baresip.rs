//! Two real baresip UAs (alice, bob) against confab: digest REGISTER, MESSAGE, a call
//! with auto-answer, RTP both ways, hang-up. Driven by
//! tests/clients/baresip/run_baresip.py (its last line is `N passed, M failed`).
//! Then Lync's Monitoring reports: `confab report calls` lists the call as an
//! internal call from alice to bob, answered and ended, and `confab report ims`
//! the IM session of alice's MESSAGE.

use std::process::{Command, Stdio};
use std::time::Duration;

use confab_acceptance::monitoring::{
    RECORD_DROPS, metric_value, report, wait_metrics, wait_report,
};
use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, free_port, free_port_pair, run_bounded, tail,
    tests_dir, tools_required,
};

/// Checks the script makes when everything works: bob registers, alice registers,
/// MESSAGE, bob receives the INVITE, call established, RTP both ways, call stays
/// up, hangup seen by both.
const ALL_CHECKS: usize = 8;

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

fn baresip(transport: &str) -> Result<()> {
    if !tools_required(&["baresip", "python3"]) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw"),
    )?;
    // baresip binds SIP (UDP+TCP) and SIP+1 (TLS); RTP is an even port + RTCP.
    let ports = [
        free_port_pair(),
        free_port_pair(),
        free_port(),
        free_port(),
        free_port_pair(),
        free_port_pair(),
    ]
    .map(|p| p.to_string())
    .join(",");
    let workdir = server.work_dir().join(format!("baresip-{transport}"));
    let script = tests_dir().join("clients/baresip/run_baresip.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(server.sip_addr().ip().to_string())
        .arg(server.sip_port().to_string())
        .args(["--domain", server.domain()])
        .args(["--alice", "alice:alicepw", "--bob", "bob:bobpw"])
        .args(["--transport", transport])
        .args(["--timeout", "15"])
        .args(["--ports", &ports])
        .arg("--workdir")
        .arg(&workdir)
        .arg("--sip-trace")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, Duration::from_secs(240))
        .map_err(|e| Error(format!("run_baresip.py: {e}\n{}", server.context())))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let fail = |why: String| {
        Err(Error(format!(
            "baresip over {transport}: {why}\n--- run_baresip.py output ---\n{}--- stderr ---\n{}{}",
            tail(&stdout, 120),
            tail(&stderr, 20),
            server.context()
        )))
    };
    match summary(&stdout) {
        None => fail(format!(
            "no `N passed, M failed` line (exit {})",
            out.status
        )),
        Some((passed, failed)) if failed > 0 || passed != ALL_CHECKS => fail(format!(
            "{passed} passed, {failed} failed (want {ALL_CHECKS} passed, 0 failed)"
        )),
        Some(_) if !out.status.success() => fail(format!("script exit {}", out.status)),
        Some(_) => monitoring_records(&server),
    }
}

/// The call and the IM of the script, as `confab report` lists them.
fn monitoring_records(server: &ConfabServer) -> Result<()> {
    let wait = Duration::from_secs(10);
    let alice = "alice@example.com";
    let bob = "bob@example.com";
    let calls = wait_report(
        server,
        "calls",
        &["--user", bob],
        wait,
        "the internal call alice -> bob",
        |rows| {
            rows.iter().any(|r| {
                r["direction"] == "internal"
                    && r["caller"] == alice
                    && r["callee"] == bob
                    && r["outcome"] == "answered"
                    && !r["answered"].is_empty()
            })
        },
    )?;
    if calls.len() != 1 {
        return Err(Error(format!("one call was made, report lists {calls:#?}")));
    }
    let ims = wait_report(
        server,
        "ims",
        &["--user", alice],
        wait,
        "the IM session alice -> bob",
        |rows| {
            rows.iter().any(|r| {
                r["kind"] == "pager"
                    && r["from"] == alice
                    && r["to"] == bob
                    && r["messages"].parse::<u32>().is_ok_and(|n| n >= 1)
            })
        },
    )?;
    if ims.len() != 1 {
        return Err(Error(format!("one IM session, report lists {ims:#?}")));
    }
    // /metrics: the writer's counters by kind (an open IM session is written
    // again when it changes), nothing dropped, nothing left queued.
    wait_metrics(
        wait,
        || server.metrics(),
        "one call record and the IM session written, nothing dropped",
        |m| {
            let v = |s: &str| metric_value(m, s);
            v("confab_monitoring_records_written_total{kind=\"call\"}") == Some(1)
                && v("confab_monitoring_records_written_total{kind=\"im_session\"}")
                    .is_some_and(|n| n >= 1)
                && RECORD_DROPS.iter().all(|d| v(d) == Some(0))
                && v("confab_monitoring_queue_depth{queue=\"activity\"}") == Some(0)
        },
    )
    .map_err(|e| Error(format!("{}\n{}", e.0, server.context())))?;
    // Filters: nothing for another user, nothing in the future.
    let other = report(server, "calls", &["--user", "carol@example.com"])?;
    let later = report(server, "ims", &["--since", "2999-01-01"])?;
    if !other.is_empty() || !later.is_empty() {
        return Err(Error(format!(
            "filtered reports not empty: {other:?} {later:?}"
        )));
    }
    Ok(())
}

#[test]
fn baresip_register_message_call_udp() -> Result<()> {
    baresip("udp")
}

#[test]
fn baresip_register_message_call_tcp() -> Result<()> {
    baresip("tcp")
}

#[test]
fn summary_line_parsing() {
    assert_eq!(summary("PASS x\n8 passed, 0 failed\n"), Some((8, 0)));
    assert_eq!(summary("3 passed, 2 failed"), Some((3, 2)));
    assert_eq!(summary("nothing"), None);
}
