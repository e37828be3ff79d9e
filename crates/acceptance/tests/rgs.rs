//! Response Groups with real baresip phones recording what they hear (sndfile):
//! a caller dials a workflow's number, hears the welcome (a 1000 Hz tone) and
//! the menu, presses 2 (RFC 4733), waits in the queue with music (600 Hz), and
//! is connected to the longest-idle signed-in agent of two (bob signed in
//! first, dave is first in the group); audio flows both ways through the
//! service's RTP relay (each phone sends a 440 Hz sine). With no agent signed
//! in, the queue overflows as configured: the caller is forwarded to carol.
//! Configured with `confab rgs ...` while the server runs (bad input refused).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, free_port, free_port_pair, run_bounded, tail,
    tests_dir, tools_required, wait_for,
};
use confab_media::goertzel::tone_power_ratio;

/// Milliseconds of `freq` heard in a recording (20 ms frames with energy, most
/// of it at `freq`).
fn tone_ms(path: &Path, freq: f32) -> Result<u32> {
    let mut r = hound::WavReader::open(path)
        .map_err(|e| Error(format!("reading {}: {e}", path.display())))?;
    let spec = r.spec();
    let ch = usize::from(spec.channels.max(1));
    let samples: Vec<i16> = match spec.sample_format {
        hound::SampleFormat::Int => r
            .samples::<i32>()
            .filter_map(|s| s.ok())
            .map(|s| (s >> (spec.bits_per_sample.saturating_sub(16))) as i16)
            .collect(),
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .filter_map(|s| s.ok())
            .map(|s| (s * 32767.0) as i16)
            .collect(),
    };
    let mono: Vec<i16> = samples.chunks(ch).map(|c| c[0]).collect();
    let frame = (spec.sample_rate / 50) as usize;
    let frames = mono
        .chunks(frame)
        .filter(|c| c.len() == frame)
        .filter(|c| {
            let rms =
                (c.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / c.len() as f64).sqrt();
            rms > 300.0 && tone_power_ratio(c, spec.sample_rate, freq) > 0.6
        })
        .count();
    Ok(frames as u32 * 20)
}

fn ports() -> String {
    [free_port_pair(), free_port(), free_port_pair()]
        .map(|p| p.to_string())
        .join(",")
}

struct Run {
    stdout: String,
}

impl Run {
    /// The recording of what `user` heard.
    fn heard(&self, user: &str) -> Result<PathBuf> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("RECORDING "))
            .filter_map(|l| l.split_once(' '))
            .find(|(u, p)| *u == user && p.contains("dec"))
            .map(|(_, p)| PathBuf::from(p))
            .ok_or_else(|| Error(format!("no recording of {user}:\n{}", self.stdout)))
    }

    fn expect_tone(&self, user: &str, freq: f32, min_ms: u32) -> Result<()> {
        let rec = self.heard(user)?;
        let ms = tone_ms(&rec, freq)?;
        if ms < min_ms {
            return Err(Error(format!(
                "{user} heard {ms} ms of {freq} Hz, expected at least {min_ms} ({})\n{}",
                rec.display(),
                self.stdout
            )));
        }
        Ok(())
    }
}

fn call(
    server: &ConfabServer,
    name: &str,
    answerers: &[&str],
    answer_after: f32,
    expect: &str,
) -> Result<Run> {
    let workdir = server.work_dir().join(format!("baresip-{name}"));
    let mut cmd = Command::new("python3");
    cmd.arg(tests_dir().join("clients/baresip/run_rgs.py"))
        .arg(server.sip_addr().ip().to_string())
        .arg(server.sip_port().to_string())
        .args(["--domain", server.domain()])
        .args(["--caller", "alice:alicepw", "--ports", &ports()])
        .args(["--dial", "sip:+14255550300@example.com"])
        .args(["--expect", expect])
        .args(["--answer-after", &answer_after.to_string()])
        .args(["--timeout", "10"])
        .arg("--workdir")
        .arg(&workdir);
    for a in answerers {
        cmd.arg("--answerer").arg(format!("{a}:{a}pw={}", ports()));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, Duration::from_secs(120))
        .map_err(|e| Error(format!("run_rgs.py: {e}\n{}", server.context())))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !stdout.trim_end().ends_with(" 0 failed") {
        return Err(Error(format!(
            "{name}: the phones' checks failed\n{}--- stderr ---\n{}{}",
            tail(&stdout, 200),
            tail(&stderr, 20),
            server.context()
        )));
    }
    Ok(Run { stdout })
}

fn wait_rev(server: &ConfabServer, rev: usize) -> Result<()> {
    let rev = format!("rev={rev}");
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        server
            .log_text()
            .lines()
            .any(|l| l.contains("applied Response Group configuration") && l.contains(&rev))
            .then_some(())
    })
    .ok_or_else(|| Error(format!("rgs {rev} not applied\n{}", server.context())))
}

#[test]
fn response_group_welcome_menu_queue_agents_and_overflow() -> Result<()> {
    if !tools_required(&["baresip", "python3"]) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw")
            .user("dave@example.com", "davepw")
            .user("carol@example.com", "carolpw"),
    )?;
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "rgs",
            "group",
            "add",
            "helpdesk",
            "--routing",
            "longest-idle",
            "--formal",
            "--agent",
            "dave@example.com",
            "--agent",
            "bob@example.com",
            "--alert-secs",
            "15",
        ],
        vec![
            "rgs",
            "queue",
            "add",
            "support",
            "--group",
            "helpdesk",
            "--timeout",
            "60",
            "--overflow-action",
            "forward:sip:carol@example.com",
        ],
        vec![
            "rgs",
            "workflow",
            "add",
            "help",
            "--uri",
            "sip:help@example.com",
            "--number",
            "tel:+14255550300",
            "--welcome",
            "tones:1000:1000",
            "--menu-prompt",
            "tones:800:400",
            "--option",
            "2=support",
            "--music",
            "tones:600:1000",
        ],
    ];
    // Bad input changes nothing.
    for bad in [
        vec!["rgs", "queue", "add", "x", "--group", "nope"],
        vec![
            "rgs",
            "group",
            "add",
            "x",
            "--routing",
            "random",
            "--agent",
            "bob@example.com",
        ],
        vec!["rgs", "agent", "signin", "helpdesk", "bob@example.com"],
        vec![
            "rgs",
            "workflow",
            "add",
            "x",
            "--uri",
            "sip:x@example.com",
            "--queue",
            "nope",
        ],
    ] {
        if server.cli(&bad).is_ok() {
            return Err(Error(format!("accepted: {bad:?}")));
        }
    }
    for s in &steps {
        server.cli(s)?;
    }
    let listed = server.cli(&["rgs", "workflow", "list"])?;
    if !listed.contains("help\tsip:help@example.com\t+14255550300\tqueue=-\tmenu=2=support") {
        return Err(Error(format!("workflow list:\n{listed}")));
    }
    wait_rev(&server, steps.len())?;

    // No agent signed in: the queue overflows to carol.
    let run = call(&server, "overflow", &["carol"], 0.0, "carol")?;
    run.expect_tone("alice", 1000.0, 700)?;
    run.expect_tone("carol", 440.0, 1000)?;

    // bob signs in before dave: bob is idle the longest and gets the call,
    // after ringing 2.5 s while alice hears the queue's music.
    server.cli(&["rgs", "agent", "signin", "helpdesk", "bob@example.com"])?;
    std::thread::sleep(Duration::from_millis(20));
    server.cli(&["rgs", "agent", "signin", "helpdesk", "dave@example.com"])?;
    wait_rev(&server, steps.len() + 2)?;
    let run = call(&server, "agents", &["bob", "dave"], 2.5, "bob")?;
    run.expect_tone("alice", 1000.0, 700)?;
    run.expect_tone("alice", 800.0, 200)?;
    run.expect_tone("alice", 600.0, 1500)?;
    run.expect_tone("alice", 440.0, 1000)?;
    run.expect_tone("bob", 440.0, 1000)?;
    Ok(())
}
