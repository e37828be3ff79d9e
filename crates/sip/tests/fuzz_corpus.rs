//! Replays the committed fuzz seed corpus (`fuzz/corpus-seed/<target>/*`) through the
//! same harness the cargo-fuzz targets run, so CI covers it without cargo-fuzz. A
//! crash reproducer found by the fuzzer belongs in that folder too.

mod common;

use std::path::PathBuf;

use common::harness;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus-seed")
        .join(target);
    let mut n = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.display().to_string();
        if let Err(e) = std::panic::catch_unwind(|| run(&data)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("{name}: {msg}");
        }
        n += 1;
    }
    n
}

#[test]
fn parse_message_seeds() {
    assert!(replay("parse_message", harness::exercise_message) >= 80);
}

#[test]
fn framer_seeds() {
    assert!(replay("framer", harness::exercise_framer) >= 5);
}

#[test]
fn uri_seeds() {
    assert!(replay("uri", harness::exercise_uri) >= 50);
}

/// The seeds of parse_message are the test data: every valid one parses.
#[test]
fn parse_message_seeds_are_the_test_data() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus-seed/parse_message");
    for sub in ["rfc4475", "sipe"] {
        for (name, bytes) in common::corpus(sub) {
            let seed = std::fs::read(dir.join(format!("{sub}-{name}.sip")))
                .unwrap_or_else(|e| panic!("seed for {sub}/{name}: {e}"));
            assert_eq!(
                seed,
                bytes.to_vec(),
                "{sub}/{name} changed: refresh fuzz/corpus-seed"
            );
        }
    }
}
