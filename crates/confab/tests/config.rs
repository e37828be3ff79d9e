//! Configuration errors and precedence, through the real binary.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn confab(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Writes `text` to `bad.toml` and runs `confab serve --config bad.toml`, which must
/// fail on the configuration (exit 1) before doing anything else. Returns stderr.
fn serve_with(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), text).unwrap();
    let data = dir.path().join("data");
    let out = confab(
        dir.path(),
        &[
            "serve",
            "--config",
            "bad.toml",
            "--data",
            data.to_str().unwrap(),
            "--sip",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        !data.exists(),
        "serve touched the data dir before checking its config"
    );
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn unknown_top_level_key() {
    let err = serve_with("domain = \"contoso.com\"\n\nfrobnicate = true\n");
    assert!(
        err.contains("bad.toml:3:1: `frobnicate`: unknown field `frobnicate`"),
        "{err}"
    );
}

#[test]
fn unknown_nested_key() {
    let err =
        serve_with("domain = \"contoso.com\"\n\n[registrar]\nmin_expires = 30\nmax_expirez = 90\n");
    assert!(
        err.contains("bad.toml:5:1: `registrar.max_expirez`: unknown field `max_expirez`"),
        "{err}"
    );
    assert!(
        err.contains("expected one of `min_expires`, `max_expires`, `default_expires`"),
        "{err}"
    );

    let err = serve_with("[auth]\nnonce_lifetime_secs = 10\n\n[limitz]\nmax_headers = 10\n");
    assert!(
        err.contains("bad.toml:4:2: `limitz`: unknown field `limitz`"),
        "{err}"
    );
}

#[test]
fn bad_value_type() {
    let err = serve_with("# comment\n[presence]\nsame_domain_visible = \"yes\"\n");
    assert!(
        err.contains("bad.toml:3:23: `presence.same_domain_visible`: invalid type: string"),
        "{err}"
    );
    let err = serve_with("http = 8080\n");
    assert!(
        err.contains("bad.toml:1:8: `http`: invalid type: integer"),
        "{err}"
    );
    let err = serve_with("[limits]\nmax_connections = -1\n");
    assert!(
        err.contains("bad.toml:2:19: `limits.max_connections`"),
        "{err}"
    );
}

#[test]
fn invalid_toml() {
    let err = serve_with("domain = \"contoso.com\"\n[registrar\n");
    assert!(err.contains("bad.toml:2:"), "{err}");
    assert!(err.contains("invalid TOML"), "{err}");
}

#[test]
fn inconsistent_values() {
    let err = serve_with("[registrar]\nmin_expires = 600\ndefault_expires = 300\n");
    assert!(
        err.contains("bad.toml:2:1: `registrar.min_expires`: min_expires (600) must not exceed default_expires (300)"),
        "{err}"
    );
    let err = serve_with("domain = \"not a host\"\n");
    assert!(
        err.contains("bad.toml:1:1: `domain`") && err.contains("not a valid host name"),
        "{err}"
    );
    let err = serve_with("domain = \"\"\n");
    assert!(
        err.contains("`domain`: the domain must not be empty"),
        "{err}"
    );
}

#[test]
fn bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = confab(dir.path(), &["serve", "--domain", "exa mple.com"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--domain: \"exa mple.com\" is not a valid host name"),
        "{}",
        stderr(&out)
    );
    let out = confab(dir.path(), &["serve", "--sip", "localhost"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses a bad address");
    let out = confab(dir.path(), &["serve", "--config", "missing.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: cannot read config file missing.toml:"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was created"
    );
}

#[test]
fn config_file_is_used_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("from-file");
    let from_flag = dir.path().join("from-flag");
    std::fs::write(
        dir.path().join("confab.toml"),
        format!(
            "data_dir = {:?}\ndomain = \"contoso.com\"\n\n[registrar]\nmin_expires = 30\n",
            from_file
        ),
    )
    .unwrap();

    let out = confab(
        dir.path(),
        &[
            "--config",
            "confab.toml",
            "user",
            "add",
            "a@contoso.com",
            "--password",
            "x",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        from_file.join("confab.db").exists(),
        "data_dir from the file is used"
    );

    let out = confab(
        dir.path(),
        &[
            "user",
            "list",
            "--config",
            "confab.toml",
            "--data",
            from_flag.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "no users\n");
    assert!(
        from_flag.join("confab.db").exists(),
        "--data overrides the file"
    );

    // The file's `database` wins over the data dir; --database wins over the file.
    let db: PathBuf = dir.path().join("other.db");
    std::fs::write(
        dir.path().join("db.toml"),
        format!("database = \"sqlite://{}?mode=rwc\"\n", db.display()),
    )
    .unwrap();
    let out = confab(dir.path(), &["--config", "db.toml", "user", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(db.exists());
    let out = confab(
        dir.path(),
        &[
            "--config",
            "db.toml",
            "user",
            "list",
            "--database",
            "mysql://x/y",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--database: expected a sqlite://PATH or postgres://"),
        "{}",
        stderr(&out)
    );
}
