//! A client whose request carries a forged or no MS-SIPAE signature after the NTLM
//! sign-in is cut off. tests/clients/sipe/sig_mitm.py sits between pidgin-sipe
//! (bitlbee, NTLM over TCP, `server` = the relay's port) and confab, passes the
//! sign-in through unchanged, then alters the first request the client sends after
//! the REGISTER 200: `forge` changes one hex digit of the signature in
//! `response="..."`, `strip` removes the `Authorization:` header.
//!
//! Asserted: the sign-in succeeded (nothing before the tamper was refused), the
//! tampered request was not accepted, confab closed the TCP connection within
//! `CLOSE_WITHIN` of it (while the client still had it open), and the server log
//! names the signature failure.

use std::time::Duration;

use confab_acceptance::sipe::{SIPE_TOOLS, SigMitm, SipeCmd, checks};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, tail, tools_required};

const ALICE: (&str, &str) = ("alice@example.com", "alice-secret");
/// How soon after the tampered request the server must have closed the connection.
const CLOSE_WITHIN: f64 = 5.0;

fn tampered_signature_cuts_off(mode: &str) -> Result<()> {
    if !tools_required(SIPE_TOOLS) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user(ALICE.0, ALICE.1),
    )?;
    let work = server.work_dir().join(format!("sipe-sig-{mode}"));
    let mitm = SigMitm::start(&server, &work.join("mitm"), mode, Duration::from_secs(90))?;
    // The client stays signed in (connection open on its side) well past
    // CLOSE_WITHIN, so a close seen in time can only come from the server.
    let sipe = SipeCmd::new(&work, "alice", mitm.port, "tcp", ALICE)
        .args(&["--stay", "10"])
        .start()?;
    let out = sipe.finish(Duration::from_secs(180))?;
    let report = mitm.finish(Duration::from_secs(20))?;

    let mut problems = Vec::new();
    if !checks(&out.text)
        .iter()
        .any(|(ok, name)| *ok && name.starts_with("sign-in alice@example.com"))
    {
        problems.push("no PASS sign-in through the relay".into());
    }
    if !report.tampered {
        problems.push(format!(
            "the relay altered no request (mode {mode}, request {:?})",
            report.method
        ));
    }
    if report.refused_before > 0 {
        problems.push(format!(
            "the server refused {} request(s) before the tamper",
            report.refused_before
        ));
    }
    if let Some(code) = report.response_to_tampered
        && (200..300).contains(&code)
    {
        problems.push(format!(
            "the server accepted the tampered {} with {code}",
            report.method
        ));
    }
    match (report.server_closed, report.close_after_s) {
        (true, Some(t)) if t <= CLOSE_WITHIN => {}
        (true, t) => problems.push(format!(
            "the server closed the connection only {t:?} s after the tampered {} (want <= {CLOSE_WITHIN} s)",
            report.method
        )),
        (false, _) if report.client_closed_first => problems.push(format!(
            "the server kept the connection open after the tampered {}: the client closed it first",
            report.method
        )),
        (false, _) => problems.push(format!(
            "the server never closed the connection after the tampered {}",
            report.method
        )),
    }
    let log = server.log_text();
    let named = log
        .lines()
        .any(|l| l.to_ascii_lowercase().contains("signature"));
    if !named {
        problems.push("the server log does not mention the signature failure".into());
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error(format!(
        "{mode}: {} problem(s):\n  {}\n--- sig_mitm.py ---\n{}--- run_sipe.py ---\n{}{}",
        problems.len(),
        problems.join("\n  "),
        tail(&report.text, 20),
        tail(&out.text, 40),
        server.context()
    )))
}

#[test]
fn sipe_forged_signature_cuts_connection() -> Result<()> {
    tampered_signature_cuts_off("forge")
}

#[test]
fn sipe_missing_signature_cuts_connection() -> Result<()> {
    tampered_signature_cuts_off("strip")
}
