//! Server-initiated sign-out: a pidgin-sipe user who is disabled with
//! `confab user disable` while signed in is told so by the server (MS-SIPREGE
//! `registration-notify`, signed like everything else) and the client reports
//! "You have been rejected by the server".

use std::time::Duration;

use confab_acceptance::sipe::{SIPE_TOOLS, SipeCmd};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, tail, tools_required};

#[test]
fn sipe_user_disabled_while_signed_in_is_signed_out() -> Result<()> {
    if !tools_required(SIPE_TOOLS) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alice-secret"),
    )?;
    if server.skip_if_external("sipe_user_disabled_while_signed_in_is_signed_out") {
        return Ok(());
    }
    let work = server.work_dir().join("sipe-signout");
    let run = SipeCmd::new(
        &work,
        "alice",
        server.sip_port(),
        "tcp",
        ("alice@example.com", "alice-secret"),
    )
    .args(&["--stay", "10"])
    .start()?;
    if !run.wait_for_output("PASS sign-in", Duration::from_secs(60)) {
        let out = run.finish(Duration::from_secs(60))?;
        return Err(Error(format!(
            "alice never signed in:\n{}{}",
            tail(&out.text, 60),
            server.context()
        )));
    }
    server.cli(&["user", "disable", "alice@example.com"])?;
    let out = run.finish(Duration::from_secs(120))?;
    let log = out.client_log();
    let notified = log.contains("Event: registration-notify");
    let rejected = log.contains("You have been rejected by the server");
    let unsigned = log.contains("message without authentication data")
        || log.contains("Invalid message signature");
    if !notified || !rejected || unsigned {
        return Err(Error(format!(
            "want a signed registration-notify and the client's rejection message \
             (notify: {notified}, rejected: {rejected}, unsigned: {unsigned})\n--- SIPE log ---\n{}{}",
            tail(&log, 60),
            server.context()
        )));
    }
    Ok(())
}
