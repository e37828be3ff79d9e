//! Helpers shared by the integration tests: loading the test-data corpora and the
//! fuzz harness (also compiled into the `fuzz/` targets).
#![allow(dead_code)]

pub mod harness;
pub mod msggen;

use std::path::PathBuf;

use bytes::Bytes;
use confab_sip::{Limits, Message, ParseError};

/// `tests/data/<sub>`.
pub fn data_dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(sub)
}

/// One test-data file.
pub fn load(sub: &str, name: &str) -> Bytes {
    let path = data_dir(sub).join(name);
    match std::fs::read(&path) {
        Ok(b) => Bytes::from(b),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

/// Every `*.sip` file of a test-data folder as `(file stem, bytes)`, sorted by name.
pub fn corpus(sub: &str) -> Vec<(String, Bytes)> {
    let dir = data_dir(sub);
    let mut out: Vec<(String, Bytes)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sip"))
        .map(|p| {
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (stem, Bytes::from(bytes))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn parse(b: &Bytes) -> Result<Message, ParseError> {
    Message::parse(b.clone(), &Limits::default())
}

pub fn parse_str(s: &str) -> Result<Message, ParseError> {
    Message::parse(Bytes::copy_from_slice(s.as_bytes()), &Limits::default())
}

/// Header text with every run of whitespace collapsed to one space (what a folded
/// value means, RFC 3261 §7.3.1).
pub fn squash(s: &str) -> String {
    s.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}
