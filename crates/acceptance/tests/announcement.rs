//! The Announcement service with a real baresip as the phone, recording what it
//! hears (baresip's sndfile module): a call to an unassigned number hears the
//! configured WAV file (a 1000 Hz test tone: frequency checked with Goertzel's
//! algorithm, duration from the recording's samples), then confab hangs up.
//! Configured with `confab voice announcement|unassigned ...` while the server
//! runs (bad input refused). A second number's announcement transfers the
//! caller (REFER) to bob: the caller's phone calls bob, whose phone answers
//! (each baresip has two RTP port pairs: the transfer's call needs its own).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, free_port, free_port_pair, run_bounded, tail,
    tests_dir, tools_required, wait_for,
};
use confab_media::goertzel::tone_power_ratio;

/// The WAV the first announcement plays: `ms` of `freq` at 16 kHz (resampled by
/// the server to 8 kHz).
fn write_tone(path: &Path, freq: f32, ms: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let err = |e: hound::Error| Error(format!("writing {}: {e}", path.display()));
    let mut w = hound::WavWriter::create(path, spec).map_err(err)?;
    for i in 0..(16 * ms) {
        let v = (2.0 * std::f32::consts::PI * freq * i as f32 / 16000.0).sin() * 12000.0;
        w.write_sample(v as i16).map_err(err)?;
    }
    w.finalize().map_err(err)
}

/// How long `freq` is heard in a recording: 20 ms frames with some energy, most
/// of it at `freq`. Returns (milliseconds of tone, milliseconds recorded).
fn tone_ms(path: &Path, freq: f32) -> Result<(u32, u32)> {
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
    let tone_frames = mono
        .chunks(frame)
        .filter(|c| c.len() == frame)
        .filter(|c| {
            let rms =
                (c.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / c.len() as f64).sqrt();
            rms > 500.0 && tone_power_ratio(c, spec.sample_rate, freq) > 0.6
        })
        .count();
    let total_ms = (mono.len() as u64 * 1000 / u64::from(spec.sample_rate.max(1))) as u32;
    Ok((tone_frames as u32 * 20, total_ms))
}

struct Run {
    stdout: String,
    recordings: Vec<PathBuf>,
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

fn run_script(server: &ConfabServer, name: &str, dial: &str, callee: bool) -> Result<Run> {
    let workdir = server.work_dir().join(format!("baresip-{name}"));
    let mut cmd = Command::new("python3");
    cmd.arg(tests_dir().join("clients/baresip/run_announcement.py"))
        .arg(server.sip_addr().ip().to_string())
        .arg(server.sip_port().to_string())
        .args(["--domain", server.domain()])
        .args(["--user", "alice:alicepw", "--dial", dial])
        .args(["--ports", &ports()])
        .args(["--timeout", "10"])
        .arg("--workdir")
        .arg(&workdir);
    if callee {
        cmd.args(["--callee", "bob:bobpw", "--callee-ports", &ports()]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, Duration::from_secs(120))
        .map_err(|e| Error(format!("run_announcement.py: {e}\n{}", server.context())))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !stdout.trim_end().ends_with(" 0 failed") {
        return Err(Error(format!(
            "{name}: the phone's checks failed\n{}--- stderr ---\n{}{}",
            tail(&stdout, 150),
            tail(&stderr, 20),
            server.context()
        )));
    }
    let recordings = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RECORDING "))
        .map(PathBuf::from)
        .collect();
    Ok(Run { stdout, recordings })
}

/// The recording of what the phone heard (sndfile's decoder side).
fn heard(run: &Run) -> Result<&PathBuf> {
    run.recordings
        .iter()
        .find(|p| p.to_string_lossy().contains("dec"))
        .ok_or_else(|| {
            Error(format!(
                "no recording of the received audio:\n{}",
                run.stdout
            ))
        })
}

#[test]
fn announcement_plays_then_hangs_up() -> Result<()> {
    if !tools_required(&["baresip", "python3"]) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw"),
    )?;
    let wav = server.work_dir().join("gone.wav");
    write_tone(&wav, 1000.0, 1200)?;
    let wav = wav.to_string_lossy().into_owned();
    // Bad input changes nothing.
    for bad in [
        vec!["voice", "announcement", "add", "x", "--tones", "1000"],
        vec![
            "voice",
            "announcement",
            "add",
            "x",
            "--audio-file",
            "/nonexistent.wav",
        ],
        vec![
            "voice",
            "unassigned",
            "add",
            "r",
            "--start",
            "+1",
            "--end",
            "+2",
            "--announcement",
            "x",
        ],
    ] {
        if server.cli(&bad).is_ok() {
            return Err(Error(format!("accepted: {bad:?}")));
        }
    }
    let steps: Vec<Vec<&str>> = vec![
        vec!["voice", "announcement", "add", "gone", "--audio-file", &wav],
        vec![
            "voice",
            "announcement",
            "add",
            "moved",
            "--tones",
            "600:800",
            "--target",
            "sip:bob@example.com",
        ],
        vec![
            "voice",
            "unassigned",
            "add",
            "old",
            "--start",
            "+14255550100",
            "--end",
            "+14255550199",
            "--announcement",
            "gone",
        ],
        vec![
            "voice",
            "unassigned",
            "add",
            "sales",
            "--start",
            "+14255550200",
            "--end",
            "+14255550200",
            "--announcement",
            "moved",
        ],
    ];
    for s in &steps {
        server.cli(s)?;
    }
    let listed = server.cli(&["voice", "unassigned", "list"])?;
    if !listed.contains("old\t+14255550100-+14255550199\tgone") {
        return Err(Error(format!("unassigned list:\n{listed}")));
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

    // An unassigned number: the WAV, then confab hangs up.
    let run = run_script(&server, "hangup", "sip:+14255550150@example.com", false)?;
    let rec = heard(&run)?;
    let (tone, total) = tone_ms(rec, 1000.0)?;
    if !(1000..=1400).contains(&tone) {
        return Err(Error(format!(
            "expected about 1200 ms of 1000 Hz, heard {tone} ms in {total} ms ({})\n{}",
            rec.display(),
            run.stdout
        )));
    }
    let (other, _) = tone_ms(rec, 600.0)?;
    if other > 100 {
        return Err(Error(format!(
            "heard {other} ms of 600 Hz in the first call"
        )));
    }

    // A number whose announcement transfers: 800 ms of 600 Hz, then REFER to bob,
    // whom the caller's phone calls (the script checks bob answers).
    let run = run_script(&server, "transfer", "sip:+14255550200@example.com", true)?;
    let rec = heard(&run)?;
    let (tone, total) = tone_ms(rec, 600.0)?;
    if !(600..=1000).contains(&tone) {
        return Err(Error(format!(
            "expected about 800 ms of 600 Hz before the transfer, heard {tone} ms in {total} ms\n{}",
            run.stdout
        )));
    }
    if !run.stdout.contains("PASS transfer target answers") {
        return Err(Error(format!("transfer not followed:\n{}", run.stdout)));
    }

    Ok(())
}
