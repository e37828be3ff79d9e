//! Persistent Chat compliance (issue 11), with the protocol-level XCCOS client
//! (crates/acceptance/src/xccos.rs) and the real CLI:
//! * with `[chat] compliance = true`, a scripted session (join, posts, backfill, a
//!   file uploaded and downloaded through the web service, an administrator's
//!   replacement through `confab chat message replace`, leave)
//!   produces an export (`confab chat compliance export --format xml`) that
//!   validates against crates/compliance/schema/compliance.xsd (xmllint) and holds
//!   every event with its sender and time, the replaced post's original text
//!   included; the CSV export holds the same posts;
//! * `kill -9` of the server right after a post's acknowledgement loses nothing:
//!   after a restart the export has the post;
//! * the scheduled export (RunInterval) writes its file into the output directory;
//! * `/metrics` has the chat and compliance gauges.
//!
//! Runs on SQLite, and on PostgreSQL (chat store and compliance database) when
//! `CONFAB_TEST_POSTGRES_URL` is set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use confab_acceptance::server::run_bounded;
use confab_acceptance::web::{https, https_bytes};
use confab_acceptance::xccos::{Element, XccosClient, elements};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, ensure, unique_token};
use serde_json::Value;

const DOMAIN: &str = "example.com";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Deployment {
    server: ConfabServer,
    config: PathBuf,
    work: tempfile::TempDir,
}

impl Deployment {
    fn cli(&self, args: &[&str]) -> Result<String> {
        let cfg = self.config.to_string_lossy().into_owned();
        let mut all = vec!["--config", cfg.as_str()];
        all.extend_from_slice(args);
        self.server.cli(&all)
    }

    fn chat(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["chat"];
        all.extend_from_slice(args);
        self.cli(&all)
    }

    /// A discovered client; retried for up to 10 s while the server has not yet
    /// loaded the user (added by the CLI beside it) or the policy that lets them in.
    fn client(&self, user: &str) -> Result<XccosClient> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempt =
                XccosClient::connect(self.server.sip_addr(), &format!("{user}@{DOMAIN}"), "pw")
                    .and_then(|mut c| {
                        let st = c.discover()?;
                        ensure!(
                            st == 200,
                            "{user}: lookup INVITE answered {st}\n{}",
                            c.transcript()
                        );
                        Ok(c)
                    });
            match attempt {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Runs `chat compliance export` into a fresh directory; returns the files.
    fn export(&self, extra: &[&str]) -> Result<Vec<PathBuf>> {
        let out = self.work.path().join(format!("export-{}", unique_token()));
        let o = out.to_string_lossy().into_owned();
        let mut args = vec!["compliance", "export", "--out", o.as_str()];
        args.extend_from_slice(extra);
        self.chat(&args)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
            .map_err(|e| Error(format!("reading {}: {e}", out.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        Ok(files)
    }
}

fn deploy(label: &str, pg: Option<(&str, &str)>) -> Result<Deployment> {
    let work = confab_acceptance::temp_dir(&format!("compliance-{label}"))?;
    let config = work.path().join("confab.toml");
    let sched = work.path().join("scheduled");
    let mut toml = String::new();
    if let Some((main, _)) = pg {
        toml.push_str(&format!("database = \"{main}\"\n"));
    }
    toml.push_str(&format!(
        "[chat]\ncompliance = true\ncompliance_run_interval = 60\ncompliance_output = \"{}\"\n",
        sched.display()
    ));
    if let Some((_, comp)) = pg {
        toml.push_str(&format!("compliance_database = \"{comp}\"\n"));
    }
    std::fs::write(&config, toml).map_err(|e| Error(format!("writing the config: {e}")))?;
    let opts = ServerOptions::new()
        .domain(DOMAIN)
        .https()
        .arg("--config")
        .arg(&config.to_string_lossy());
    let server = ConfabServer::start(opts)?;
    let d = Deployment {
        server,
        config,
        work,
    };
    for u in ["alice", "bob"] {
        d.cli(&["user", "add", &format!("{u}@{DOMAIN}"), "--password", "pw"])?;
    }
    Ok(d)
}

fn validate(xml: &Path) -> Result<()> {
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../compliance/schema/compliance.xsd"
    );
    let mut c = Command::new("xmllint");
    c.args(["--noout", "--schema", schema])
        .arg(xml)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(c, Duration::from_secs(30))
        .map_err(|e| Error(format!("xmllint (Debian package libxml2-utils): {e}")))?;
    ensure!(
        out.status.success(),
        "{} does not validate against compliance.xsd: {}",
        xml.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `(Message element, its Sender, its DateTimeUTC)` of every `Message` in `xml`.
fn messages(xml: &str) -> Vec<(Element, Element, Element)> {
    let mut out = Vec::new();
    let msgs = elements(xml, "Message");
    for m in msgs {
        let rest = &xml[m.end..];
        let s = elements(rest, "Sender").into_iter().next();
        let t = elements(rest, "DateTimeUTC").into_iter().next();
        if let (Some(s), Some(t)) = (s, t) {
            out.push((m, s, t));
        }
    }
    out
}

fn find<'a>(
    msgs: &'a [(Element, Element, Element)],
    kind: &str,
    user: &str,
    pred: impl Fn(&Element) -> bool,
) -> Option<&'a (Element, Element, Element)> {
    msgs.iter().find(|(m, s, _)| {
        m.attr("type") == Some(kind)
            && s.attr("uri") == Some(&format!("sip:{user}@{DOMAIN}"))
            && pred(m)
    })
}

fn scenario(d: &mut Deployment) -> Result<()> {
    let start = now_ms();
    d.chat(&[
        "category",
        "add",
        "Gen",
        "--allowed-members",
        "@example.com",
        "--file-upload",
        "true",
    ])?;
    d.chat(&[
        "room",
        "add",
        "Open",
        "--category",
        "Gen",
        "--privacy",
        "open",
    ])?;
    // Last: a client let in has a directory with the room (the service reloads it
    // within ~200 ms of a change).
    d.chat(&["policy", "set", "--global", "--enable"])?;
    let v: Value = serde_json::from_str(d.chat(&["room", "show", "Open", "--json"])?.trim())
        .map_err(|e| Error(format!("room show --json: {e}")))?;
    let open = v["uri"].as_str().unwrap_or("").to_string();

    let mut alice = d.client("alice")?;
    let mut bob = d.client("bob")?;
    alice.join_ok(&open)?;
    bob.join_ok(&open)?;
    let t1 = format!("secret plan <b>&amp; ünï {}", unique_token());
    let r = alice.post(&open, &t1)?;
    ensure!(r.status() == Some(200), "alice's post: {}", r.first_line);
    bob.wait_post(&t1, Duration::from_secs(5))?;
    let t2 = format!("bob says {}", unique_token());
    let r = bob.post(&open, &t2)?;
    ensure!(r.status() == Some(200), "bob's post: {}", r.first_line);
    alice.wait_post(&t2, Duration::from_secs(5))?;
    let back = bob.backfill(&open, 25)?;
    ensure!(
        back.iter().any(|p| p.text == t1),
        "backfill lacks {t1:?}: {back:?}"
    );

    // A file posted by alice through the web service, downloaded by bob.
    let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let link = upload(&d.server, "alice", "Open", "minutes.txt", &bytes)?;
    let (bob_cookie, _) = web_sign_in(&d.server, "bob")?;
    let got = https_bytes(
        &d.server,
        "GET",
        &link,
        &[("Cookie", bob_cookie.as_str())],
        &[],
    )?;
    ensure!(
        got.status == 200 && got.body == bytes,
        "bob's download of {link}: {} ({} bytes)",
        got.status,
        got.body.len()
    );

    // An administrator replaces alice's post.
    let list: Value = serde_json::from_str(d.chat(&["message", "list", "Open", "--json"])?.trim())
        .map_err(|e| Error(format!("message list --json: {e}")))?;
    let id = list
        .as_array()
        .and_then(|a| a.iter().find(|p| p["original"] == t1.as_str()))
        .and_then(|p| p["id"].as_i64())
        .ok_or_else(|| Error(format!("post {t1:?} not in `message list`: {list}")))?;
    d.chat(&[
        "message",
        "replace",
        &id.to_string(),
        "--text",
        "[removed by admin]",
    ])?;

    bob.part(&open)?;
    bob.bye()?;

    // A post acknowledged, then kill -9 at once: nothing lost.
    let t3 = format!("last words {}", unique_token());
    let r = alice.post(&open, &t3)?;
    ensure!(
        r.status() == Some(200),
        "alice's last post: {}",
        r.first_line
    );
    d.server.kill9()?;
    d.server.start_again()?;

    let files = d.export(&["--format", "xml"])?;
    ensure!(files.len() == 1, "want one export file, got {files:?}");
    validate(&files[0])?;
    let xml = std::fs::read_to_string(&files[0]).map_err(|e| Error(e.to_string()))?;
    let msgs = messages(&xml);
    let end = now_ms();
    for (m, s, t) in &msgs {
        let at: i64 = t
            .attr("since1970")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        ensure!(
            (start - 1000..=end).contains(&at),
            "event {:?} of {:?} at {at}, outside the test's time {start}..{end}",
            m.attr("type"),
            s.attr("uri")
        );
        ensure!(
            t.attr("string").is_some_and(|v| v.ends_with('Z')) && t.attr("long").is_some(),
            "DateTimeUTC without its string/long forms"
        );
    }
    let channel = elements(&xml, "Channel");
    ensure!(
        channel
            .iter()
            .any(|c| c.attr("uri") == Some(open.as_str()) && c.attr("name") == Some("Open")),
        "no Channel for the room Open: {xml}"
    );
    for user in ["alice", "bob"] {
        ensure!(
            find(&msgs, "JOIN", user, |_| true).is_some(),
            "no JOIN of {user}: {xml}"
        );
    }
    ensure!(
        find(&msgs, "CHAT", "alice", |m| m.attr("content")
            == Some(t1.as_str()))
        .is_some(),
        "no CHAT of alice with {t1:?}: {xml}"
    );
    ensure!(
        find(&msgs, "CHAT", "bob", |m| m.attr("content")
            == Some(t2.as_str()))
        .is_some(),
        "no CHAT of bob with {t2:?}: {xml}"
    );
    ensure!(
        find(&msgs, "CHAT", "alice", |m| m.attr("content")
            == Some(t3.as_str()))
        .is_some(),
        "the post acknowledged before kill -9 is missing: {t3:?}: {xml}"
    );
    ensure!(
        find(&msgs, "BACKCHAT", "bob", |_| true).is_some(),
        "no BACKCHAT of bob: {xml}"
    );
    ensure!(
        find(&msgs, "REPLACE", "alice", |m| m.attr("original")
            == Some(t1.as_str())
            && m.attr("content") == Some("[removed by admin]")
            && m.attr("id") == Some(id.to_string().as_str()))
        .is_some(),
        "no REPLACE with the original text {t1:?}: {xml}"
    );
    ensure!(
        find(&msgs, "PART", "bob", |_| true).is_some(),
        "no PART of bob: {xml}"
    );
    ensure!(
        find(&msgs, "FILEUPLOAD", "alice", |_| true).is_some(),
        "no FILEUPLOAD of alice: {xml}"
    );
    ensure!(
        find(&msgs, "FILEDOWNLOAD", "bob", |_| true).is_some(),
        "no FILEDOWNLOAD of bob: {xml}"
    );

    // CSV, and a room and time filter.
    let csv = d.export(&["--format", "csv", "--room", "Open"])?;
    ensure!(csv.len() == 1, "want one CSV file, got {csv:?}");
    let text = std::fs::read_to_string(&csv[0]).map_err(|e| Error(e.to_string()))?;
    ensure!(
        text.starts_with("event_id,type,room_uri,room_name,sender_uri,time_utc"),
        "CSV header: {text}"
    );
    ensure!(
        text.contains(&t3) && text.contains(&t2),
        "CSV lacks the posts: {text}"
    );
    let none = d.export(&[
        "--format",
        "xml",
        "--since",
        "2001-01-01",
        "--until",
        "2001-01-02",
    ])?;
    ensure!(none.is_empty(), "events from 2001 exported: {none:?}");

    // Bad input: refused with a clear error.
    let bad = d.export(&["--format", "pdf"]);
    ensure!(
        bad.as_ref()
            .err()
            .is_some_and(|e| e.0.contains("invalid format")),
        "--format pdf: {bad:?}"
    );

    // The scheduled export: the first window (from the start) is written as soon
    // as it holds events.
    let sched = d.work.path().join("scheduled");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let files: Vec<PathBuf> = std::fs::read_dir(&sched)
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        if let Some(f) = files
            .iter()
            .find(|f| f.extension().is_some_and(|e| e == "xml"))
        {
            validate(f)?;
            let x = std::fs::read_to_string(f).map_err(|e| Error(e.to_string()))?;
            let m = messages(&x);
            ensure!(
                find(&m, "JOIN", "alice", |_| true).is_some(),
                "the first scheduled export lacks alice's JOIN: {x}"
            );
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "no scheduled export in {}",
            sched.display()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Metrics: the room gauge and the compliance counters (published every second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = https(&d.server, "GET", "/metrics", &[], None)?.body;
        let has = |line: &str| m.lines().any(|l| l == line);
        if has("confab_chat_rooms 1")
            && has("confab_chat_compliance_backlog 0")
            && m.lines()
                .any(|l| l.starts_with("confab_chat_compliance_export_lag_seconds "))
            && m.lines()
                .any(|l| l.starts_with("confab_chat_deliveries_total "))
        {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "chat metrics missing from /metrics:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // alice's connection ended with the killed server.
    drop(alice);
    Ok(())
}

#[test]
fn compliance_export_sqlite() -> Result<()> {
    let mut d = deploy("sqlite", None)?;
    if d.server.skip_if_external("compliance_export_sqlite") {
        return Ok(());
    }
    let r = scenario(&mut d);
    d.server.with_log(r)
}

fn psql(admin: &str, sql: &str) -> Result<()> {
    let mut c = Command::new("psql");
    c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", admin, "-c", sql])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(c, Duration::from_secs(30))?;
    ensure!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn db_url(admin: &str, db: &str) -> String {
    let (base, query) = admin
        .split_once('?')
        .map_or((admin, None), |(b, q)| (b, Some(q)));
    let base = &base[..base
        .rfind('/')
        .filter(|i| *i > "postgres://".len())
        .unwrap_or(base.len())];
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[test]
fn compliance_export_postgres() -> Result<()> {
    let Ok(admin) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        eprintln!("skipped compliance_export_postgres: CONFAB_TEST_POSTGRES_URL is not set");
        return Ok(());
    };
    let token = unique_token().to_lowercase();
    let (main, comp) = (
        format!("confab_cmp_{token}"),
        format!("confab_cmpdb_{token}"),
    );
    psql(&admin, &format!("CREATE DATABASE {main}"))?;
    psql(&admin, &format!("CREATE DATABASE {comp}"))?;
    let r = (|| {
        let mut d = deploy(
            "postgres",
            Some((&db_url(&admin, &main), &db_url(&admin, &comp))),
        )?;
        let r = scenario(&mut d);
        let r = d.server.with_log(r);
        let _ = d.server.stop();
        r
    })();
    for db in [&main, &comp] {
        let _ = psql(
            &admin,
            &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        );
    }
    r
}

/// `value` without its `uri`, `room_uri` and `id` fields (new in every deployment).
fn strip_ids(mut value: Value) -> Value {
    match &mut value {
        Value::Object(m) => {
            m.remove("uri");
            m.remove("room_uri");
            m.remove("id");
            for v in m.values_mut() {
                *v = strip_ids(v.take());
            }
        }
        Value::Array(a) => {
            for v in a.iter_mut() {
                *v = strip_ids(v.take());
            }
        }
        _ => {}
    }
    value
}

fn json_of(server: &ConfabServer, args: &[&str]) -> Result<Value> {
    let mut all = vec!["chat"];
    all.extend_from_slice(args);
    let out = server.cli(&all)?;
    serde_json::from_str(out.trim()).map_err(|e| Error(format!("chat {args:?}: {e}: {out}")))
}

fn plain_server() -> Result<ConfabServer> {
    let mut o = ServerOptions::new().domain(DOMAIN);
    for u in ["alice", "bob", "carol"] {
        o = o.user(&format!("{u}@{DOMAIN}"), "pw");
    }
    ConfabServer::start(o)
}

/// `confab chat export` then `confab chat import` into a fresh deployment: the
/// category and room listings, the history and search show the same content; bad
/// input is refused with a clear error and changes nothing.
#[test]
fn chat_export_import_round_trip() -> Result<()> {
    let a = plain_server()?;
    if a.skip_if_external("chat_export_import_round_trip") {
        return Ok(());
    }
    let r = (|| {
        let b = plain_server()?;
        let r = round_trip(&a, &b);
        b.with_log(r)
    })();
    a.with_log(r)
}

fn round_trip(a: &ConfabServer, b: &ConfabServer) -> Result<()> {
    let chat = |s: &ConfabServer, args: &[&str]| -> Result<String> {
        let mut all = vec!["chat"];
        all.extend_from_slice(args);
        s.cli(&all)
    };
    chat(
        a,
        &[
            "category",
            "add",
            "Gen",
            "--allowed-members",
            "@example.com",
            "--creators",
            "alice@example.com",
            "--description",
            "general",
        ],
    )?;
    chat(
        a,
        &[
            "category",
            "add",
            "Walled",
            "--allowed-members",
            "@example.com",
            "--denied-members",
            "carol@example.com",
            "--file-upload",
            "true",
            "--chat-history",
            "false",
        ],
    )?;
    chat(
        a,
        &[
            "room",
            "add",
            "Open",
            "--category",
            "Gen",
            "--privacy",
            "open",
            "--description",
            "open <room> & ü",
        ],
    )?;
    chat(
        a,
        &[
            "room",
            "add",
            "Board",
            "--category",
            "Walled",
            "--privacy",
            "secret",
            "--type",
            "auditorium",
            "--members",
            "bob@example.com",
            "--managers",
            "alice@example.com",
            "--presenters",
            "alice@example.com,bob@example.com",
            "--disabled",
        ],
    )?;
    chat(a, &["policy", "set", "--global", "--enable"])?;
    let open = json_of(a, &["room", "show", "Open", "--json"])?["uri"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let word = format!("quux{}", unique_token());
    let texts = [
        format!("first {word} <b>&amp;"),
        format!("second {word} ünï"),
        format!("third {word}"),
    ];
    // Posts through the protocol, by two users.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut alice = loop {
        let attempt = XccosClient::connect(a.sip_addr(), &format!("alice@{DOMAIN}"), "pw")
            .and_then(|mut c| {
                let st = c.discover()?;
                ensure!(st == 200, "alice: lookup answered {st}");
                c.join_ok(&open)?;
                Ok(c)
            });
        match attempt {
            Ok(c) => break c,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    for t in &texts {
        let r = alice.post(&open, t)?;
        ensure!(r.status() == Some(200), "alice's post: {}", r.first_line);
    }
    alice.bye()?;
    let list = json_of(a, &["message", "list", "Open", "--json"])?;
    let second = list
        .as_array()
        .and_then(|l| l.iter().find(|p| p["text"] == texts[1].as_str()))
        .and_then(|p| p["id"].as_i64())
        .ok_or_else(|| Error(format!("post not listed: {list}")))?;
    chat(
        a,
        &[
            "message",
            "replace",
            &second.to_string(),
            "--text",
            "[gone]",
        ],
    )?;

    let file = a.work_dir().join("chat-export.json");
    let f = file.to_string_lossy().into_owned();
    chat(a, &["export", "--out", &f])?;

    // Bad input: refused with a reason, nothing changed.
    let bad = b.work_dir().join("bad.json");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).map_err(|e| Error(e.to_string()))?)
            .map_err(|e| Error(e.to_string()))?;
    doc["rooms"][1]["members"] = serde_json::json!(["nobody@example.com"]);
    std::fs::write(&bad, doc.to_string()).map_err(|e| Error(e.to_string()))?;
    let r = chat(b, &["import", &bad.to_string_lossy()]);
    ensure!(
        r.as_ref()
            .err()
            .is_some_and(|e| e.0.contains("unknown user nobody@example.com")),
        "import with an unknown member: {r:?}"
    );
    std::fs::write(&bad, "{\"format\":\"something else\"}").map_err(|e| Error(e.to_string()))?;
    let r = chat(b, &["import", &bad.to_string_lossy()]);
    ensure!(
        r.as_ref()
            .err()
            .is_some_and(|e| e.0.contains("not a chat export")),
        "import of a foreign file: {r:?}"
    );
    let cats = json_of(b, &["category", "list", "--json"])?;
    ensure!(
        cats.as_array().is_some_and(Vec::is_empty),
        "a refused import left categories: {cats}"
    );

    chat(b, &["import", &f])?;
    for args in [
        &["category", "list", "--json"][..],
        &["room", "list", "--json"][..],
        &["message", "list", "Open", "--json"][..],
        &[
            "search",
            "--as",
            "alice@example.com",
            "--text",
            &word,
            "--json",
        ][..],
    ] {
        let (va, vb) = (strip_ids(json_of(a, args)?), strip_ids(json_of(b, args)?));
        ensure!(
            va == vb,
            "`chat {args:?}` differs after the import:\nexported: {va}\nimported: {vb}"
        );
    }
    let hits = json_of(
        b,
        &[
            "search",
            "--as",
            "alice@example.com",
            "--text",
            &word,
            "--json",
        ],
    )?;
    ensure!(
        hits["results"].as_array().is_some_and(|r| r.len() == 2),
        "search in the imported history: want the 2 visible posts, got {hits}"
    );
    let msgs = json_of(b, &["message", "list", "Open", "--json"])?;
    ensure!(
        msgs.as_array().is_some_and(|m| m
            .iter()
            .any(|p| p["original"] == texts[1].as_str() && p["text"] == "[gone]")),
        "the replaced post's original did not survive: {msgs}"
    );
    // Importing again: the names exist, refused, nothing doubled.
    let r = chat(b, &["import", &f]);
    ensure!(
        r.as_ref()
            .err()
            .is_some_and(|e| e.0.contains("exists already")),
        "a second import: {r:?}"
    );
    let rooms = json_of(b, &["room", "list", "--json"])?;
    ensure!(
        rooms.as_array().is_some_and(|r| r.len() == 2),
        "rooms after a refused import: {rooms}"
    );
    Ok(())
}

/// Signs `user` in to the chat web service: the session cookie and the CSRF token.
fn web_sign_in(server: &ConfabServer, user: &str) -> Result<(String, String)> {
    let body = serde_json::json!({"address": format!("{user}@{DOMAIN}"), "password": "pw"});
    let a = https(
        server,
        "POST",
        "/chat/api/signin",
        &[],
        Some(&body.to_string()),
    )?;
    ensure!(
        a.status == 200,
        "web sign-in of {user}: {} {}",
        a.status,
        a.body
    );
    let cookie = a
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let v: Value = serde_json::from_str(&a.body).map_err(|e| Error(format!("{e}")))?;
    Ok((cookie, v["csrf"].as_str().unwrap_or_default().to_owned()))
}

/// `user` posts `data` as a file into `room` (begin, chunks, commit); the
/// download path of the file post.
fn upload(
    server: &ConfabServer,
    user: &str,
    room: &str,
    name: &str,
    data: &[u8],
) -> Result<String> {
    let (cookie, csrf) = web_sign_in(server, user)?;
    let h = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let begin = serde_json::json!({"room": room, "name": name, "size": data.len()});
    let a = https(
        server,
        "POST",
        "/chat/api/files",
        &h,
        Some(&begin.to_string()),
    )?;
    ensure!(a.status == 200, "upload of {name}: {} {}", a.status, a.body);
    let v: Value = serde_json::from_str(&a.body).map_err(|e| Error(format!("{e}")))?;
    let id = v["upload"].as_str().unwrap_or_default().to_owned();
    let chunk = v["chunk_size"].as_u64().unwrap_or(0) as usize;
    ensure!(chunk > 0, "no chunk size in {}", a.body);
    for (i, part) in data.chunks(chunk).enumerate() {
        let mut hh = h.to_vec();
        hh.push(("Content-Type", "application/octet-stream"));
        let path = format!("/chat/api/files/{id}?offset={}", i * chunk);
        let c = https_bytes(server, "PUT", &path, &hh, part)?;
        ensure!(c.status == 200, "chunk {i} of {name}: {}", c.status);
    }
    let c = https(
        server,
        "POST",
        &format!("/chat/api/files/{id}/commit"),
        &h,
        Some("{}"),
    )?;
    ensure!(c.status == 200, "commit of {name}: {} {}", c.status, c.body);
    let v: Value = serde_json::from_str(&c.body).map_err(|e| Error(format!("{e}")))?;
    let url = v["url"].as_str().unwrap_or_default();
    url.find("/chat/files/")
        .map(|i| url[i..].to_owned())
        .ok_or_else(|| Error(format!("no link in {}", c.body)))
}
