//! The real Lync-protocol client, pidgin-sipe (inside bitlbee), signs in to confab
//! with NTLM (MS-SIPAE) over TCP and over TLS; a wrong password is refused and the
//! client reports it. Driven by tests/clients/sipe/run_sipe.py (one `PASS`/`FAIL`
//! line per check, last line `N passed, M failed`; helpers in
//! `confab_acceptance::sipe`).

use std::time::Duration;

use confab_acceptance::sipe::{SIPE_TOOLS, SipeCmd};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, tail, tools_required};

fn two_users_sign_in(transport: &str) -> Result<()> {
    if !tools_required(SIPE_TOOLS) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alice-secret")
            .user("bob@example.com", "bob-secret"),
    )?;
    let work = server.work_dir().join(format!("sipe-{transport}"));
    let port = SipeCmd::server_port(&server, transport);
    // Both users at the same time: each stays signed in a few seconds.
    let a = SipeCmd::new(
        &work,
        "alice",
        port,
        transport,
        ("alice@example.com", "alice-secret"),
    )
    .args(&["--stay", "6"])
    .start()?;
    let b = SipeCmd::new(
        &work,
        "bob",
        port,
        transport,
        ("bob@example.com", "bob-secret"),
    )
    .args(&["--login", "EXAMPLE\\bob", "--stay", "6"])
    .start()?;
    let out_a = a.finish(Duration::from_secs(180))?;
    let out_b = b.finish(Duration::from_secs(180))?;
    out_a.require(&["sign-in alice@example.com"], &server)?;
    out_b.require(&["sign-in bob@example.com"], &server)?;
    out_a.require_signed()?;
    out_b.require_signed()?;
    Ok(())
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
    if !tools_required(SIPE_TOOLS) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alice-secret"),
    )?;
    let work = server.work_dir().join("sipe-wrongpw");
    let out = SipeCmd::new(
        &work,
        "alice",
        server.sip_port(),
        "tcp",
        ("alice@example.com", "not-the-password"),
    )
    .args(&["--stay", "0"])
    .start()?
    .finish(Duration::from_secs(180))?;
    let refused = out
        .text
        .lines()
        .any(|l| l.starts_with("FAIL") && l.contains("sign-in"));
    let reported = out.text.contains("Login error")
        || out.text.contains("rejected")
        || out.text.contains("Failed to authenticate");
    if out.ok || !refused || !reported {
        return Err(Error(format!(
            "wrong password: want a FAIL sign-in line with the client's login error (exit ok: {})\n{}{}",
            out.ok,
            tail(&out.text, 80),
            server.context()
        )));
    }
    Ok(())
}
