//! The Lync (MS-PRES) documents a client sends: category publications and batched
//! subscriptions, and the PIDF documents SIMPLE clients send. Parsing must never
//! panic; what parses must render without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = confab_presence::mspres::parse_category_publish(data);
    let _ = confab_presence::mspres::parse_batch_subscribe(data);
    if let Ok(state) = confab_presence::parse_pidf(data) {
        let _ = confab_presence::render_pidf("sip:fuzz@example.com", &state);
        let _ = confab_presence::mspres::render_categories(
            "sip:fuzz@example.com",
            &state,
            None,
            "2026-01-01T00:00:00Z",
            1,
        );
    }
});
