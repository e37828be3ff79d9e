//! The Mediation role (crates/mediation) with real clients: a baresip user dials a
//! national number; the front end hands the call to the collocated Mediation
//! server, whose back-to-back user agent tries the first trunk (SIPp answering
//! 503), fails over to the second (SIPp echoing RTP, `[mediation] relay_trunks`:
//! media through the RTP relay), which gets the E.164 number with its trunk's
//! translation; RTP flows and the user hangs up. Then the first trunk's gateway
//! calls another user's number at the Mediation server's port: the baresip user
//! rings, answers, gets RTP, and the gateway hangs up; the same call from an
//! address that is no trunk is refused. The server's call records show each call.

use std::process::{Command, Stdio};
use std::time::Duration;

use confab_acceptance::monitoring::{RECORD_DROPS, metric_value, wait_metrics};
use confab_acceptance::sipp::{Sipp, Transport};
use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, free_port, free_port_pair, run_bounded, tail,
    temp_dir, tests_dir, tools_required, wait_for,
};

const T: Transport = Transport::Udp;

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
    let rev = format!("rev={}", steps.len());
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        server
            .log_text()
            .lines()
            .any(|l| l.contains("applied voice configuration") && l.contains(&rev))
            .then_some(())
    })
    .ok_or_else(|| Error(format!("voice {rev} not applied\n{}", server.context())))
}

/// run_voice.py for one baresip user; `action`: `--dial URI` or `--answer`.
fn baresip_cmd(server: &ConfabServer, user: &str, action: &[&str], ready: Option<&str>) -> Command {
    let ports = [free_port_pair(), free_port(), free_port_pair()]
        .map(|p| p.to_string())
        .join(",");
    let name = user.split(':').next().unwrap_or("user");
    let mut cmd = Command::new("python3");
    cmd.arg(tests_dir().join("clients/baresip/run_voice.py"))
        .arg(server.sip_addr().ip().to_string())
        .arg(server.sip_port().to_string())
        .args([
            "--user",
            user,
            "--domain",
            server.domain(),
            "--ports",
            &ports,
        ])
        .arg("--workdir")
        .arg(server.work_dir().join(format!("baresip-voice-{name}")))
        .args(["--timeout", "15"])
        .args(action)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(r) = ready {
        cmd.args(["--ready-file", r]);
    }
    cmd
}

fn passed(out: &std::process::Output) -> std::result::Result<(), String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    if out.status.success() && last.ends_with(" 0 failed") {
        Ok(())
    } else {
        Err(format!(
            "{}--- stderr ---\n{}",
            tail(&stdout, 100),
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        ))
    }
}

/// The server's `call record` log lines.
fn records(server: &ConfabServer) -> Vec<String> {
    server
        .log_text()
        .lines()
        .filter(|l| l.contains("call record"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn mediation_b2bua_outbound_failover_relay_inbound_and_stranger() -> Result<()> {
    if !tools_required(&["sipp", "baresip", "python3"]) {
        return Ok(());
    }
    let (p1, p2, med_port) = (free_port(), free_port(), free_port());
    let dir = temp_dir("mediation")?;
    let config = dir.path().join("confab.toml");
    std::fs::write(
        &config,
        format!(
            "[mediation]\nsip = \"127.0.0.1:{med_port}\"\nrelay_trunks = [\"gw2\"]\nfailover_timeout_ms = 3000\n"
        ),
    )
    .map_err(|e| Error(format!("writing {}: {e}", config.display())))?;
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw")
            .arg("--config")
            .arg(&config.to_string_lossy()),
    )?;
    let mediation: std::net::SocketAddr = ([127, 0, 0, 1], med_port).into();
    configure(&server, p1, p2)?;

    // Outbound: gw1 answers 503, gw2 answers and echoes RTP (through the relay).
    let mut gw1 = Sipp::server_mode(&server, "voice_gw_503.xml", T, p1)
        .name("gw1-503")
        .timeout(Duration::from_secs(40))
        .spawn()?;
    let mut gw2 = Sipp::server_mode(&server, "voice_gw_uas.xml", T, p2)
        .name("gw2-echo")
        .arg("-rtp_echo")
        .timeout(Duration::from_secs(40))
        .spawn()?;
    gw1.wait_listening(Duration::from_secs(10))?;
    gw2.wait_listening(Duration::from_secs(10))?;
    let alice = run_bounded(
        baresip_cmd(
            &server,
            "alice:alicepw",
            &["--dial", "sip:5550199@example.com", "--hold", "2"],
            None,
        ),
        Duration::from_secs(120),
    )?;
    let gw1_run = gw1.wait_for(Duration::from_secs(10))?;
    let gw2_run = gw2.wait_for(Duration::from_secs(10))?;
    if let Err(e) = passed(&alice) {
        return Err(Error(format!(
            "alice's call to the PSTN failed:\n{e}--- gw1 ---\n{}--- gw2 ---\n{}{}",
            gw1_run.report(),
            gw2_run.report(),
            server.context()
        )));
    }
    if gw1_run.expect(1).is_err() || gw2_run.expect(1).is_err() {
        return Err(Error(format!(
            "the gateways did not see the call as expected\n--- gw1 ---\n{}--- gw2 ---\n{}{}",
            gw1_run.report(),
            gw2_run.report(),
            server.context()
        )));
    }

    // Inbound: gw1's gateway calls bob's number at the Mediation server.
    let ready = server.work_dir().join("bob-ready");
    let bob_cmd = baresip_cmd(
        &server,
        "bob:bobpw",
        &["--answer"],
        Some(&ready.to_string_lossy()),
    );
    let bob = std::thread::spawn(move || run_bounded(bob_cmd, Duration::from_secs(120)));
    wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        ready.exists().then_some(())
    })
    .ok_or_else(|| {
        Error(format!(
            "bob's baresip did not register\n{}",
            server.context()
        ))
    })?;
    let inbound = Sipp::client(&server, "voice_inbound_media_uac.xml", T)
        .name("gw1-to-bob")
        .remote(mediation)
        .port(p1)
        .arg("-rtp_echo")
        .csv(&[vec!["+14255550101".into(), "+12065550123".into()]])?
        .timeout(Duration::from_secs(40))
        .run()?;
    let bob = bob
        .join()
        .map_err(|_| Error("bob's harness thread panicked".into()))??;
    if let Err(e) = passed(&bob) {
        return Err(Error(format!(
            "the gateway's call to bob failed:\n{e}--- gateway ---\n{}{}",
            inbound.report(),
            server.context()
        )));
    }
    server.with_log(inbound.expect(1))?;

    // The same call from an address that is no trunk's: refused (403).
    let stranger = Sipp::client(&server, "voice_inbound_refused_uac.xml", T)
        .name("stranger-to-bob")
        .remote(mediation)
        .csv(&[vec!["+14255550101".into(), "+12065550123".into()]])?
        .timeout(Duration::from_secs(20))
        .run()?;
    server.with_log(stranger.expect(1))?;

    // The call records: the outbound call over gw2 (after gw1's 503) with media
    // through the relay, the inbound call from gw1 to bob, and the refusal is no call.
    let recs = wait_for(Duration::from_secs(5), Duration::from_millis(100), || {
        let r = records(&server);
        (r.len() >= 2).then_some(r)
    })
    .ok_or_else(|| Error(format!("no call records\n{}", server.context())))?;
    let out = recs
        .iter()
        .find(|l| l.contains("direction=\"outbound\"") || l.contains("direction=outbound"))
        .ok_or_else(|| Error(format!("no outbound record: {recs:?}")))?;
    let relayed = out
        .split("relayed_packets=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    if !out.contains("trunk=\"gw2\"") || !out.contains("code=200") || relayed < 10 {
        return Err(Error(format!(
            "outbound record: want trunk gw2, code 200 and RTP through the relay: {out}"
        )));
    }
    let inb = recs
        .iter()
        .find(|l| l.contains("inbound"))
        .ok_or_else(|| Error(format!("no inbound record: {recs:?}")))?;
    if !inb.contains("trunk=\"gw1\"")
        || !inb.contains("code=200")
        || !inb.contains("bob@example.com")
    {
        return Err(Error(format!("inbound record: {inb}")));
    }

    // `confab report calls` lists both from the database, with their outcome.
    let report = server.cli(&["report", "calls"])?;
    let lines: Vec<&str> = report.lines().collect();
    let outbound = lines.iter().any(|l| {
        l.contains("outbound")
            && l.contains("alice@example.com")
            && l.contains("+14255550199")
            && l.contains("gw2")
            && l.contains("answered")
            && l.contains("gw1:503 gw2:200")
    });
    let inbound = lines.iter().any(|l| {
        l.contains("inbound")
            && l.contains("+12065550123")
            && l.contains("bob@example.com")
            && l.contains("gw1")
            && l.contains("answered")
    });
    if !outbound || !inbound || !report.contains("2 call(s)") {
        return Err(Error(format!("confab report calls:\n{report}")));
    }
    // Prometheus counters per trunk, and the record writers': both calls written
    // (the Mediation role's writer), nothing dropped or left queued.
    let metrics = wait_metrics(
        Duration::from_secs(5),
        || server.metrics(),
        "two call records written, nothing dropped",
        |m| {
            let v = |s: &str| metric_value(m, s);
            v("confab_monitoring_records_written_total{kind=\"call\"}") == Some(2)
                && RECORD_DROPS.iter().all(|d| v(d) == Some(0))
                && v("confab_monitoring_queue_depth{queue=\"call_records\"}") == Some(0)
        },
    )
    .map_err(|e| Error(format!("{}\n{}", e.0, server.context())))?;
    for want in [
        "confab_trunk_failed_total{trunk=\"gw1\",code=\"503\"} 1",
        "confab_trunk_answered_total{trunk=\"gw2\"} 1",
        "confab_trunk_answered_total{trunk=\"gw1\"} 1",
        "confab_trunk_attempts_total{trunk=\"gw1\"} 2",
    ] {
        if !metrics.lines().any(|l| l == want) {
            return Err(Error(format!(
                "/metrics lacks {want}:\n{}",
                tail(&metrics, 20)
            )));
        }
    }
    let csv = server.cli(&["report", "calls", "--user", "bob@example.com", "--csv"])?;
    if csv.lines().count() != 2 || !csv.contains(",inbound,+12065550123,bob@example.com,") {
        return Err(Error(format!(
            "confab report calls --user bob --csv:\n{csv}"
        )));
    }
    match server.cli(&["report", "calls", "--since", "yesterday"]) {
        Err(e) if e.0.contains("bad date") => Ok(()),
        other => Err(Error(format!("--since yesterday: {other:?}"))),
    }
}

/// REFER-less blind transfer: gw1 calls bob's number; bob (baresip) answers and
/// transfers the call to carol (REFER to the Mediation server, which the gateway
/// never sees); the Mediation server calls carol, re-INVITEs the gateway with
/// her offer and hangs up bob; carol's RTP comes back from the gateway, and the
/// gateway hangs up on her.
#[test]
fn mediation_blind_transfer_without_refer_to_the_gateway() -> Result<()> {
    if !tools_required(&["sipp", "baresip", "python3"]) {
        return Ok(());
    }
    let (p1, p2, med_port) = (free_port(), free_port(), free_port());
    let dir = temp_dir("mediation-transfer")?;
    let config = dir.path().join("confab.toml");
    std::fs::write(
        &config,
        format!("[mediation]\nsip = \"127.0.0.1:{med_port}\"\n"),
    )
    .map_err(|e| Error(format!("writing {}: {e}", config.display())))?;
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw")
            .user("carol@example.com", "carolpw")
            .arg("--config")
            .arg(&config.to_string_lossy()),
    )?;
    let mediation: std::net::SocketAddr = ([127, 0, 0, 1], med_port).into();
    configure(&server, p1, p2)?;

    let mut users = Vec::new();
    let mut ready = Vec::new();
    for (user, extra) in [
        ("carol:carolpw", None),
        ("bob:bobpw", Some("sip:carol@example.com")),
    ] {
        let name = user.split(':').next().unwrap_or("user");
        let r = server.work_dir().join(format!("{name}-ready"));
        let mut action = vec!["--answer"];
        if let Some(t) = extra {
            action.extend(["--transfer-to", t]);
        }
        let cmd = baresip_cmd(&server, user, &action, Some(&r.to_string_lossy()));
        users.push((
            name,
            std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(120))),
        ));
        ready.push(r);
    }
    wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        ready.iter().all(|r| r.exists()).then_some(())
    })
    .ok_or_else(|| Error(format!("baresip did not register\n{}", server.context())))?;
    let gw = Sipp::client(&server, "voice_inbound_transfer_uac.xml", T)
        .name("gw1-transfer")
        .remote(mediation)
        .port(p1)
        .arg("-rtp_echo")
        .csv(&[vec!["+14255550101".into(), "+12065550123".into()]])?
        .timeout(Duration::from_secs(60))
        .recv_timeout(Duration::from_secs(30))
        .run()?;
    let mut failures = Vec::new();
    for (name, h) in users {
        let out = h
            .join()
            .map_err(|_| Error(format!("{name}'s harness thread panicked")))??;
        if let Err(e) = passed(&out) {
            failures.push(format!("--- {name} ---\n{e}"));
        }
    }
    if !failures.is_empty() || gw.expect(1).is_err() {
        return Err(Error(format!(
            "the blind transfer failed:\n{}--- gateway ---\n{}{}",
            failures.join(""),
            gw.report(),
            server.context()
        )));
    }
    let trace = gw.messages();
    if trace.contains("REFER") {
        return Err(Error(format!(
            "the gateway saw a REFER:\n{}",
            tail(&trace, 80)
        )));
    }
    Ok(())
}
