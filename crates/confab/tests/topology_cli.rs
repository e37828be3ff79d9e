//! `confab topology` and `confab prereq check`, run as a user would.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn confab(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confab"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run confab")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "confab failed:\n{t}");
    t
}

fn fails(o: Output) -> String {
    let t = text(&o);
    assert!(!o.status.success(), "confab should have failed:\n{t}");
    t
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn new_writes_valid_starters() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let se = dir.path().join("se.toml");
    let out = ok(confab(
        &data,
        &[
            "topology",
            "new",
            "--edition",
            "standard",
            "--fqdn",
            "se01.contoso.com",
            "-o",
            arg(&se),
        ],
    ));
    assert!(out.contains("Standard Edition starter"), "{out}");
    let body = std::fs::read_to_string(&se).unwrap();
    assert!(body.starts_with("# confab topology"));
    assert!(body.contains("edition = \"standard\""));
    let out = ok(confab(&data, &["topology", "validate", arg(&se)]));
    assert!(out.contains("0 errors"), "{out}");
    assert!(out.contains("is valid"), "{out}");

    // No overwriting without --force.
    let again = fails(confab(
        &data,
        &[
            "topology",
            "new",
            "--edition",
            "standard",
            "--fqdn",
            "se01.contoso.com",
            "-o",
            arg(&se),
        ],
    ));
    assert!(again.contains("--force"), "{again}");

    let ee = dir.path().join("ee.toml");
    ok(confab(
        &data,
        &[
            "topology",
            "new",
            "--edition",
            "enterprise",
            "--fqdn",
            "fe01.fabrikam.com",
            "--fqdn",
            "fe02.fabrikam.com",
            "-o",
            arg(&ee),
        ],
    ));
    let out = ok(confab(&data, &["topology", "validate", arg(&ee)]));
    assert!(out.contains("2 front-end"), "{out}");

    let stdout = ok(confab(
        &data,
        &[
            "topology",
            "new",
            "--edition",
            "enterprise",
            "--fqdn",
            "fe01.fabrikam.com",
            "-o",
            "-",
        ],
    ));
    assert!(stdout.contains("edition = \"enterprise\""));
    fails(confab(
        &data,
        &["topology", "new", "--edition", "premium", "--fqdn", "a.b.c"],
    ));
}

#[test]
fn validate_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        r#"sip_domains = ["contoso.com"]

[[site]]
name = "main"

[[store]]
name = "backend"
kind = "back-end"
sqlite = "confab.db"

[[pool]]
fqdn = "se01.contoso.com"
site = "main"
edition = "standard"
backend = "backend"

[[pool.machine]]
fqdn = "se01.contoso.com"
roles = ["front-end"]

[[pool]]
fqdn = "edge.contoso.com"
site = "main"

[[pool.machine]]
fqdn = "edge01.contoso.com"
roles = ["edge"]
internal_address = "10.0.0.5"
"#,
    )
    .unwrap();
    let out = fails(confab(dir.path(), &["topology", "validate", arg(&file)]));
    let want = format!("{}:26:", file.display());
    assert!(out.contains(&want), "{out}");
    assert!(out.contains("error[edge-addresses]"), "{out}");
    assert!(out.contains("help:"), "{out}");

    let json = confab(dir.path(), &["topology", "validate", "--json", arg(&file)]);
    assert!(!json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["diagnostics"][0]["line"], 26);
    assert_eq!(v["diagnostics"][0]["rule"], "edge-addresses");

    std::fs::write(
        &file,
        "sip_domains = [\"contoso.com\"]\n\n[[pool]]\nfqdn = 7\n",
    )
    .unwrap();
    let out = fails(confab(dir.path(), &["topology", "validate", arg(&file)]));
    assert!(out.contains(&format!("{}:4:", file.display())), "{out}");
}

fn standard_topology(users: u32) -> String {
    include_str!("../../../examples/topology-standard.toml")
        .replace("users = 2500", &format!("users = {users}"))
}

#[test]
fn publish_show_history_diff_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("topology.toml");

    let out = fails(confab(&data, &["topology", "show"]));
    assert!(out.contains("no topology has been published"), "{out}");

    std::fs::write(&file, standard_topology(2500)).unwrap();
    let out = ok(confab(
        &data,
        &["topology", "publish", arg(&file), "--comment", "first"],
    ));
    assert!(out.contains("as topology version 1"), "{out}");
    assert!(
        data.join("confab.db").exists(),
        "the Standard Edition back end holds the central store"
    );
    let out = ok(confab(&data, &["topology", "publish", arg(&file)]));
    assert!(out.contains("Unchanged"), "{out}");

    std::fs::write(&file, standard_topology(3000)).unwrap();
    let out = ok(confab(&data, &["topology", "publish", arg(&file)]));
    assert!(out.contains("as topology version 2"), "{out}");
    assert!(
        out.contains("~ pool se01.contoso.com users: 2500 -> 3000"),
        "{out}"
    );

    let out = ok(confab(&data, &["topology", "history"]));
    assert!(out.contains("first"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_start().starts_with(['1', '2']))
            .count(),
        2,
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&confab(&data, &["topology", "history", "--json"]).stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);

    let out = ok(confab(&data, &["topology", "show"]));
    assert!(out.contains("topology version 2"), "{out}");
    assert!(
        out.contains("machine se01.contoso.com: front-end, persistent-chat, mediation"),
        "{out}"
    );
    assert!(out.contains("users = 3000"), "{out}");
    let out = ok(confab(&data, &["topology", "show", "--version", "1"]));
    assert!(out.contains("users = 2500"), "{out}");
    fails(confab(&data, &["topology", "show", "--version", "9"]));

    let out = ok(confab(&data, &["topology", "diff", "--text"]));
    assert!(out.contains("version 1 -> version 2: 1 change(s)"), "{out}");
    assert!(out.contains("+ users = 3000"), "{out}");

    std::fs::write(
        &file,
        standard_topology(3000).replace("remote_users = 1000", "remote_users = 1500"),
    )
    .unwrap();
    let out = ok(confab(&data, &["topology", "diff", "--file", arg(&file)]));
    assert!(
        out.contains("~ pool edge01.contoso.com remote_users: 1000 -> 1500"),
        "{out}"
    );

    // A topology with errors is not published.
    std::fs::write(
        &file,
        standard_topology(3000).replace("roles = [\"edge\"]", "roles = [\"edge\", \"director\"]"),
    )
    .unwrap();
    let out = fails(confab(&data, &["topology", "publish", arg(&file)]));
    assert!(out.contains("nothing was changed"), "{out}");
    let out = ok(confab(&data, &["topology", "history"]));
    assert!(
        !out.lines().any(|l| l.trim_start().starts_with('3')),
        "{out}"
    );
}

#[tokio::test]
async fn publish_and_show_on_postgres() {
    let Ok(base) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped: set CONFAB_TEST_POSTGRES_URL");
        return;
    };
    use sqlx::migrate::MigrateDatabase;
    let name = format!("confab_test_{}", uuid::Uuid::new_v4().simple());
    let url = confab_topology::db::with_database(&base, &name).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("topology.toml");
    std::fs::write(
        &file,
        include_str!("../../../examples/topology-enterprise.toml").replace(
            "postgres://confab:CHANGE-ME@db01.fabrikam.com:5432/confab\"",
            &format!("{url}\""),
        ),
    )
    .unwrap();
    let run = tokio::task::spawn_blocking({
        let data = data.clone();
        let file = file.clone();
        let url = url.clone();
        move || {
            let out = ok(confab(&data, &["topology", "publish", arg(&file)]));
            assert!(out.contains("as topology version 1"), "{out}");
            assert!(!out.contains("confab:confab@"), "password shown: {out}");
            // Another machine reads it back through --cms.
            let other = tempfile::tempdir().unwrap();
            let out = ok(confab(other.path(), &["topology", "show", "--cms", &url]));
            assert!(
                out.contains("pool pool01.fabrikam.com (enterprise edition"),
                "{out}"
            );
            let out = ok(confab(
                other.path(),
                &["topology", "history", "--cms", &url],
            ));
            assert!(out.contains("      1  "), "{out}");
            // This machine remembers where the central store is.
            ok(confab(&data, &["topology", "show"]));
        }
    })
    .await;
    sqlx::Postgres::force_drop_database(&url).await.unwrap();
    if let Err(e) = run {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[test]
fn prereq_check_runs_for_real() {
    let dir = tempfile::tempdir().unwrap();
    let o = confab(dir.path(), &["prereq", "check"]);
    let t = text(&o);
    println!("{t}");
    for id in [
        "arch",
        "kernel",
        "libc",
        "distribution",
        "open-files",
        "disk",
        "clock",
        "certificate",
        "store:backend",
        "port:front-end.sip-tls",
        "preload",
    ] {
        assert!(
            t.lines().any(|l| l.split_whitespace().nth(1) == Some(id)),
            "no {id} line:\n{t}"
        );
    }
    assert!(t.contains("PASS  arch"), "{t}");
    let failed = t.contains("\nFAIL ");
    assert_eq!(
        o.status.success(),
        !failed,
        "non-zero exit exactly when a check fails:\n{t}"
    );
    assert!(t.contains("summary: "), "{t}");

    let o = confab(
        dir.path(),
        &[
            "prereq",
            "check",
            "--json",
            "--role",
            "edge",
            "--role",
            "mediation",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["roles"], serde_json::json!(["edge", "mediation"]));
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["id"] == "port:edge.access"));
    assert!(
        checks
            .iter()
            .all(|c| ["pass", "warn", "fail"].contains(&c["status"].as_str().unwrap()))
    );
    assert_eq!(o.status.success(), v["summary"]["fail"] == 0);

    fails(confab(
        dir.path(),
        &["prereq", "check", "--role", "toaster"],
    ));
    assert!(
        !dir.path().join("confab.db").exists(),
        "checking creates nothing"
    );
}

#[test]
fn prereq_check_follows_a_topology() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(
        &file,
        include_str!("../../../examples/topology-enterprise.toml"),
    )
    .unwrap();
    let o = confab(
        dir.path(),
        &[
            "prereq",
            "check",
            "--topology",
            arg(&file),
            "--fqdn",
            "dir01.fabrikam.com",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pool"], "dir.fabrikam.com");
    assert_eq!(v["roles"], serde_json::json!(["director"]));
    let out = fails(confab(
        dir.path(),
        &[
            "prereq",
            "check",
            "--topology",
            arg(&file),
            "--fqdn",
            "nobody.fabrikam.com",
        ],
    ));
    assert!(out.contains("fe01.fabrikam.com"), "{out}");
    let out = fails(confab(
        dir.path(),
        &[
            "prereq",
            "check",
            "--topology",
            arg(&file),
            "--fqdn",
            "dir01.fabrikam.com",
            "--role",
            "edge",
        ],
    ));
    assert!(out.contains("does not run edge"), "{out}");
}

/// Issue 18: `confab prereq check` on each machine of the examples prints a
/// result for every Lync requirement a check stands for on that machine's roles.
#[test]
fn prereq_check_answers_every_requirement_on_every_example_machine() {
    use confab_prereq::lync::{REQUIREMENTS, applies};
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    for (name, src) in [
        (
            "standard.toml",
            include_str!("../../../examples/topology-standard.toml"),
        ),
        (
            "enterprise.toml",
            include_str!("../../../examples/topology-enterprise.toml"),
        ),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, src).unwrap();
        let t = confab_topology::Topology::parse(src).unwrap();
        for m in t.machines() {
            let fqdn = m.machine.fqdn().to_string();
            let roles = m.machine.roles();
            let file = file.clone();
            let data = dir.path().join(&fqdn);
            jobs.push(std::thread::spawn(move || {
                let o = confab(
                    &data,
                    &[
                        "prereq",
                        "check",
                        "--json",
                        "--topology",
                        arg(&file),
                        "--fqdn",
                        &fqdn,
                    ],
                );
                (fqdn, roles, o)
            }));
        }
    }
    let mut machines = 0;
    for j in jobs {
        let (fqdn, roles, o) = j.join().unwrap();
        machines += 1;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{fqdn}: {e}\n{}", text(&o)));
        assert_eq!(v["fqdn"], fqdn.as_str());
        let checks = v["checks"].as_array().unwrap();
        let answered: Vec<&str> = checks
            .iter()
            .flat_map(|c| c["lync"].as_array().unwrap().iter())
            .map(|x| x.as_str().unwrap())
            .collect();
        for r in REQUIREMENTS {
            if applies(r, &roles) && !r.checks.is_empty() {
                assert!(
                    answered.contains(&r.id),
                    "{fqdn} ({roles:?}): no result for {}:\n{}",
                    r.id,
                    text(&o)
                );
            }
        }
        for c in checks {
            assert!(["pass", "warn", "fail"].contains(&c["status"].as_str().unwrap()));
        }
        assert_eq!(o.status.success(), v["summary"]["fail"] == 0, "{fqdn}");
    }
    assert_eq!(machines, 2 + 11, "every machine of both examples");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 2,
        "checking creates nothing"
    );
}

#[test]
fn prereq_check_edge_needs_both_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let o = confab(dir.path(), &["prereq", "check", "--json", "--role", "edge"]);
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let get = |v: &[serde_json::Value], id: &str| {
        v.iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id}"))
            .clone()
    };
    assert_eq!(get(checks, "edge-addresses")["status"], "fail");
    // No wildcard address probed for both sides.
    let access = get(checks, "port:edge.access");
    assert_eq!(access["status"], "fail");
    assert!(
        !access["detail"].as_str().unwrap().contains("0.0.0.0"),
        "{access}"
    );
    let o = confab(
        dir.path(),
        &[
            "prereq",
            "check",
            "--json",
            "--role",
            "edge",
            "--internal-address",
            "127.0.0.1",
            "--external-address",
            "127.0.0.2",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(get(checks, "edge-addresses")["status"], "pass");
    let internal = get(checks, "port:edge.internal-sip-tls");
    assert!(
        internal["detail"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:5061"),
        "{internal}"
    );
    let access = get(checks, "port:edge.access");
    assert!(
        access["detail"]
            .as_str()
            .unwrap()
            .contains("127.0.0.2:5061"),
        "{access}"
    );
    fails(confab(
        dir.path(),
        &["prereq", "check", "--internal-address", "127.0.0.1"],
    ));
}

#[test]
fn validate_json_gives_columns_and_whole_file_problems() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(
        &file,
        "sip_domains = [\"contoso.com\"]\n\n[[pool]]\nfqdn = 7\n",
    )
    .unwrap();
    let o = confab(dir.path(), &["topology", "validate", "--json", arg(&file)]);
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["line"], 4);
    assert_eq!(v["diagnostics"][0]["column"], 8);

    // Nothing to point at: no SIP domain, no front end, no back end.
    std::fs::write(&file, "[[site]]\nname = \"main\"\n").unwrap();
    let out = fails(confab(dir.path(), &["topology", "validate", arg(&file)]));
    let name = file.display().to_string();
    assert!(out.contains(&format!("{name}: error[sip-domain]")), "{out}");
    assert!(!out.contains(&format!("{name}:1:1:")), "{out}");
    let o = confab(dir.path(), &["topology", "validate", "--json", arg(&file)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "front-end-required")
        .unwrap()
        .clone();
    assert!(d["line"].is_null() && d["column"].is_null(), "{d}");
}

/// `confab prereq proxy`: the headers of a request that came through a reverse proxy.
#[test]
fn prereq_proxy_checks_the_forwarded_headers() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let probe = |request: &str| -> (bool, String, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_confab"))
            .arg("--data")
            .arg(dir.path())
            .args(["prereq", "proxy", "--listen", &listen, "--timeout", "30"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut conn = None;
        for _ in 0..100 {
            if let Ok(c) = std::net::TcpStream::connect(&listen) {
                conn = Some(c);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut conn = conn.expect("the probe listens");
        conn.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), text(&out), answer)
    };
    // What nginx sends with the documented configuration.
    let (ok, out, answer) = probe(
        "GET / HTTP/1.1\r\nHost: webext.contoso.com\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\nX-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: https\r\n\r\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains("PASS  reverse-proxy"), "{out}");
    assert!(
        answer.starts_with("HTTP/1.1 200 OK") && answer.contains("PASS"),
        "{answer}"
    );
    // A proxy left at its defaults: no upgrade, no client address.
    let (ok, out, answer) =
        probe("GET / HTTP/1.0\r\nHost: pool01.contoso.com:8080\r\nConnection: close\r\n\r\n");
    assert!(!ok, "{out}");
    assert!(out.contains("FAIL  reverse-proxy"), "{out}");
    assert!(out.contains("X-Forwarded-For"), "{out}");
    assert!(answer.contains("FAIL"), "{answer}");
}
