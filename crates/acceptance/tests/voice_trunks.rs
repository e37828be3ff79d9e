//! The Mediation role's TCP and TLS trunks with real parts: a baresip user dials
//! a national number; its route's first trunk is TCP with nobody listening
//! (connection refused: counted as a `503`), so the Mediation server fails over
//! to the second, a TCP trunk whose gateway is SIPp (`-t t1`, echoing RTP); the
//! call connects, RTP flows, the user hangs up. Then the user dials an
//! international number routed over a TLS trunk. Debian's SIPp has no TLS, so
//! that gateway is the small rustls user agent of `confab_acceptance::tls_gateway`
//! (its certificate is the server's `[mediation] gateway_ca`): it sees the
//! INVITE, ACK and BYE over TLS and echoes RTP. The call records show the trunks.

use std::process::{Command, Stdio};
use std::time::Duration;

use confab_acceptance::sipp::{Sipp, Transport};
use confab_acceptance::tls_gateway::TlsGateway;
use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, free_port, free_port_pair, run_bounded, tail,
    temp_dir, tests_dir, tools_required, wait_for,
};

fn configure(server: &ConfabServer, dead: u16, tcp: u16, tls: u16) -> Result<()> {
    let (dead, tcp, tls) = (
        format!("127.0.0.1:{dead}"),
        format!("127.0.0.1:{tcp}"),
        format!("127.0.0.1:{tls}"),
    );
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "user",
            "set",
            "alice@example.com",
            "--line-uri",
            "tel:+14255550100",
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
        vec!["voice", "usage", "add", "all"],
        vec!["voice", "policy", "add", "global", "--usages", "all"],
        vec![
            "voice",
            "trunk",
            "add",
            "gwdead",
            "--gateway",
            &dead,
            "--transport",
            "tcp",
        ],
        vec![
            "voice",
            "trunk",
            "add",
            "gwtcp",
            "--gateway",
            &tcp,
            "--transport",
            "tcp",
        ],
        vec![
            "voice",
            "trunk",
            "add",
            "gwtls",
            "--gateway",
            &tls,
            "--transport",
            "tls",
        ],
        vec![
            "voice",
            "rule",
            "add",
            "trunk:gwtcp",
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
            "all",
            "--trunks",
            "gwdead,gwtcp",
        ],
        vec![
            "voice",
            "route",
            "add",
            "uk",
            "--pattern",
            r"\+44\d+",
            "--usages",
            "all",
            "--trunks",
            "gwtls",
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

/// alice dials `uri` with run_voice.py (registers, dials, RTP must arrive, hangs up).
fn alice_dials(server: &ConfabServer, uri: &str, run: &str) -> Result<std::process::Output> {
    let ports = [free_port_pair(), free_port(), free_port_pair()]
        .map(|p| p.to_string())
        .join(",");
    let mut cmd = Command::new("python3");
    cmd.arg(tests_dir().join("clients/baresip/run_voice.py"))
        .arg(server.sip_addr().ip().to_string())
        .arg(server.sip_port().to_string())
        .args([
            "--user",
            "alice:alicepw",
            "--domain",
            server.domain(),
            "--ports",
            &ports,
        ])
        .arg("--workdir")
        .arg(server.work_dir().join(format!("baresip-{run}")))
        .args(["--timeout", "15", "--dial", uri, "--hold", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_bounded(cmd, Duration::from_secs(90))
}

fn passed(out: &std::process::Output) -> std::result::Result<(), String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    if out.status.success() && last.ends_with(" 0 failed") {
        Ok(())
    } else {
        Err(format!(
            "{}--- stderr ---\n{}",
            tail(&stdout, 60),
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        ))
    }
}

#[test]
fn mediation_places_calls_over_tcp_and_tls_trunks_with_failover_on_refused_connection() -> Result<()>
{
    if !tools_required(&["sipp", "baresip", "python3"]) {
        return Ok(());
    }
    let (dead, p_tcp, p_tls) = (free_port(), free_port(), free_port());
    let (med, med_tls) = (free_port(), free_port());
    let dir = temp_dir("trunks")?;
    let gw_tls = TlsGateway::start(&dir.path().join("gateway"), p_tls)?;
    let config = dir.path().join("confab.toml");
    std::fs::write(
        &config,
        format!(
            "[mediation]\nsip = \"127.0.0.1:{med}\"\ntls = \"127.0.0.1:{med_tls}\"\n\
             gateway_ca = \"{}\"\nfailover_timeout_ms = 3000\n",
            gw_tls.ca_file.display()
        ),
    )
    .map_err(|e| Error(format!("writing {}: {e}", config.display())))?;
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alicepw")
            .arg("--config")
            .arg(&config.to_string_lossy()),
    )?;
    configure(&server, dead, p_tcp, p_tls)?;

    // 1. TCP: gwdead refuses the connection, gwtcp (SIPp over TCP) answers.
    let mut gw_tcp = Sipp::server_mode(&server, "voice_gw_uas.xml", Transport::Tcp, p_tcp)
        .name("gw-tcp")
        .arg("-rtp_echo")
        .timeout(Duration::from_secs(40))
        .spawn()?;
    gw_tcp.wait_listening(Duration::from_secs(10))?;
    let alice = alice_dials(&server, "sip:5550199@example.com", "tcp")?;
    let tcp_run = gw_tcp.wait_for(Duration::from_secs(10))?;
    if let Err(e) = passed(&alice) {
        return Err(Error(format!(
            "alice's call over the TCP trunk failed:\n{e}--- SIPp (TCP gateway) ---\n{}{}",
            tcp_run.report(),
            server.context()
        )));
    }
    server.with_log(tcp_run.expect(1))?;

    // 2. TLS: the rustls gateway answers, echoes RTP, gets the BYE.
    let alice = alice_dials(&server, "sip:00442071234567@example.com", "tls")?;
    let seen = gw_tls.finish(Duration::from_secs(10));
    if let Err(e) = passed(&alice) {
        return Err(Error(format!(
            "alice's call over the TLS trunk failed:\n{e}--- TLS gateway ---\n{seen:?}\n{}",
            server.context()
        )));
    }
    let lines = seen.start_lines();
    let want_ruri = format!("INVITE sip:+442071234567@127.0.0.1:{p_tls};user=phone SIP/2.0");
    let via_tls = seen
        .requests
        .first()
        .is_some_and(|r| r.contains(&format!("Via: SIP/2.0/TLS 127.0.0.1:{med_tls};")));
    if seen.error.is_some()
        || lines.first() != Some(&want_ruri.as_str())
        || !via_tls
        || !lines.iter().any(|l| l.starts_with("ACK "))
        || !lines.iter().any(|l| l.starts_with("BYE "))
        || seen.rtp_echoed < 10
    {
        return Err(Error(format!(
            "the TLS gateway's view (want {want_ruri}, Via over TLS, ACK, BYE, RTP): {seen:?}\n{}",
            server.context()
        )));
    }

    // The records: failover from gwdead (503) to gwtcp; the TLS call on gwtls.
    let report = wait_for(Duration::from_secs(5), Duration::from_millis(200), || {
        let r = server.cli(&["report", "calls"]).ok()?;
        r.contains("2 call(s)").then_some(r)
    })
    .ok_or_else(|| Error(format!("no call records\n{}", server.context())))?;
    let tcp_ok = report.lines().any(|l| {
        l.contains("outbound")
            && l.contains("+14255550199")
            && l.contains("answered")
            && l.contains("gwdead:503 gwtcp:200")
    });
    let tls_ok = report.lines().any(|l| {
        l.contains("outbound")
            && l.contains("+442071234567")
            && l.contains("answered")
            && l.contains("gwtls:200")
    });
    if !tcp_ok || !tls_ok {
        return Err(Error(format!("confab report calls:\n{report}")));
    }
    let metrics = server.metrics()?;
    for want in [
        "confab_trunk_failed_total{trunk=\"gwdead\",code=\"503\"} 1",
        "confab_trunk_answered_total{trunk=\"gwtcp\"} 1",
        "confab_trunk_answered_total{trunk=\"gwtls\"} 1",
    ] {
        if !metrics.lines().any(|l| l == want) {
            return Err(Error(format!(
                "/metrics lacks {want}:\n{}",
                tail(&metrics, 20)
            )));
        }
    }
    Ok(())
}
