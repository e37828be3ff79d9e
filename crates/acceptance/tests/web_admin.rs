//! The Control Panel over HTTPS (issue 17): one confab server with the web port on
//! HTTPS (its self-signed certificate), users and roles provisioned with the CLI.
//!
//! Always (a rustls client trusting the server's certificate): HSTS, `/metrics`
//! over HTTPS, plain HTTP refused on the HTTPS port, every page and API refused
//! without a session, a user without a role refused at sign-in, a CsHelpDesk
//! refused changes and the audit log, a change without the CSRF token refused,
//! a demoted administrator refused at once, and an administrator's changes shown
//! by `confab user list` and `confab audit list`.
//!
//! In headless Chromium (tests/web/control_panel.mjs, playwright-core), when
//! /usr/bin/chromium and tests/web/node_modules exist (`.ci/run` provides both):
//! the administrator signs in, adds a user and disables another through the
//! pages; on the voice page adds a normalization rule and a route (then
//! `confab voice test-number` and `confab voice route list` show them), on the
//! chat page adds and disables a room; keyboard-only use and phone width are
//! checked; screenshots go to target/web-screenshots/.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confab_acceptance::server::run_bounded;
use confab_acceptance::web::{
    browser_skip_reason, chromium_path, https, screenshot_dir, tls_config,
};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, ensure, repo_root};
use rustls::pki_types::ServerName;

const ADMIN: &str = "ann@example.com";
const ADMIN_PW: &str = "Ann-admin-pw1";
const HELPDESK: &str = "hal@example.com";
const PLAIN: &str = "bob@example.com";
const PW: &str = "User-pw-123";

/// The answer head to a WebSocket upgrade (subprotocol `sip`) at `/` over TLS.
fn wss_handshake(server: &ConfabServer) -> Result<String> {
    let addr = server.http_addr()?;
    let name = ServerName::try_from(addr.ip().to_string()).map_err(|e| Error(format!("{e}")))?;
    let conn = rustls::ClientConnection::new(tls_config(server)?, name)
        .map_err(|e| Error(format!("{e}")))?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| Error(format!("connect {addr}: {e}")))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| Error(format!("{e}")))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .map_err(|e| Error(format!("WSS upgrade: {e}")))?;
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") && raw.len() < 8192 {
        match s.read(&mut byte) {
            Ok(1) => raw.push(byte[0]),
            Ok(_) => break,
            Err(e) => return Err(Error(format!("WSS upgrade: reading: {e}"))),
        }
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// Signs in; returns the cookie header value and the CSRF token.
fn sign_in(server: &ConfabServer, address: &str, password: &str) -> Result<(String, String)> {
    let a = https(
        server,
        "POST",
        "/admin/api/signin",
        &[],
        Some(&format!(
            r#"{{"address":"{address}","password":"{password}"}}"#
        )),
    )?;
    ensure!(
        a.status == 200,
        "sign-in of {address}: {} {}",
        a.status,
        a.body
    );
    let cookie = a
        .header("set-cookie")
        .ok_or_else(|| Error::new("no Set-Cookie"))?;
    for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
        ensure!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();
    let v: serde_json::Value =
        serde_json::from_str(&a.body).map_err(|e| Error(format!("sign-in JSON: {e}")))?;
    let csrf = v["csrf"].as_str().unwrap_or_default().to_owned();
    ensure!(csrf.len() >= 32, "no CSRF token in {}", a.body);
    Ok((pair, csrf))
}

const PAGES: [&str; 6] = [
    "/admin/users",
    "/admin/topology",
    "/admin/status",
    "/admin/audit",
    "/admin/voice",
    "/admin/chat",
];
const READ_APIS: [&str; 10] = [
    "/admin/api/voice",
    "/admin/api/voice/test?user=bob@example.com&dialed=1234",
    "/admin/api/chat",
    "/admin/api/session",
    "/admin/api/users",
    "/admin/api/contacts?address=bob@example.com",
    "/admin/api/topology",
    "/admin/api/status",
    "/admin/api/audit",
    "/admin/api/no-such-thing",
];
const CHANGE_APIS: [&str; 8] = [
    "/admin/api/voice",
    "/admin/api/voice/user",
    "/admin/api/chat",
    "/admin/api/users",
    "/admin/api/users/disable",
    "/admin/api/users/enable",
    "/admin/api/users/password",
    "/admin/api/signout",
];

fn user_line<'a>(list: &'a str, address: &str) -> Option<&'a str> {
    list.lines()
        .find(|l| l.split_whitespace().next() == Some(address))
}

/// The ENABLED column (`yes`/`no`) of `address` in `confab user list`'s table
/// (columns are aligned under their headings).
fn enabled<'a>(list: &'a str, address: &str) -> Option<&'a str> {
    let col = list.lines().next()?.find("ENABLED")?;
    user_line(list, address)?
        .get(col..)?
        .split_whitespace()
        .next()
}

#[test]
fn control_panel_over_https() -> Result<()> {
    let t0 = Instant::now();
    let server = ConfabServer::start(
        ServerOptions::new()
            .https()
            .user(ADMIN, ADMIN_PW)
            .user(HELPDESK, PW)
            .user(PLAIN, PW)
            .user("carol@example.com", PW)
            .user("frank@example.com", PW),
    )?;
    if server.skip_if_external("control_panel_over_https") {
        return Ok(());
    }
    server.cli(&["user", "set", ADMIN, "--role", "CsAdministrator"])?;
    server.cli(&["user", "set", HELPDESK, "--role", "CsHelpDesk"])?;
    let r = server.with_log(check_https_and_refusals(&server));
    r?;
    let r = server.with_log(check_admin_changes(&server));
    r?;
    let r = server.with_log(browser(&server));
    r?;
    eprintln!("control_panel_over_https took {:?}", t0.elapsed());
    Ok(())
}

fn check_https_and_refusals(server: &ConfabServer) -> Result<()> {
    // HTTPS with HSTS; /metrics is served over it.
    let m = https(server, "GET", "/metrics", &[], None)?;
    ensure!(
        m.status == 200 && m.body.contains("confab_registrations"),
        "/metrics: {}",
        m.status
    );
    let hsts = m.header("strict-transport-security").unwrap_or("");
    ensure!(hsts.starts_with("max-age="), "HSTS: {hsts:?}");
    // SIP over secure WebSocket on the same port.
    let head = wss_handshake(server)?;
    let lower = head.to_ascii_lowercase();
    ensure!(
        head.starts_with("HTTP/1.1 101") && lower.contains("sec-websocket-protocol: sip"),
        "WSS upgrade answer: {head:?}"
    );
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let plain = confab_acceptance::server::http_get(
        server.http_addr()?,
        "/metrics",
        Duration::from_secs(3),
    );
    ensure!(
        plain.is_err(),
        "plain HTTP was answered on the HTTPS port: {plain:?}"
    );

    // The sign-in page and static files are public; nothing else is.
    let s = https(server, "GET", "/admin/signin", &[], None)?;
    ensure!(
        s.status == 200 && s.body.contains("<form id=\"signin\""),
        "sign-in page: {}",
        s.status
    );
    ensure!(
        s.header("content-security-policy")
            .is_some_and(|c| c.contains("script-src 'self'")),
        "CSP on the sign-in page"
    );
    let js = https(server, "GET", "/admin/static/app.js", &[], None)?;
    ensure!(js.status == 200, "static file: {}", js.status);
    for p in PAGES {
        let a = https(server, "GET", p, &[], None)?;
        ensure!(
            a.status == 303
                && a.header("location") == Some("/admin/signin")
                && !a.body.contains("<table"),
            "unauthenticated GET {p}: {} {:?}",
            a.status,
            a.header("location")
        );
    }
    for p in READ_APIS {
        let a = https(server, "GET", p, &[], None)?;
        ensure!(
            a.status == 401,
            "unauthenticated GET {p}: {} {}",
            a.status,
            a.body
        );
    }
    for p in CHANGE_APIS {
        let a = https(
            server,
            "POST",
            p,
            &[],
            Some(r#"{"address":"carol@example.com","password":"x"}"#),
        )?;
        ensure!(
            a.status == 401,
            "unauthenticated POST {p}: {} {}",
            a.status,
            a.body
        );
    }
    let forged = https(
        server,
        "GET",
        "/admin/api/users",
        &[("Cookie", "confab_cp=0123456789abcdef0123456789abcdef")],
        None,
    )?;
    ensure!(
        forged.status == 401,
        "made-up session cookie: {}",
        forged.status
    );

    // Wrong password, and a user without a role.
    let bad = https(
        server,
        "POST",
        "/admin/api/signin",
        &[],
        Some(&format!(r#"{{"address":"{ADMIN}","password":"wrong"}}"#)),
    )?;
    ensure!(
        bad.status == 401 && bad.header("set-cookie").is_none(),
        "wrong password: {}",
        bad.status
    );
    let plain_user = https(
        server,
        "POST",
        "/admin/api/signin",
        &[],
        Some(&format!(r#"{{"address":"{PLAIN}","password":"{PW}"}}"#)),
    )?;
    ensure!(
        plain_user.status == 403
            && plain_user.header("set-cookie").is_none()
            && plain_user.body.contains("no Control Panel role"),
        "a user without a role signing in: {} {}",
        plain_user.status,
        plain_user.body
    );

    // A help-desk session reads but does not change, and has no audit log.
    let (cookie, csrf) = sign_in(server, HELPDESK, PW)?;
    let auth = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let users = https(server, "GET", "/admin/api/users?q=carol", &auth, None)?;
    ensure!(
        users.status == 200 && users.body.contains("carol@example.com"),
        "help desk lists users: {}",
        users.status
    );
    let change = https(
        server,
        "POST",
        "/admin/api/users/disable",
        &auth,
        Some(r#"{"address":"carol@example.com"}"#),
    )?;
    ensure!(
        change.status == 403,
        "help desk disabling a user: {} {}",
        change.status,
        change.body
    );
    // It reads the voice and chat settings but changes neither.
    for p in ["/admin/api/voice", "/admin/api/chat"] {
        let a = https(server, "GET", p, &auth, None)?;
        ensure!(
            a.status == 200,
            "help desk reading {p}: {} {}",
            a.status,
            a.body
        );
    }
    for (p, body) in [
        (
            "/admin/api/voice",
            r#"{"args":["usage","add","helpdesk-usage"]}"#,
        ),
        (
            "/admin/api/voice/user",
            r#"{"address":"carol@example.com","line_uri":"tel:+14255550111"}"#,
        ),
        (
            "/admin/api/chat",
            r#"{"args":["policy","set","--global","--enable"]}"#,
        ),
    ] {
        let a = https(server, "POST", p, &auth, Some(body))?;
        ensure!(
            a.status == 403 && a.body.contains("CsHelpDesk may not"),
            "help desk POST {p}: {} {}",
            a.status,
            a.body
        );
    }
    let usages = server.cli(&["voice", "usage", "list"])?;
    ensure!(
        !usages.contains("helpdesk-usage"),
        "a help desk's voice change was made:\n{usages}"
    );
    let audit = https(server, "GET", "/admin/api/audit", &auth, None)?;
    ensure!(
        audit.status == 403,
        "help desk reading the audit log: {}",
        audit.status
    );
    let page = https(server, "GET", "/admin/audit", &auth, None)?;
    ensure!(
        page.status == 403,
        "help desk opening the audit page: {}",
        page.status
    );

    // Taking the role away ends access at once, session or not.
    server.cli(&["user", "set", HELPDESK, "--no-role"])?;
    for p in PAGES {
        let a = https(server, "GET", p, &auth, None)?;
        ensure!(a.status == 403, "demoted user GET {p}: {}", a.status);
    }
    for p in READ_APIS {
        let a = https(server, "GET", p, &auth, None)?;
        ensure!(
            a.status == 403,
            "demoted user GET {p}: {} {}",
            a.status,
            a.body
        );
    }
    for p in CHANGE_APIS.into_iter().filter(|p| !p.ends_with("signout")) {
        let a = https(
            server,
            "POST",
            p,
            &auth,
            Some(r#"{"address":"carol@example.com","password":"x"}"#),
        )?;
        ensure!(
            a.status == 403,
            "demoted user POST {p}: {} {}",
            a.status,
            a.body
        );
    }
    let list = server.list_users()?;
    ensure!(
        enabled(&list, "carol@example.com") == Some("yes"),
        "carol must still be enabled:\n{list}"
    );
    Ok(())
}

fn check_admin_changes(server: &ConfabServer) -> Result<()> {
    let (cookie, csrf) = sign_in(server, ADMIN, ADMIN_PW)?;
    let with_cookie = [("Cookie", cookie.as_str())];
    let auth = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    // No CSRF token, or a wrong one: refused, nothing changes.
    let a = https(
        server,
        "POST",
        "/admin/api/users/disable",
        &with_cookie,
        Some(r#"{"address":"frank@example.com"}"#),
    )?;
    ensure!(
        a.status == 403 && a.body.contains("CSRF"),
        "no CSRF token: {} {}",
        a.status,
        a.body
    );
    let wrong = [("Cookie", cookie.as_str()), ("X-CSRF-Token", "0000")];
    let a = https(
        server,
        "POST",
        "/admin/api/users",
        &wrong,
        Some(r#"{"address":"erin@example.com","password":"pw"}"#),
    )?;
    ensure!(a.status == 403, "wrong CSRF token: {} {}", a.status, a.body);
    let list = server.list_users()?;
    ensure!(
        user_line(&list, "erin@example.com").is_none(),
        "erin added without a CSRF token:\n{list}"
    );
    ensure!(
        enabled(&list, "frank@example.com") == Some("yes"),
        "frank disabled without a CSRF token:\n{list}"
    );
    // With it: add erin, disable frank; bad input gets a 4xx with the reason.
    let a = https(
        server,
        "POST",
        "/admin/api/users",
        &auth,
        Some(r#"{"address":"erin@example.com","password":"Erin-pw-1","display_name":"Erin"}"#),
    )?;
    ensure!(a.status == 200, "adding erin: {} {}", a.status, a.body);
    let a = https(
        server,
        "POST",
        "/admin/api/users",
        &auth,
        Some(r#"{"address":"erin@example.com","password":"x"}"#),
    )?;
    ensure!(
        a.status == 409 && a.body.contains("already exists"),
        "adding erin twice: {} {}",
        a.status,
        a.body
    );
    let a = https(
        server,
        "POST",
        "/admin/api/users",
        &auth,
        Some(r#"{"address":"not an address","password":"x"}"#),
    )?;
    ensure!(a.status == 400, "a bad address: {} {}", a.status, a.body);
    let a = https(server, "POST", "/admin/api/users", &auth, Some("{not json"))?;
    ensure!(
        a.status == 400,
        "a body that is not JSON: {} {}",
        a.status,
        a.body
    );
    let a = https(
        server,
        "POST",
        "/admin/api/users/disable",
        &auth,
        Some(r#"{"address":"frank@example.com"}"#),
    )?;
    ensure!(a.status == 200, "disabling frank: {} {}", a.status, a.body);
    let a = https(
        server,
        "POST",
        "/admin/api/users/disable",
        &auth,
        Some(&format!(r#"{{"address":"{ADMIN}"}}"#)),
    )?;
    ensure!(
        a.status == 400,
        "disabling oneself: {} {}",
        a.status,
        a.body
    );

    let list = server.list_users()?;
    ensure!(
        user_line(&list, "erin@example.com").is_some_and(|l| l.contains("Erin"))
            && enabled(&list, "erin@example.com") == Some("yes"),
        "confab user list must show erin:\n{list}"
    );
    ensure!(
        enabled(&list, "frank@example.com") == Some("no"),
        "confab user list must show frank disabled:\n{list}"
    );
    let audit = server.cli(&["audit", "list", "--actor", ADMIN])?;
    for (action, target) in [
        ("user.add", "erin@example.com"),
        ("user.disable", "frank@example.com"),
    ] {
        ensure!(
            audit.lines().any(|l| l.contains(ADMIN)
                && l.contains("from 127.0.0.1")
                && l.contains(&format!("{action} {target}"))),
            "confab audit list must name {ADMIN} for {action} {target}:\n{audit}"
        );
    }
    let all = server.cli(&["audit", "list"])?;
    ensure!(
        all.lines()
            .any(|l| l.contains("cli:") && l.contains(&format!("user.set-role {HELPDESK}"))),
        "the CLI's role changes are audited too:\n{all}"
    );
    check_admin_voice_chat(server, &cookie, &csrf)?;
    // Sign-out ends the session.
    let a = https(server, "POST", "/admin/api/signout", &auth, Some("{}"))?;
    ensure!(a.status == 200, "sign-out: {}", a.status);
    let a = https(server, "GET", "/admin/api/session", &auth, None)?;
    ensure!(a.status == 401, "session after sign-out: {}", a.status);
    Ok(())
}

/// The voice and chat APIs: a change without the CSRF token is refused; the
/// CLI's checks and words answer bad input; a change is audited and the CLI
/// shows it.
fn check_admin_voice_chat(server: &ConfabServer, cookie: &str, csrf: &str) -> Result<()> {
    let auth = [("Cookie", cookie), ("X-CSRF-Token", csrf)];
    let post = |path: &str, body: &str| https(server, "POST", path, &auth, Some(body));
    let a = https(
        server,
        "POST",
        "/admin/api/voice",
        &[("Cookie", cookie)],
        Some(r#"{"args":["usage","add","no-csrf"]}"#),
    )?;
    ensure!(
        a.status == 403 && a.body.contains("CSRF"),
        "voice change without CSRF token: {} {}",
        a.status,
        a.body
    );
    for (body, want) in [
        (r#"{"args":["route","list"]}"#, "not a change"),
        (
            r#"{"args":["announcement","add","a","--audio-file","/etc/passwd"]}"#,
            "audio files",
        ),
        (r#"{"args":["route","add","r1"]}"#, "--pattern"),
        (
            r#"{"args":["route","add","r1","--pattern=\\+1.*","--usages=nosuch","--trunks=nosuch"]}"#,
            "nothing was changed",
        ),
        (r#"{"args":"usage add x"}"#, "args"),
    ] {
        let a = post("/admin/api/voice", body)?;
        ensure!(
            a.status == 400 && a.body.contains(want),
            "voice change {body}: {} {} (want {want:?})",
            a.status,
            a.body
        );
    }
    let a = post("/admin/api/voice", r#"{"args":["usage","add","local"]}"#)?;
    ensure!(
        a.status == 200 && a.body.contains("added PSTN usage local"),
        "adding a usage: {} {}",
        a.status,
        a.body
    );
    let a = post(
        "/admin/api/voice/user",
        r#"{"address":"bob@example.com","line_uri":"tel:+14255550100"}"#,
    )?;
    ensure!(
        a.status == 200 && a.body.contains("+14255550100"),
        "setting bob's line URI: {} {}",
        a.status,
        a.body
    );
    let a = post(
        "/admin/api/voice/user",
        r#"{"address":"bob@example.com","line_uri":"5550100"}"#,
    )?;
    ensure!(a.status == 400, "a bad line URI: {} {}", a.status, a.body);
    let a = post(
        "/admin/api/chat",
        r#"{"args":["category","add","General","--creators=nobody@example.com"]}"#,
    )?;
    ensure!(
        a.status == 400 && a.body.contains("unknown user nobody@example.com"),
        "a category naming an unknown user: {} {}",
        a.status,
        a.body
    );
    let a = post(
        "/admin/api/chat",
        &format!(r#"{{"args":["category","add","General","--creators={ADMIN}"]}}"#),
    )?;
    ensure!(
        a.status == 200 && a.body.contains("added category General"),
        "adding a category: {} {}",
        a.status,
        a.body
    );
    let a = post("/admin/api/chat", r#"{"args":["export","--out","x.json"]}"#)?;
    ensure!(a.status == 400, "chat export from the web: {}", a.status);
    let usages = server.cli(&["voice", "usage", "list"])?;
    ensure!(
        usages.lines().any(|l| l == "local") && !usages.contains("no-csrf"),
        "confab voice usage list:\n{usages}"
    );
    let cats = server.cli(&["chat", "category", "list"])?;
    ensure!(
        cats.contains("General"),
        "confab chat category list:\n{cats}"
    );
    let audit = server.cli(&["audit", "list", "--actor", ADMIN])?;
    for needle in [
        "voice.usage.add local",
        "user.set-voice bob@example.com",
        "chat.category.add General",
    ] {
        ensure!(
            audit.lines().any(|l| l.contains(needle)),
            "confab audit list must show {needle}:\n{audit}"
        );
    }
    Ok(())
}

fn browser(server: &ConfabServer) -> Result<()> {
    let web = repo_root().join("tests").join("web");
    let chromium = chromium_path();
    if let Some(why) = browser_skip_reason() {
        eprintln!("SKIPPED the browser part of control_panel_over_https: {why}");
        println!("SKIPPED: browser part: {why}");
        return Ok(());
    }
    let shots = screenshot_dir();
    // What the voice page builds on (made with the CLI).
    server.cli(&[
        "voice",
        "trunk",
        "add",
        "gw1",
        "--gateway",
        "127.0.0.1:5099",
    ])?;
    server.cli(&["voice", "dialplan", "add", "global"])?;
    server.cli(&["voice", "policy", "add", "global", "--usages", "local"])?;
    let mut cmd = Command::new("node");
    cmd.arg(web.join("control_panel.mjs"))
        .current_dir(&web)
        .env("CONFAB_URL", format!("https://{}", server.http_addr()?))
        .env("ADMIN", ADMIN)
        .env("ADMIN_PW", ADMIN_PW)
        .env("PLAIN_USER", PLAIN)
        .env("PLAIN_PW", PW)
        .env("ADD_USER", "dave@example.com")
        .env("ADD_PW", "Dave-pw-1")
        .env("DISABLE_USER", "carol@example.com")
        .env("VOICE_USER", PLAIN)
        .env("ROOM", "Lobby")
        .env("SHOT_DIR", &shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, Duration::from_secs(120))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- tests/web/control_panel.mjs ---\n{stdout}{stderr}");
    ensure!(
        out.status.success() && stdout.contains("RESULT: ok"),
        "the browser test failed ({}):\n{stdout}{stderr}",
        out.status
    );
    let list = server.list_users()?;
    ensure!(
        enabled(&list, "dave@example.com") == Some("yes"),
        "confab user list must show the user added in the browser:\n{list}"
    );
    ensure!(
        enabled(&list, "carol@example.com") == Some("no"),
        "confab user list must show the user disabled in the browser:\n{list}"
    );
    let audit = server.cli(&["audit", "list", "--actor", ADMIN])?;
    for needle in [
        "user.add dave@example.com",
        "user.disable carol@example.com",
    ] {
        ensure!(
            audit
                .lines()
                .any(|l| l.contains(ADMIN) && l.contains(needle)),
            "confab audit list must name {ADMIN} for {needle}:\n{audit}"
        );
    }
    // The voice page's changes are the CLI's.
    let test = server.cli(&["voice", "test-number", PLAIN, "1234"])?;
    for want in [
        "rule:        four-digit",
        "normalized:  +14255551234",
        "gw1 via route redmond",
    ] {
        ensure!(
            test.contains(want),
            "confab voice test-number lacks {want:?}:\n{test}"
        );
    }
    let routes = server.cli(&["voice", "route", "list"])?;
    ensure!(
        routes.contains("redmond") && !routes.contains("broken"),
        "confab voice route list:\n{routes}"
    );
    let rooms = server.cli(&["chat", "room", "show", "Lobby"])?;
    ensure!(
        rooms.contains("disabled:    yes") && rooms.contains(PLAIN),
        "confab chat room show Lobby:\n{rooms}"
    );
    let policy = server.cli(&["chat", "policy", "show"])?;
    ensure!(
        policy.contains("global: enabled"),
        "confab chat policy show:\n{policy}"
    );
    let audit = server.cli(&["audit", "list", "--actor", ADMIN])?;
    for needle in [
        "voice.rule.add global",
        "voice.route.add redmond",
        "chat.room.add Lobby",
        "chat.room.disable Lobby",
    ] {
        ensure!(
            audit.lines().any(|l| l.contains(needle)),
            "confab audit list must show {needle}:\n{audit}"
        );
    }
    for f in [
        "signin.png",
        "users.png",
        "status.png",
        "voice.png",
        "chat.png",
        "voice-phone.png",
    ] {
        let p = shots.join(f);
        ensure!(
            std::fs::metadata(&p).is_ok_and(|m| m.len() > 1000),
            "screenshot {} missing",
            p.display()
        );
    }
    eprintln!("screenshots in {}", shots.display());
    Ok(())
}
