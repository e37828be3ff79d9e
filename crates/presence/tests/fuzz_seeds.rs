//! Replays the committed seed corpus of the `mspres` fuzz target
//! (`fuzz/corpus-seed/mspres`: bodies of real pidgin-sipe messages) through what the
//! target runs, so CI covers it without cargo-fuzz, and checks the real client's
//! documents parse.

use std::path::PathBuf;

use confab_presence::mspres;

#[test]
fn mspres_seeds_parse_or_fail_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus-seed/mspres");
    let mut publishes = 0;
    let mut batches = 0;
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read seed");
        n += 1;
        if let Ok((_, pubs)) = mspres::parse_category_publish(&data) {
            assert!(!pubs.is_empty(), "{}", path.display());
            publishes += 1;
        }
        if let Ok(b) = mspres::parse_batch_subscribe(&data) {
            assert!(!b.resources.is_empty(), "{}", path.display());
            batches += 1;
        }
        if let Ok(state) = confab_presence::parse_pidf(&data) {
            let _ = mspres::render_categories(
                "sip:x@example.com",
                &state,
                None,
                "2026-01-01T00:00:00Z",
                1,
            );
        }
    }
    assert!(n >= 20, "seed corpus missing ({n} files)");
    // The captures hold two category publications and two batched subscriptions.
    assert!(publishes >= 2, "{publishes} publications parsed");
    assert!(batches >= 2, "{batches} batch subscriptions parsed");
}
