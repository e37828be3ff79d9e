//! Message::parse on one datagram; on success every accessor, a response and a proxied copy that must parse again; on failure the error reply.
#![no_main]

#[allow(dead_code)] // each target uses one entry point of the shared harness
#[path = "../../crates/sip/tests/common/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::exercise_message(data));
