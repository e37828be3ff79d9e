//! SIPp against confab: digest REGISTER of 100 users, authenticated MESSAGE, a call
//! through the proxy, and presence (PUBLISH / SUBSCRIBE / NOTIFY), over UDP and TCP.
//! Every test starts its own server on free ports in a temporary directory.
//! Scenarios: tests/sipp/*.xml (see tests/README.md).

use std::time::{Duration, Instant};

use confab_acceptance::sipp::auth_field;
use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, Sipp, Transport, free_port, tools_required,
};

const DOMAIN: &str = "example.com";

/// user000..user099 with passwords pw000..pw099.
fn numbered_users(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("user{i:03}"), format!("pw{i:03}")))
        .collect()
}

fn alice_bob() -> ServerOptions {
    ServerOptions::new()
        .domain(DOMAIN)
        .user("alice@example.com", "alicepw")
        .user("bob@example.com", "bobpw")
}

fn register_100(t: Transport) -> Result<()> {
    if !tools_required(&["sipp"]) {
        return Ok(());
    }
    let users = numbered_users(100);
    let server = ConfabServer::start(
        ServerOptions::new().domain(DOMAIN).import_users(
            users
                .iter()
                .map(|(u, p)| (format!("{u}@{DOMAIN}"), p.clone())),
        ),
    )?;
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|(u, p)| vec![u.clone(), auth_field(u, p)])
        .collect();
    let sipp = Sipp::client(&server, "register_digest.xml", t)
        .name(&format!("register-{}", t.name()))
        .csv(&rows)?;
    let port = sipp.local_port().to_string();
    let run = sipp
        .key("expires", "300")
        .key("contact_port", &port)
        .calls(100)
        .rate(50)
        .timeout(Duration::from_secs(60))
        .run()?;
    server.with_log(run.expect(100))?;
    // Operators see where the 200 requests (challenge, then credentials) waited.
    let text = server.metrics()?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    for stage in ["queue", "receive_to_send"] {
        let n = value(&format!(
            "confab_sip_stage_seconds_count{{stage=\"{stage}\"}} "
        ));
        if n.is_none_or(|n| n < 200.0) {
            return Err(Error::new(format!(
                "stage {stage}: {n:?} messages timed, expected at least 200\n{text}"
            )));
        }
    }
    let slow = value("confab_sip_stage_seconds_bucket{stage=\"receive_to_send\",le=\"+Inf\"} ")
        .zip(value(
            "confab_sip_stage_seconds_bucket{stage=\"receive_to_send\",le=\"1\"} ",
        ));
    if slow.is_none_or(|(all, within)| all != within) {
        return Err(Error::new(format!(
            "a request at 50/s waited over a second in the server: {slow:?}"
        )));
    }
    if value("confab_udp_socket_drops_total ").is_none() {
        return Err(Error::new(format!("no UDP socket figures\n{text}")));
    }
    Ok(())
}

#[test]
fn register_100_users_digest_udp() -> Result<()> {
    register_100(Transport::Udp)
}

#[test]
fn register_100_users_digest_tcp() -> Result<()> {
    register_100(Transport::Tcp)
}

/// Registers `bob` with the Contact of a SIPp UAS that will listen on `uas_port`
/// (register_digest.xml run from that very port), as message_uas.xml describes.
fn register_callee(server: &ConfabServer, t: Transport, uas_port: u16) -> Result<()> {
    let run = Sipp::client(server, "register_digest.xml", t)
        .name(&format!("register-bob-{}", t.name()))
        .port(uas_port)
        .csv(&[vec!["bob".into(), auth_field("bob", "bobpw")]])?
        .key("expires", "300")
        .key("contact_port", &uas_port.to_string())
        .calls(1)
        .timeout(Duration::from_secs(20))
        .run()?;
    server.with_log(run.expect(1))
}

/// UAS (server mode) on a port bound to bob's registration + UAC from alice; both
/// must complete `calls` calls.
fn uac_to_uas(
    t: Transport,
    uac_scenario: &str,
    uas_scenario: &str,
    calls: u32,
    pause_ms: Option<u32>,
) -> Result<()> {
    if !tools_required(&["sipp"]) {
        return Ok(());
    }
    let server = ConfabServer::start(alice_bob())?;
    let uas_port = free_port();
    register_callee(&server, t, uas_port)?;
    let mut uas = Sipp::server_mode(&server, uas_scenario, t, uas_port)
        .name(&format!("uas-{}", t.name()))
        .calls(calls)
        .timeout(Duration::from_secs(60))
        .spawn()?;
    uas.wait_listening(Duration::from_secs(10))?;
    let mut uac = Sipp::client(&server, uac_scenario, t)
        .name(&format!("uac-{}", t.name()))
        .csv(&[vec![
            "alice".into(),
            auth_field("alice", "alicepw"),
            "bob".into(),
        ]])?
        .calls(calls)
        .rate(5)
        .timeout(Duration::from_secs(45));
    if let Some(ms) = pause_ms {
        uac = uac.pause_ms(ms);
    }
    let uac_run = uac.run()?;
    // The UAS has nothing left to wait for once the UAC is done.
    let uas_run = uas.wait_for(Duration::from_secs(10))?;
    if uac_run.expect(u64::from(calls)).is_err() || uas_run.expect(u64::from(calls)).is_err() {
        return Err(Error(format!(
            "{uac_scenario} -> {uas_scenario} over {} failed\n--- UAC ---\n{}--- UAS ---\n{}{}",
            t.name(),
            uac_run.report(),
            uas_run.report(),
            server.context()
        )));
    }
    Ok(())
}

#[test]
fn message_authenticated_reaches_uas_udp() -> Result<()> {
    uac_to_uas(
        Transport::Udp,
        "message_uac.xml",
        "message_uas.xml",
        3,
        None,
    )
}

#[test]
fn message_authenticated_reaches_uas_tcp() -> Result<()> {
    uac_to_uas(
        Transport::Tcp,
        "message_uac.xml",
        "message_uas.xml",
        3,
        None,
    )
}

#[test]
fn call_invite_ack_bye_through_proxy_udp() -> Result<()> {
    uac_to_uas(Transport::Udp, "call_uac.xml", "call_uas.xml", 2, Some(500))
}

#[test]
fn call_invite_ack_bye_through_proxy_tcp() -> Result<()> {
    uac_to_uas(Transport::Tcp, "call_uac.xml", "call_uas.xml", 2, Some(500))
}

/// alice SUBSCRIBEs to bob's presence; once her initial NOTIFY is answered bob
/// PUBLISHes; alice must get a NOTIFY with the published state, then unsubscribes.
fn presence(t: Transport) -> Result<()> {
    if !tools_required(&["sipp"]) {
        return Ok(());
    }
    let server = ConfabServer::start(alice_bob())?;
    let sync = server
        .work_dir()
        .join(format!("presence-{}-initial-notify-done", t.name()));
    let mut sub = Sipp::client(&server, "presence_subscribe.xml", t)
        .name(&format!("subscribe-{}", t.name()))
        .csv(&[vec![
            "alice".into(),
            auth_field("alice", "alicepw"),
            "bob".into(),
        ]])?
        .key("sync_file", &sync.to_string_lossy())
        .calls(1)
        .timeout(Duration::from_secs(60))
        .spawn()?;
    let end = Instant::now() + Duration::from_secs(25);
    while !sync.exists() {
        if !sub.is_running() || Instant::now() >= end {
            let run = sub.wait_for(Duration::from_secs(1))?;
            return Err(Error(format!(
                "the watcher never got (and answered) its initial NOTIFY\n{}{}",
                run.report(),
                server.context()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let publ = Sipp::client(&server, "presence_publish.xml", t)
        .name(&format!("publish-{}", t.name()))
        .csv(&[vec!["bob".into(), auth_field("bob", "bobpw")]])?
        .calls(1)
        .timeout(Duration::from_secs(30))
        .run()?;
    let sub_run = sub.wait_for(Duration::from_secs(45))?;
    if publ.expect(1).is_err() || sub_run.expect(1).is_err() {
        return Err(Error(format!(
            "presence over {} failed\n--- publisher ---\n{}--- watcher ---\n{}{}",
            t.name(),
            publ.report(),
            sub_run.report(),
            server.context()
        )));
    }
    Ok(())
}

#[test]
fn presence_publish_notifies_subscriber_udp() -> Result<()> {
    presence(Transport::Udp)
}

#[test]
fn presence_publish_notifies_subscriber_tcp() -> Result<()> {
    presence(Transport::Tcp)
}

/// Issue 15, item 13: a callee that sends 100 Trying before 180 Ringing and 183
/// with SDP (as browser SIP libraries and linphone do); the caller must get the
/// 180 and the 183 with its SDP (early_media_uac.xml requires both).
#[test]
fn call_with_100_180_183_early_media_rings_udp() -> Result<()> {
    uac_to_uas(
        Transport::Udp,
        "early_media_uac.xml",
        "early_media_uas.xml",
        2,
        Some(500),
    )
}

#[test]
fn call_with_100_180_183_early_media_rings_tcp() -> Result<()> {
    uac_to_uas(
        Transport::Tcp,
        "early_media_uac.xml",
        "early_media_uas.xml",
        2,
        Some(500),
    )
}
