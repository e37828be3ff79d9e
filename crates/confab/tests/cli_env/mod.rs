//! A temporary data directory and the `confab` binary run in it, shared by the CLI
//! tests (`cli_users.rs`, `contact_cli.rs`).

#![allow(dead_code)] // each test file uses part of it

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use confab_store::Store;

/// A temporary working directory with a data directory inside it.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab"));
        cmd.arg("--data")
            .arg(self.data())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_ok(&out, args);
        stdout(&out)
    }

    /// Runs a command that must fail with exit code 1; returns its standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?} printed: {}", stdout(&out));
        stderr(&out)
    }

    pub async fn store(&self) -> Store {
        Store::open_sqlite(&self.data().join("confab.db"))
            .await
            .unwrap()
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

pub fn assert_ok(out: &Output, what: &[&str]) {
    assert!(out.status.success(), "{what:?} failed: {}", stderr(out));
    assert_eq!(stderr(out), "", "{what:?} wrote to stderr");
}
