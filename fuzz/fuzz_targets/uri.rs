//! Uri, NameAddr and Via views and the parameter splitters on arbitrary text.
#![no_main]

#[allow(dead_code)] // each target uses one entry point of the shared harness
#[path = "../../crates/sip/tests/common/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::exercise_uri(data));
