//! The TCP/TLS stream framer: the same frames whether the stream arrives whole or in small chunks.
#![no_main]

#[allow(dead_code)] // each target uses one entry point of the shared harness
#[path = "../../crates/sip/tests/common/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::exercise_framer(data));
