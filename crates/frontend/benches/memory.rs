//! Heap bytes per endpoint in the sans-IO front end, counted exactly by an
//! instrumented allocator (no sockets, no allocator slack, no timing):
//!
//! * a directory user (HA1s, NT hash, display name);
//! * a registered endpoint, once its REGISTER transactions are over (registrar
//!   binding, presence endpoint state, digest nonce-count entry), over UDP and TCP;
//! * a completed REGISTER transaction kept for Timer J (UDP only, 32 s);
//! * a presence subscription (dialog, watcher entry), once its transactions ended.
//!
//! `cargo bench -p confab-frontend --bench memory` prints one line per figure.
//! PSS measured under load (`bench/run.sh`) adds the allocator's own overhead and
//! the transport's per-connection state; this isolates what the core keeps.

#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::System;
use std::time::Duration;

use common::{Harness, Ua};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const N: usize = 5_000;

/// Net bytes allocated and not freed while `f` ran.
fn live_bytes(f: impl FnOnce()) -> i64 {
    let region = Region::new(GLOBAL);
    f();
    let s = region.change();
    // `realloc` growth and shrinkage are already in these two totals.
    let net = s.bytes_allocated as i128 - s.bytes_deallocated as i128;
    i64::try_from(net).unwrap_or(i64::MAX)
}

fn per(bytes: i64) -> i64 {
    bytes / N as i64
}

fn uas(h: &Harness, tcp: bool) -> Vec<Ua> {
    (0..N)
        .map(|i| {
            let ua = h.ua(
                &format!("u{i}"),
                &format!("10.{}.{}.{}:5060", i / 62_500, (i / 250) % 250, i % 250 + 1),
            );
            if tcp { ua.tcp(i as u64 + 1) } else { ua }
        })
        .collect()
}

/// Every endpoint watches the next one's presence (SUBSCRIBE with digest, 200,
/// first NOTIFY answered); heap bytes per subscription once the transactions
/// are over.
fn subscriptions(h: &mut Harness, uas: &mut [Ua]) -> i64 {
    let targets: Vec<String> = uas.iter().map(Ua::uri).collect();
    let bytes = live_bytes(|| {
        for (i, ua) in uas.iter_mut().enumerate() {
            let target = &targets[(i + 1) % targets.len()];
            let req = ua
                .request("SUBSCRIBE", target, target)
                .header("Event", "presence")
                .header("Accept", "application/pidf+xml")
                .header("Expires", "3600");
            let (_, out) = h.send_authed(ua, req);
            let Some(notify) = out.into_iter().find(|s| s.method() == Some("NOTIFY")) else {
                panic!("no initial NOTIFY for {}", ua.user);
            };
            h.answer(ua, &notify, 200);
        }
        h.advance(Duration::from_secs(40));
    });
    assert_eq!(h.core.server_transactions(), 0);
    per(bytes)
}

fn measure(tcp: bool) -> (i64, i64, i64) {
    let mut h = Harness::new();
    let users = live_bytes(|| {
        for i in 0..N {
            h.add_user(&format!("u{i}"), &format!("u{i}-pw"), true);
        }
    });
    let mut uas = uas(&h, tcp);
    let mut with_tx = 0;
    let registered = live_bytes(|| {
        with_tx = live_bytes(|| {
            for ua in uas.iter_mut() {
                h.register(ua, 3600);
            }
        });
        // Timer J ends the completed transactions (UDP); nothing else expires.
        h.advance(Duration::from_secs(40));
    });
    assert_eq!(h.core.registrations(), N, "every endpoint registered");
    assert_eq!(h.core.server_transactions(), 0);
    (per(users), per(registered), per(with_tx) - per(registered))
}

fn main() {
    let (user, udp, tx) = measure(false);
    let sub = {
        let mut h = Harness::new();
        for i in 0..N {
            h.add_user(&format!("u{i}"), &format!("u{i}-pw"), true);
        }
        let mut uas = uas(&h, false);
        for ua in uas.iter_mut() {
            h.register(ua, 3600);
        }
        subscriptions(&mut h, &mut uas)
    };
    let (_, tcp, _) = measure(true);
    println!("heap bytes, sans-IO core, {N} endpoints (counting allocator):");
    println!("  directory user                                  {user:>6} B");
    println!("  registered endpoint, UDP (after Timer J)        {udp:>6} B");
    println!("  registered endpoint, TCP (core side only)       {tcp:>6} B");
    println!("  completed REGISTER transaction kept for Timer J {tx:>6} B (UDP)");
    println!("  presence subscription (dialog + watcher)        {sub:>6} B");
    // A REGISTER every 20 s keeps 32 s / 20 s = 1.6 completed ones alive for Timer J.
    let at_20s = udp + tx * 16 / 10;
    println!(
        "  registered UDP endpoint at a 20 s refresh       {at_20s:>6} B (registered + 1.6 x completed)"
    );
}
