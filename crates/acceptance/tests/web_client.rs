//! The browser client for users at `/client/` (issue 17, Lync Web App's analog):
//! one confab server with the web port on HTTPS, users and contact lists
//! provisioned with the CLI, then in headless Chromium (tests/web/client.mjs,
//! playwright-core, fake camera and microphone):
//!
//! * the sign-in page and the client's files answer without a session (with a
//!   Content-Security-Policy and HSTS); a wrong password is refused in words;
//! * alice and bob sign in over WSS (keyboard alone), see each other online,
//!   alice's away state and note reach bob, IMs go both ways with an in-page
//!   notice, alice video-calls bob, bob answers, video plays on both pages
//!   (ICE and DTLS-SRTP by the browser, signalling relayed by confab), alice
//!   hangs up and both pages say so; bob signs out and alice sees him offline;
//! * with baresip installed, carol's baresip (tests/clients/baresip/web_peer.py,
//!   running at the same time) and alice see each other online, exchange IMs
//!   both ways, and carol's baresip sees alice busy when she sets it;
//! * with pidgin-sipe (bitlbee) installed, dave's SIPE (a Lync client,
//!   tests/clients/sipe/run_sipe.py, at the same time) finds alice in his
//!   server-side contact list and sees her Busy.
//!
//! Then, with Debian's firefox-esr installed, alice and bob do the same sign-in
//! and IMs in headless Firefox (tests/web/client_firefox.mjs, puppeteer-core over
//! WebDriver BiDi).
//!
//! Screenshots go to target/web-screenshots/ (client-*.png, referenced from
//! docs/web-client.md). Skipped (with a SKIPPED line) without /usr/bin/chromium or
//! tests/web/node_modules (`.ci/run` provides both).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confab_acceptance::server::run_bounded;
use confab_acceptance::sipe::{SIPE_TOOLS, SipeCmd, SipeOutput};
use confab_acceptance::{
    ConfabServer, Result, ServerOptions, ensure, repo_root, tail, tests_dir, tools_required,
    unique_token,
};

const ALICE: &str = "alice@example.com";
const ALICE_PW: &str = "Alice-pw-123";
const BOB: &str = "bob@example.com";
const BOB_PW: &str = "Bob-pw-1234";
const CAROL: &str = "carol@example.com";
const CAROL_PW: &str = "carolpw";
const DAVE: &str = "dave@example.com";
const DAVE_PW: &str = "Dave-pw-123";

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("web-screenshots")
}

/// Why the browser cannot run here, if it cannot.
fn browser_missing(web: &Path, chromium: &str) -> Option<String> {
    if !Path::new(chromium).exists() {
        Some(format!(
            "{chromium} is not installed (apt-get install chromium)"
        ))
    } else if !web.join("node_modules").join("playwright-core").exists() {
        Some("tests/web/node_modules is missing (run `npm ci` in tests/web)".to_owned())
    } else if Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        Some("node is not installed".to_owned())
    } else {
        None
    }
}

#[test]
fn browser_client_over_wss() -> Result<()> {
    let t0 = Instant::now();
    let web = repo_root().join("tests").join("web");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if let Some(why) = browser_missing(&web, &chromium) {
        eprintln!("SKIPPED browser_client_over_wss: {why}");
        println!("SKIPPED: {why}");
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .https()
            .user(ALICE, ALICE_PW)
            .user(BOB, BOB_PW)
            .user(CAROL, CAROL_PW)
            .user(DAVE, DAVE_PW),
    )?;
    if server.skip_if_external("browser_client_over_wss") {
        return Ok(());
    }
    server.cli(&["contact", "add", ALICE, BOB, "--name", "Bob Builder"])?;
    server.cli(&["contact", "add", ALICE, CAROL, "--group", "Desk phones"])?;
    server.cli(&["contact", "add", BOB, ALICE])?;
    server.cli(&["contact", "add", DAVE, ALICE])?;
    let r = server.with_log(run(&server, &web, &chromium));
    r?;
    eprintln!("browser_client_over_wss took {:?}", t0.elapsed());
    Ok(())
}

fn run(server: &ConfabServer, web: &Path, chromium: &str) -> Result<()> {
    let shots = screenshot_dir();
    let token = unique_token();
    let carol_text = format!("hello from baresip {token}");
    let alice_text = format!("hello from the browser {token}");
    let done = server.work_dir().join("baresip-done");
    let sipe_done = server.work_dir().join("sipe-done");
    let mut peer_files = Vec::new();

    // carol's baresip, when installed, runs while the browser test does.
    let peer = if tools_required(&["baresip", "python3"]) {
        let mut cmd = Command::new("python3");
        cmd.arg(tests_dir().join("clients/baresip/web_peer.py"))
            .arg(server.sip_addr().ip().to_string())
            .arg(server.sip_port().to_string())
            .args(["--user", &format!("carol:{CAROL_PW}")])
            .args(["--domain", server.domain(), "--peer", ALICE])
            .args(["--send", &carol_text, "--expect", &alice_text])
            .arg("--done")
            .arg(&done)
            .arg("--workdir")
            .arg(server.work_dir().join("baresip"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        peer_files.push(done.clone());
        Some(std::thread::spawn(move || {
            run_bounded(cmd, Duration::from_secs(150))
        }))
    } else {
        None
    };

    // dave's pidgin-sipe, when installed, watches alice at the same time.
    let sipe = if tools_required(SIPE_TOOLS) {
        let run = SipeCmd::new(
            server.work_dir(),
            "sipe",
            server.sip_port(),
            "tcp",
            (DAVE, DAVE_PW),
        )
        .args(&["--contacts", "server", "--skip-away"])
        .args(&["--expect-buddy", &format!("sip:{ALICE}")])
        .args(&["--expect-buddy-state", &format!("{ALICE}=Busy")])
        .args(&["--presence-wait", "90"])
        .start()?;
        let flag = sipe_done.clone();
        peer_files.push(sipe_done.clone());
        Some(std::thread::spawn(move || {
            let out = run.finish(Duration::from_secs(150));
            let _ = std::fs::write(&flag, "done\n");
            out
        }))
    } else {
        None
    };

    let mut cmd = Command::new("node");
    cmd.arg(web.join("client.mjs"))
        .current_dir(web)
        .env("CONFAB_URL", format!("https://{}", server.http_addr()?))
        .env("ALICE", ALICE)
        .env("ALICE_PW", ALICE_PW)
        .env("BOB", BOB)
        .env("BOB_PW", BOB_PW)
        .env("SHOT_DIR", &shots)
        .env("CHROMIUM", chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if peer.is_some() {
        cmd.env("CAROL", CAROL)
            .env("CAROL_TEXT", &carol_text)
            .env("ALICE_TEXT", &alice_text);
    }
    if !peer_files.is_empty() {
        let files: Vec<String> = peer_files.iter().map(|p| p.display().to_string()).collect();
        cmd.env("PEER_DONE", files.join(","));
    }
    let out = run_bounded(cmd, Duration::from_secs(150))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- tests/web/client.mjs ---\n{stdout}{stderr}");
    let peer_out = match peer {
        Some(h) => {
            let o = h
                .join()
                .map_err(|_| confab_acceptance::Error::new("the baresip thread panicked"))??;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            eprintln!("--- tests/clients/baresip/web_peer.py ---\n{text}");
            Some((o.status.success(), text))
        }
        None => {
            eprintln!("SKIPPED the baresip part: baresip or python3 missing");
            None
        }
    };
    let sipe_out: Option<SipeOutput> = match sipe {
        Some(h) => Some(
            h.join()
                .map_err(|_| confab_acceptance::Error::new("the SIPE thread panicked"))??,
        ),
        None => {
            eprintln!("SKIPPED the pidgin-sipe part: bitlbee, python3 or gcc missing");
            None
        }
    };
    ensure!(
        out.status.success() && stdout.contains("RESULT: ok"),
        "the browser test failed ({}):\n{stdout}{stderr}",
        out.status
    );
    if let Some((ok, text)) = peer_out {
        ensure!(
            ok && text.contains("5 passed, 0 failed"),
            "the baresip side failed:\n{text}"
        );
    }
    if let Some(o) = sipe_out {
        eprintln!("--- run_sipe.py (dave) ---\n{}", tail(&o.text, 6));
        o.require(
            &[
                "sign-in dave@example.com",
                "dave@example.com sees sip:alice@example.com Busy",
            ],
            server,
        )?;
    }
    for f in [
        "client-signin.png",
        "client-contacts.png",
        "client-call.png",
    ] {
        let p = shots.join(f);
        ensure!(
            std::fs::metadata(&p).is_ok_and(|m| m.len() > 1000),
            "screenshot {} missing",
            p.display()
        );
    }
    firefox(server, web, &shots)?;
    eprintln!("screenshots in {}", shots.display());
    Ok(())
}

/// The same client in headless Firefox (Debian's firefox-esr, puppeteer-core over
/// WebDriver BiDi, tests/web/client_firefox.mjs): alice and bob sign in, see each
/// other online and exchange IMs both ways. Skipped without firefox-esr.
fn firefox(server: &ConfabServer, web: &Path, shots: &Path) -> Result<()> {
    let firefox = std::env::var("FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox-esr".into());
    if !Path::new(&firefox).exists() {
        eprintln!(
            "SKIPPED the Firefox part: {firefox} is not installed (apt-get install firefox-esr)"
        );
        println!("SKIPPED: Firefox part: no {firefox}");
        return Ok(());
    }
    if !web.join("node_modules").join("puppeteer-core").exists() {
        eprintln!(
            "SKIPPED the Firefox part: tests/web/node_modules/puppeteer-core is missing (run `npm ci` in tests/web)"
        );
        println!("SKIPPED: Firefox part: no puppeteer-core");
        return Ok(());
    }
    let t0 = Instant::now();
    let mut cmd = Command::new("node");
    cmd.arg(web.join("client_firefox.mjs"))
        .current_dir(web)
        .env("CONFAB_URL", format!("https://{}", server.http_addr()?))
        .env("ALICE", ALICE)
        .env("ALICE_PW", ALICE_PW)
        .env("BOB", BOB)
        .env("BOB_PW", BOB_PW)
        .env("SHOT_DIR", shots)
        .env("FIREFOX", &firefox)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, Duration::from_secs(120))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "--- tests/web/client_firefox.mjs ({:?}) ---\n{stdout}{stderr}",
        t0.elapsed()
    );
    ensure!(
        out.status.success() && stdout.contains("RESULT: ok"),
        "the Firefox test failed ({}):\n{stdout}{stderr}",
        out.status
    );
    let p = shots.join("client-firefox.png");
    ensure!(
        std::fs::metadata(&p).is_ok_and(|m| m.len() > 1000),
        "screenshot {} missing",
        p.display()
    );
    Ok(())
}
