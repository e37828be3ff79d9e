//! Call Park with three real baresip phones recording what they hear (the
//! sndfile module), one server: A calls B, B parks the call with a transfer
//! (REFER to `<sip:ORBIT@domain;parker=bob>`), A hears the orbit's music on hold
//! (a 700 Hz tone: Goertzel), B is told the orbit in a MESSAGE, C dials the
//! orbit and talks to A (A hears C's 1000 Hz sine, C hears A's 440 Hz sine:
//! RTP both ways through the park service's bridge); a second parked call,
//! never retrieved, rings B back after its range's short timeout. The orbit
//! ranges are configured with `confab voice park orbit ...` (bad input refused).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, free_port, free_port_pair, run_bounded, tail,
    tests_dir, tools_required, wait_for,
};
use confab_media::goertzel::tone_power_ratio;

/// Milliseconds of `freq` in a recording: 20 ms frames with some energy, most
/// of it at `freq`.
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
            rms > 500.0 && tone_power_ratio(c, spec.sample_rate, freq) > 0.6
        })
        .count();
    Ok(frames as u32 * 20)
}

/// SIP, control and RTP ports for one baresip (RTP: 4 ports, two calls' worth).
fn ports() -> String {
    [
        free_port_pair(),
        free_port(),
        confab_acceptance::ports::free_port_block(4, true),
    ]
    .map(|p| p.to_string())
    .join(",")
}

/// Milliseconds of `freq` in everything phone `name` heard (its decoder-side
/// recordings, one per call).
fn heard(stdout: &str, name: &str, freq: f32) -> Result<u32> {
    let files: Vec<PathBuf> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RECORDING "))
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, p)| *n == name && p.contains("dec"))
        .map(|(_, p)| PathBuf::from(p))
        .collect();
    let mut ms = 0;
    for f in &files {
        ms += tone_ms(f, freq)?;
    }
    Ok(ms)
}

#[test]
fn park_music_retrieve_and_ring_back() -> Result<()> {
    if !tools_required(&["baresip", "python3"]) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw")
            .user("carol@example.com", "carolpw"),
    )?;
    // Bad input changes nothing.
    for bad in [
        vec![
            "voice", "park", "orbit", "add", "x", "--start", "7099", "--end", "7000",
        ],
        vec![
            "voice", "park", "orbit", "add", "x", "--start", "70a", "--end", "709",
        ],
        vec![
            "voice",
            "park",
            "orbit",
            "add",
            "x",
            "--start",
            "7000",
            "--end",
            "7009",
            "--music-tones",
            "loud",
        ],
        vec![
            "voice",
            "park",
            "orbit",
            "add",
            "x",
            "--start",
            "7000",
            "--end",
            "7009",
            "--fallback",
            "nobody",
        ],
    ] {
        if server.cli(&bad).is_ok() {
            return Err(Error(format!("accepted: {bad:?}")));
        }
    }
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "voice",
            "park",
            "orbit",
            "add",
            "main",
            "--start",
            "7000",
            "--end",
            "7009",
            "--timeout",
            "60",
            "--music-tones",
            "700:1000",
        ],
        vec![
            "voice",
            "park",
            "orbit",
            "add",
            "quick",
            "--start",
            "7100",
            "--end",
            "7109",
            "--timeout",
            "5",
            "--music-tones",
            "700:1000",
        ],
    ];
    for s in &steps {
        server.cli(s)?;
    }
    if server
        .cli(&[
            "voice", "park", "orbit", "add", "overlap", "--start", "7005", "--end", "7105",
        ])
        .is_ok()
    {
        return Err(Error("an overlapping orbit range was accepted".into()));
    }
    let listed = server.cli(&["voice", "park", "orbit", "list"])?;
    if !listed.contains("main\t7000-7009\ttimeout 60s\thang up\ttones 700:1000") {
        return Err(Error(format!("orbit list:\n{listed}")));
    }
    let rev = format!("rev={}", steps.len());
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        server
            .log_text()
            .lines()
            .any(|l| l.contains("applied voice configuration") && l.contains(&rev))
            .then_some(())
    })
    .ok_or_else(|| Error(format!("voice {rev} not applied\n{}", server.context())))?;

    let workdir = server.work_dir().join("baresip-park");
    let mut cmd = Command::new("python3");
    cmd.arg(tests_dir().join("clients/baresip/run_park.py"))
        .arg(server.sip_addr().ip().to_string())
        .arg(server.sip_port().to_string())
        .args(["--domain", server.domain()])
        .args(["--a", "alice:alicepw", "--a-ports", &ports()])
        .args(["--b", "bob:bobpw", "--b-ports", &ports()])
        .args(["--c", "carol:carolpw", "--c-ports", &ports()])
        .args([
            "--orbit",
            "7000",
            "--quick-orbit",
            "7100",
            "--timeout",
            "10",
        ])
        .arg("--workdir")
        .arg(&workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, Duration::from_secs(150))
        .map_err(|e| Error(format!("run_park.py: {e}\n{}", server.context())))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !stdout.trim_end().ends_with(" 0 failed") {
        return Err(Error(format!(
            "the phones' checks failed\n{}--- stderr ---\n{}{}",
            tail(&stdout, 300),
            tail(&stderr, 20),
            server.context()
        )));
    }
    // A heard the music on hold (about 2 s before C took the call, and the
    // second parked call's until the ring back), then C's 1000 Hz.
    let music = heard(&stdout, "a", 700.0)?;
    let from_c = heard(&stdout, "a", 1000.0)?;
    let from_a = heard(&stdout, "c", 440.0)?;
    let music_at_c = heard(&stdout, "c", 700.0)?;
    eprintln!(
        "park: A heard {music} ms of music on hold and {from_c} ms of C; C heard {from_a} ms of A"
    );
    if music < 1500 || from_c < 1500 || from_a < 1500 || music_at_c > 200 {
        return Err(Error(format!(
            "A heard {music} ms of music on hold and {from_c} ms of C; C heard {from_a} ms of A \
             and {music_at_c} ms of music\n{}",
            tail(&stdout, 60)
        )));
    }
    Ok(())
}
