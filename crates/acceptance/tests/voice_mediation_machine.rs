//! A stand-alone Mediation server (issue 13): two `confab serve` processes from
//! one published topology — a Standard Edition front end on 127.0.0.1 and a
//! machine on 127.0.0.2 whose only role is mediation, in a mediation pool whose
//! next hop is the front end's pool. The mediation machine runs the Mediation
//! role alone on the pool's back end; the front end hands its calls to the PSTN
//! to it instead of a collocated one. The gateway is the topology's: publishing
//! makes its trunk (a bad gateway address is refused with its line; a trunk
//! made by hand is left alone; the topology's trunk cannot be removed with
//! `confab voice`). The dial plan and voice policy are scoped to the site of
//! the user's pool (`site:main`): `confab voice test-number` says so, and the
//! call below is normalized and routed by them in the front end and the
//! mediation machine. A baresip user dials a national number; the gateway
//! (SIPp, echoing RTP) gets the mediation machine's own call with the trunk's
//! translation; the user hangs up; `confab report calls` on the front end lists
//! the call the mediation machine recorded, and the mediation machine's own
//! `/metrics` counts the trunk's attempt and the record written. The gateway then calls a number
//! nobody owns (accepted from the trunk: `404`), and another port of its
//! address is refused (`403`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use confab_acceptance::monitoring::{RECORD_DROPS, metric_value, wait_metrics};
use confab_acceptance::server::{confab_bin, http_get, run_bounded};
use confab_acceptance::sipp::{Sipp, Transport};
use confab_acceptance::{
    Error, Result, ensure, free_port, free_port_pair, tail, tests_dir, tools_required,
};

const DOMAIN: &str = "example.com";

/// A running `confab serve`, killed when dropped.
struct Serve {
    child: Child,
    log: Vec<String>,
    lines: mpsc::Receiver<String>,
}

impl Serve {
    fn start(data: &Path, extra: &[&str]) -> Result<Serve> {
        let mut child = Command::new(confab_bin()?)
            .arg("--data")
            .arg(data)
            .arg("serve")
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("LD_PRELOAD")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error(format!("starting confab serve: {e}")))?;
        let stderr = child.stderr.take().ok_or_else(|| Error::new("no stderr"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Serve {
            child,
            log: Vec::new(),
            lines,
        })
    }

    fn wait_for(&mut self, needle: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Err(Error(format!(
            "no `{needle}` from confab serve:\n{}",
            self.log()
        )))
    }

    fn log(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        tail(&self.log.join("\n"), 60)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `confab` with `data`: whether it succeeded, its stdout, and everything
/// it printed.
fn run_confab(data: &Path, args: &[&str]) -> Result<(bool, String, String)> {
    let mut c = Command::new(confab_bin()?);
    c.arg("--data")
        .arg(data)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(c, Duration::from_secs(60))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), stdout, text))
}

fn confab(data: &Path, args: &[&str]) -> Result<String> {
    let (ok, stdout, text) = run_confab(data, args)?;
    ensure!(ok, "confab {args:?} failed:\n{text}");
    Ok(stdout)
}

/// Runs `confab` expecting it to fail; returns what it printed.
fn confab_fails(data: &Path, args: &[&str]) -> Result<String> {
    let (ok, _, text) = run_confab(data, args)?;
    ensure!(!ok, "confab {args:?} succeeded:\n{text}");
    Ok(text)
}

#[test]
fn a_mediation_machine_carries_its_pools_calls_to_the_pstn() -> Result<()> {
    if !tools_required(&["sipp", "baresip", "python3"]) {
        return Ok(());
    }
    let dir = confab_acceptance::temp_dir("mediation-machine")?;
    let fe = dir.path().join("se01");
    let medm = dir.path().join("med01");
    std::fs::create_dir_all(&fe)?;
    let file = dir.path().join("topology.toml");
    let (sip, tls, web) = (free_port(), free_port(), free_port());
    let (med_sip, med_tls, gw) = (free_port(), free_port(), free_port());
    // The back end is one SQLite file both machines reach (the same host).
    let db = fe.join("confab.db");
    std::fs::write(
        &file,
        format!(
            r#"sip_domains = ["{DOMAIN}"]

[[site]]
name = "main"

[[store]]
name = "backend"
kind = "back-end"
sqlite = "{db}"

[[pool]]
fqdn = "se01.{DOMAIN}"
site = "main"
edition = "standard"
backend = "backend"

[[pool.machine]]
fqdn = "se01.{DOMAIN}"
addresses = ["127.0.0.1"]
roles = ["front-end"]
[pool.machine.ports]
front-end.sip = {sip}
front-end.sip-udp = {sip}
front-end.sip-tls = {tls}
front-end.web = {web}

[[pool]]
fqdn = "med.{DOMAIN}"
site = "main"
next_hop = "se01.{DOMAIN}"

[[pool.machine]]
fqdn = "med01.{DOMAIN}"
addresses = ["127.0.0.2"]
roles = ["mediation"]
[pool.machine.ports]
mediation.sip-tls = {med_sip}
mediation.gateway = {med_tls}

[[gateway]]
name = "gw"
address = "127.0.0.1"
port = {gw}
transport = "udp"
mediation_pool = "med.{DOMAIN}"
"#,
            db = db.display()
        ),
    )?;
    // A gateway whose address is no IP address: refused with its line, nothing
    // published.
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&file)?;
    std::fs::write(
        &bad,
        text.replace(
            r#"address = "127.0.0.1"
port"#,
            r#"address = "gw.example.com"
port"#,
        ),
    )?;
    let line = text
        .lines()
        .position(|l| l.starts_with(r#"address = "127.0.0.1""#))
        .map_or(0, |i| i + 1);
    let refused = confab_fails(&fe, &["topology", "publish", &bad.to_string_lossy()])?;
    ensure!(
        refused.contains(&format!("bad.toml:{line}:11: error[address]: gateway address \"gw.example.com\" is not an IP address"))
            && refused.contains("nothing was changed"),
        "a bad gateway address is refused with its line:\n{refused}"
    );
    let published = confab(&fe, &["topology", "publish", &file.to_string_lossy()])?;
    ensure!(
        published.contains(&format!("+ trunk gw: 127.0.0.1:{gw}/udp")),
        "publishing makes the gateway's trunk:\n{published}"
    );
    confab(
        &fe,
        &["bootstrap", "--force", "--fqdn", &format!("se01.{DOMAIN}")],
    )?;
    let cms = format!("sqlite://{}", db.display());
    confab(
        &medm,
        &[
            "bootstrap",
            "--force",
            "--cms",
            &cms,
            "--fqdn",
            &format!("med01.{DOMAIN}"),
        ],
    )?;
    let steps: Vec<Vec<&str>> = vec![
        vec!["user", "add", "alice@example.com", "--password", "alicepw"],
        vec![
            "user",
            "set",
            "alice@example.com",
            "--line-uri",
            "tel:+14255550100",
        ],
        // The plan and the policy of the site of alice's pool (she has none of
        // her own, and there is no global one).
        vec!["voice", "dialplan", "add", "site:main"],
        vec![
            "voice",
            "rule",
            "add",
            "site:main",
            "local7",
            "--pattern",
            r"(\d{7})",
            "--translation",
            "+1425$1",
        ],
        vec!["voice", "usage", "add", "local"],
        vec!["voice", "policy", "add", "site:main", "--usages", "local"],
        // A trunk made by hand, which publishing leaves alone.
        vec!["voice", "trunk", "add", "spare", "--gateway", "127.0.0.1:9"],
        vec![
            "voice",
            "rule",
            "add",
            "trunk:gw",
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
            "gw",
        ],
    ];
    for s in &steps {
        confab(&fe, s)?;
    }
    let trunks = confab(&fe, &["voice", "trunk", "list"])?;
    ensure!(
        trunks.contains(&format!(
            "gw\t127.0.0.1:{gw}\tudp\t1 rules\ttopology gateway"
        )) && trunks.contains("spare\t127.0.0.1:9\tudp\t0 rules\n"),
        "confab voice trunk list:\n{trunks}"
    );
    let kept = confab_fails(&fe, &["voice", "trunk", "remove", "gw"])?;
    ensure!(
        kept.contains("is the topology's PSTN gateway gw"),
        "the topology's trunk is removed from the topology:\n{kept}"
    );
    let again = confab(&fe, &["topology", "publish", &file.to_string_lossy()])?;
    ensure!(
        again.contains("unchanged")
            && again.contains("1 trunk(s) made with `confab voice trunk add` left alone"),
        "publishing again changes no trunk:\n{again}"
    );
    // Site scopes: alice is homed on the front end's pool, in site main.
    let test = confab(
        &fe,
        &["voice", "test-number", "alice@example.com", "5550199"],
    )?;
    for want in [
        "home:        pool se01.example.com, site main",
        "dial plan:   site:main",
        "rule:        local7",
        "voice policy: site:main (usages: local)",
        "trunk 1:     gw via route us usage local: 14255550199",
    ] {
        ensure!(test.contains(want), "test-number lacks {want:?}:\n{test}");
    }

    // The mediation machine: the role alone, on its address and the topology's ports.
    // Its /metrics on the web address of its configuration (plain HTTP here).
    let med_web: SocketAddr = ([127, 0, 0, 2], free_port()).into();
    let mut med = Serve::start(
        &medm,
        &["--http", &med_web.to_string(), "--web-tls", "false"],
    )?;
    let line = med.wait_for("mediation server started")?;
    ensure!(
        line.contains(&format!("127.0.0.2:{med_sip}"))
            && line.contains(&format!("127.0.0.2:{med_tls}"))
            && line.contains(&format!("127.0.0.1:{sip}"))
            && line.contains(&format!("metrics={med_web}")),
        "the Mediation server listens on its machine's ports and serves the front end: {line}"
    );
    let mut front = Serve::start(&fe, &[])?;
    front.wait_for("front end ready")?;
    let log = front.log();
    ensure!(
        log.contains(&format!("mediation.remote=127.0.0.2:{med_sip}"))
            && !log.contains("Mediation role: gateways send calls"),
        "the front end hands calls to the mediation machine, no collocated one:\n{log}"
    );

    let mut gw_run = Sipp::new("voice_gw_uas.xml", &dir.path().join("sipp"))
        .name("gw")
        .transport(Transport::Udp)
        .port(gw)
        .key("domain", DOMAIN)
        .arg("-rtp_echo")
        .timeout(Duration::from_secs(40))
        .spawn()?;
    gw_run.wait_listening(Duration::from_secs(10))?;
    let ports = [free_port_pair(), free_port(), free_port_pair()]
        .map(|p| p.to_string())
        .join(",");
    let mut cmd = Command::new("python3");
    cmd.arg(tests_dir().join("clients/baresip/run_voice.py"))
        .args(["127.0.0.1", &sip.to_string()])
        .args([
            "--user",
            "alice:alicepw",
            "--domain",
            DOMAIN,
            "--ports",
            &ports,
        ])
        .arg("--workdir")
        .arg(dir.path().join("baresip-alice"))
        .args(["--timeout", "15", "--dial", "sip:5550199@example.com"])
        .args(["--hold", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let alice = run_bounded(cmd, Duration::from_secs(90))?;
    let gw_seen = gw_run.wait_for(Duration::from_secs(10))?;
    let stdout = String::from_utf8_lossy(&alice.stdout);
    if !alice.status.success() || !stdout.lines().last().unwrap_or("").ends_with(" 0 failed") {
        return Err(Error(format!(
            "alice's call through the mediation machine failed:\n{}--- gateway ---\n{}\
             --- mediation machine ---\n{}\n--- front end ---\n{}",
            tail(&stdout, 40),
            gw_seen.report(),
            med.log(),
            front.log()
        )));
    }
    gw_seen
        .expect(1)
        .map_err(|e| Error(format!("{}\n--- mediation machine ---\n{}", e.0, med.log())))?;

    // The mediation machine recorded the call in the pool's store.
    med.wait_for("call record")?;
    let report = confab(&fe, &["report", "calls"])?;
    ensure!(
        report.lines().any(|l| l.contains("outbound")
            && l.contains("alice@example.com")
            && l.contains("+14255550199")
            && l.contains("answered")
            && l.contains("gw:200")),
        "confab report calls on the front end:\n{report}"
    );

    // The mediation machine's /metrics: the trunk's counters and its record
    // writer's, nothing dropped; its web port serves nothing else.
    let fetch = || {
        let (code, body) = http_get(med_web, "/metrics", Duration::from_secs(5))?;
        ensure!(
            code == 200,
            "GET /metrics on the mediation machine -> {code}"
        );
        Ok(body)
    };
    wait_metrics(
        Duration::from_secs(5),
        fetch,
        "the mediation machine's trunk and record counters",
        |m| {
            let v = |s: &str| metric_value(m, s);
            v("confab_trunk_attempts_total{trunk=\"gw\"}") == Some(1)
                && v("confab_trunk_answered_total{trunk=\"gw\"}") == Some(1)
                && v("confab_monitoring_records_written_total{kind=\"call\"}") == Some(1)
                && RECORD_DROPS.iter().all(|d| v(d) == Some(0))
                && v("confab_monitoring_queue_depth{queue=\"call_records\"}") == Some(0)
        },
    )
    .map_err(|e| Error(format!("{}\n--- mediation machine ---\n{}", e.0, med.log())))?;
    let (code, _) = http_get(med_web, "/", Duration::from_secs(5))?;
    ensure!(
        code == 404,
        "the mediation machine's web port serves /metrics and /health only: GET / -> {code}"
    );
    // Inbound: the published gateway's address and port is a trunk (a number
    // nobody owns: 404); another port of that address is not (403).
    let mediation: SocketAddr = format!("127.0.0.2:{med_sip}")
        .parse()
        .map_err(|e| Error(format!("{e}")))?;
    let calls = [
        ("voice_inbound_unowned_uac.xml", "gw-to-nobody", Some(gw)),
        ("voice_inbound_refused_uac.xml", "stranger", None),
    ];
    for (scenario, name, port) in calls {
        let mut run = Sipp::new(scenario, &dir.path().join("sipp"))
            .name(name)
            .remote(mediation)
            .key("domain", DOMAIN)
            .timeout(Duration::from_secs(20))
            .csv(&[vec!["+14255550999".into(), "+12065550123".into()]])?;
        if let Some(p) = port {
            run = run.port(p);
        }
        let done = run.run()?;
        done.expect(1).map_err(|e| {
            Error(format!(
                "{name}: {}\n--- mediation machine ---\n{}",
                e.0,
                med.log()
            ))
        })?;
    }
    Ok(())
}
