//! Enterprise Voice through a running confab, with SIPp as the PSTN gateways and as
//! the users (tests/sipp/voice_*.xml): configured with `confab voice ...` while the
//! server runs; a dialed national number is normalized and reaches the second
//! trunk's gateway (the first answers 503) as E.164 with the trunk's translation and
//! the caller's number as caller ID; a number no route allows is refused with 403
//! and the reason; a gateway's call to a user's number reaches the user; the same
//! call from an address that is no trunk is refused.

use std::time::Duration;

use confab_acceptance::sipp::{Sipp, Transport, auth_field};
use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, free_port, tools_required, wait_for,
};

const T: Transport = Transport::Udp;

fn server() -> Result<ConfabServer> {
    ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw"),
    )
}

/// Configures Enterprise Voice with the CLI while the server runs, checks that
/// bad input is refused and changes nothing, and waits until the server applied
/// the last change. `gw1`, `gw2`: the trunks' gateway ports on 127.0.0.1.
fn configure(server: &ConfabServer, gw1: u16, gw2: u16) -> Result<()> {
    let gw1 = format!("127.0.0.1:{gw1}");
    let gw2 = format!("127.0.0.1:{gw2}");
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "user",
            "set",
            "alice@example.com",
            "--line-uri",
            "tel:+14255550100",
        ],
        vec![
            "user",
            "set",
            "bob@example.com",
            "--line-uri",
            "tel:+14255550101",
        ],
        vec!["voice", "dialplan", "add", "global"],
        vec![
            "voice",
            "rule",
            "add",
            "global",
            "local7",
            "--pattern",
            r"(\d{7})",
            "--translation",
            "+1425$1",
        ],
        vec![
            "voice",
            "rule",
            "add",
            "global",
            "intl",
            "--pattern",
            r"00(\d+)",
            "--translation",
            "+$1",
        ],
        vec!["voice", "usage", "add", "local"],
        vec!["voice", "policy", "add", "global", "--usages", "local"],
        vec!["voice", "trunk", "add", "gw1", "--gateway", &gw1],
        vec!["voice", "trunk", "add", "gw2", "--gateway", &gw2],
        vec![
            "voice",
            "rule",
            "add",
            "trunk:gw2",
            "strip-plus",
            "--pattern",
            r"\+(\d+)",
            "--translation",
            "$1",
        ],
        vec![
            "voice",
            "route",
            "add",
            "us",
            "--pattern",
            r"\+1\d{10}",
            "--usages",
            "local",
            "--trunks",
            "gw1,gw2",
        ],
    ];
    for s in &steps {
        server.cli(s)?;
    }
    // Bad input: refused with a clear error, nothing changed.
    let refused: [(&[&str], &str); 4] = [
        (
            &[
                "user",
                "set",
                "bob@example.com",
                "--line-uri",
                "tel:+14255550100",
            ],
            "already the line URI of alice@example.com",
        ),
        (
            &[
                "voice",
                "rule",
                "add",
                "global",
                "bad",
                "--pattern",
                r"(\d{7}",
                "--translation",
                "+1$1",
            ],
            "bad pattern",
        ),
        (
            &[
                "voice",
                "route",
                "add",
                "r2",
                "--pattern",
                r"\+44\d+",
                "--usages",
                "nosuch",
                "--trunks",
                "gw1",
            ],
            "unknown PSTN usage \"nosuch\"",
        ),
        (&["voice", "usage", "remove", "local"], "is used by"),
    ];
    let before = server.cli(&["voice", "route", "list"])?;
    for (args, want) in refused {
        match server.cli(args) {
            Ok(out) => return Err(Error(format!("{args:?} was accepted: {out}"))),
            Err(e) if e.0.contains(want) => {}
            Err(e) => return Err(Error(format!("{args:?}: want {want:?}, got {}", e.0))),
        }
    }
    let after = server.cli(&["voice", "route", "list"])?;
    if before != after {
        return Err(Error(format!(
            "a refused change changed the routes: {before} -> {after}"
        )));
    }
    // test-number explains the cases the calls below exercise.
    let pstn = server.cli(&["voice", "test-number", "alice@example.com", "5550199"])?;
    for want in [
        "rule:        local7",
        "normalized:  +14255550199",
        "trunk 1:     gw1",
        "trunk 2:     gw2 via route us usage local: 14255550199",
    ] {
        if !pstn.contains(want) {
            return Err(Error(format!("test-number lacks {want:?}:\n{pstn}")));
        }
    }
    let internal = server.cli(&["voice", "test-number", "alice@example.com", "5550101"])?;
    if !internal.contains("destination: user bob@example.com") {
        return Err(Error(format!("test-number for bob's number:\n{internal}")));
    }
    // Every successful step bumped the voice revision once: wait for the server
    // to have applied the last one.
    let rev = format!("rev={}", steps.len());
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        server
            .log_text()
            .lines()
            .any(|l| l.contains("applied voice configuration") && l.contains(&rev))
            .then_some(())
    })
    .ok_or_else(|| {
        Error(format!(
            "the server did not apply voice {rev}\n{}",
            server.context()
        ))
    })
}

#[test]
fn voice_outbound_normalized_failover_and_refusal() -> Result<()> {
    if !tools_required(&["sipp"]) {
        return Ok(());
    }
    let server = server()?;
    let (p1, p2) = (free_port(), free_port());
    configure(&server, p1, p2)?;

    let mut gw1 = Sipp::server_mode(&server, "voice_gw_503.xml", T, p1)
        .name("gw1-503")
        .timeout(Duration::from_secs(30))
        .spawn()?;
    let mut gw2 = Sipp::server_mode(&server, "voice_gw_uas.xml", T, p2)
        .name("gw2")
        .timeout(Duration::from_secs(30))
        .spawn()?;
    gw1.wait_listening(Duration::from_secs(10))?;
    gw2.wait_listening(Duration::from_secs(10))?;
    // alice dials the national number 5550199 (call_uac.xml: INVITE sip:5550199@example.com).
    let call = Sipp::client(&server, "call_uac.xml", T)
        .name("alice-5550199")
        .csv(&[vec![
            "alice".into(),
            auth_field("alice", "alicepw"),
            "5550199".into(),
        ]])?
        .pause_ms(300)
        .timeout(Duration::from_secs(30))
        .run()?;
    let gw1_run = gw1.wait_for(Duration::from_secs(10))?;
    let gw2_run = gw2.wait_for(Duration::from_secs(10))?;
    if call.expect(1).is_err() || gw1_run.expect(1).is_err() || gw2_run.expect(1).is_err() {
        return Err(Error(format!(
            "outbound call with failover failed\n--- alice ---\n{}--- gw1 (503) ---\n{}--- gw2 ---\n{}{}",
            call.report(),
            gw1_run.report(),
            gw2_run.report(),
            server.context()
        )));
    }

    // 0044... normalizes to +44..., which no route of alice's policy allows.
    let refused = Sipp::client(&server, "voice_refused_uac.xml", T)
        .name("alice-uk")
        .csv(&[vec![
            "alice".into(),
            auth_field("alice", "alicepw"),
            "00442071234567".into(),
        ]])?
        .timeout(Duration::from_secs(20))
        .run()?;
    server.with_log(refused.expect(1))?;

    // The Mediation server recorded the call (the refused one never reached it).
    let report = wait_for(Duration::from_secs(5), Duration::from_millis(200), || {
        server
            .cli(&["report", "calls", "--user", "alice@example.com"])
            .ok()
            .filter(|r| r.contains("1 call(s)"))
    })
    .ok_or_else(|| Error(format!("no call record\n{}", server.context())))?;
    if !report.contains("outbound")
        || !report.contains("answered")
        || !report.contains("gw1:503 gw2:200")
    {
        return Err(Error(format!("confab report calls:\n{report}")));
    }
    Ok(())
}

#[test]
fn voice_inbound_from_trunk_rings_user_and_stranger_refused() -> Result<()> {
    if !tools_required(&["sipp"]) {
        return Ok(());
    }
    let server = server()?;
    let (p1, p2) = (free_port(), free_port());
    configure(&server, p1, p2)?;

    // bob registers the Contact of a SIPp UAS (call_uas.xml).
    let bob_port = free_port();
    let reg = Sipp::client(&server, "register_digest.xml", T)
        .name("register-bob")
        .port(bob_port)
        .csv(&[vec!["bob".into(), auth_field("bob", "bobpw")]])?
        .key("expires", "300")
        .key("contact_port", &bob_port.to_string())
        .timeout(Duration::from_secs(20))
        .run()?;
    server.with_log(reg.expect(1))?;
    let mut bob = Sipp::server_mode(&server, "call_uas.xml", T, bob_port)
        .name("bob")
        .timeout(Duration::from_secs(30))
        .spawn()?;
    bob.wait_listening(Duration::from_secs(10))?;

    // The gateway of trunk gw2 (its address and port) calls bob's number.
    let inbound = Sipp::client(&server, "voice_inbound_uac.xml", T)
        .name("gw2-to-bob")
        .port(p2)
        .csv(&[vec!["+14255550101".into(), "+12065550123".into()]])?
        .timeout(Duration::from_secs(20))
        .run()?;
    let bob_run = bob.wait_for(Duration::from_secs(10))?;
    if inbound.expect(1).is_err() || bob_run.expect(1).is_err() {
        return Err(Error(format!(
            "inbound call failed\n--- gateway ---\n{}--- bob ---\n{}{}",
            inbound.report(),
            bob_run.report(),
            server.context()
        )));
    }

    // The same call from an address that is no trunk's.
    let stranger = Sipp::client(&server, "voice_inbound_refused_uac.xml", T)
        .name("stranger-to-bob")
        .csv(&[vec!["+14255550101".into(), "+12065550123".into()]])?
        .timeout(Duration::from_secs(20))
        .run()?;
    server.with_log(stranger.expect(1))
}
