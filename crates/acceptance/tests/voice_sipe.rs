//! A call from the PSTN to a pidgin-sipe user: alice signs in with pidgin-sipe
//! (bitlbee, NTLM over TCP) and owns the number +14255550100; a SIPp gateway of
//! trunk gw1 calls that number at the collocated Mediation server, which places
//! the call to alice through the front end. Her client rings (its 180 reaches the
//! gateway through the front end and the Mediation server); the gateway gives up
//! (CANCEL, 487). The client's own log shows the INVITE it got and its 180, and
//! `confab report calls` lists the inbound call with its outcome.

use std::time::Duration;

use confab_acceptance::sipe::{SIPE_TOOLS, SipeCmd, client_log};
use confab_acceptance::sipp::{Sipp, Transport};
use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, free_port, tail, temp_dir, tools_required, wait_for,
};

const ALICE: (&str, &str) = ("alice@example.com", "alice-secret");

#[test]
fn pstn_call_rings_a_pidgin_sipe_user() -> Result<()> {
    if !tools_required(SIPE_TOOLS) || !tools_required(&["sipp"]) {
        return Ok(());
    }
    let (gw_port, med_port) = (free_port(), free_port());
    let dir = temp_dir("voice-sipe")?;
    let config = dir.path().join("confab.toml");
    std::fs::write(
        &config,
        format!("[mediation]\nsip = \"127.0.0.1:{med_port}\"\n"),
    )
    .map_err(|e| Error(format!("writing {}: {e}", config.display())))?;
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user(ALICE.0, ALICE.1)
            .arg("--config")
            .arg(&config.to_string_lossy()),
    )?;
    let gw = format!("127.0.0.1:{gw_port}");
    let steps: [&[&str]; 2] = [
        &["user", "set", ALICE.0, "--line-uri", "tel:+14255550100"],
        &["voice", "trunk", "add", "gw1", "--gateway", &gw],
    ];
    for s in steps {
        server.cli(s)?;
    }
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        server
            .log_text()
            .lines()
            .any(|l| l.contains("applied voice configuration") && l.contains("rev=2"))
            .then_some(())
    })
    .ok_or_else(|| Error(format!("voice rev=2 not applied\n{}", server.context())))?;

    let work = server.work_dir().join("voice-sipe");
    let run = SipeCmd::new(&work, "alice", server.sip_port(), "tcp", ALICE)
        .args(&["--stay", "20"])
        .start()?;
    if !run.wait_for_output("PASS sign-in", Duration::from_secs(90)) {
        let out = run.finish(Duration::from_secs(30))?;
        return Err(Error(format!(
            "alice did not sign in:\n{}{}",
            tail(&out.text, 60),
            server.context()
        )));
    }

    let mediation: std::net::SocketAddr = ([127, 0, 0, 1], med_port).into();
    let call = Sipp::client(&server, "voice_inbound_ring_cancel_uac.xml", Transport::Udp)
        .name("gw1-to-alice")
        .remote(mediation)
        .port(gw_port)
        .csv(&[vec!["+14255550100".into(), "+12065550123".into()]])?
        .timeout(Duration::from_secs(30))
        .run()?;
    let client = client_log(&run.dir);
    let out = run.finish(Duration::from_secs(60))?;
    if call.expect(1).is_err() {
        return Err(Error(format!(
            "the gateway's call to alice's number did not ring her client:\n{}\
             --- SIPE log (tail) ---\n{}--- run_sipe ---\n{}{}",
            call.report(),
            tail(&client, 80),
            tail(&out.text, 30),
            server.context()
        )));
    }
    out.require_signed()?;
    // pidgin-sipe itself (its own log, User-Agent Sipe) got the INVITE from the
    // front end with the PSTN caller, answered 180 Ringing (no media through
    // bitlbee: it never answers 200), and 487 to the CANCEL.
    for want in [
        "+12065550123@example.com;user=phone",
        "SIP/2.0 180 Ringing",
        "SIP/2.0 487 Request Terminated",
    ] {
        if !client.contains(want) {
            return Err(Error(format!(
                "the SIPE log lacks {want:?}:\n{}",
                tail(&client, 120)
            )));
        }
    }
    let report = wait_for(Duration::from_secs(5), Duration::from_millis(200), || {
        server.cli(&["report", "calls"]).ok().filter(|r| {
            r.lines()
                .any(|l| l.contains("inbound") && l.contains("failed 487"))
        })
    })
    .ok_or_else(|| Error(format!("no inbound call record\n{}", server.context())))?;
    if !report.contains("alice@example.com") || !report.contains("+12065550123") {
        return Err(Error(format!("confab report calls:\n{report}")));
    }
    Ok(())
}
