//! Digest checks per second: the server side of one authenticated request
//! (parse the `Authorization` value, check the nonce's HMAC and opaque, recompute
//! the MD5 or SHA-256 response, record the nonce-count), and the challenge a 401
//! carries. Every verified request uses a fresh nonce with `nc=00000001`, as a
//! REGISTER after a 401 does, so the replay table grows as it does under load.
//! Criterion reports checks per second (`Throughput::Elements(1)`). Run on one
//! core: `taskset -c 1 cargo bench -p confab-auth --bench digest`.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use confab_auth::digest::{Algorithm, DigestServer, Ha1s, compute_response};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;

const REALM: &str = "bench.test";
const USER: &str = "user0001";
const URI: &str = "sip:bench.test";
const T0: u64 = 1_700_000_000_000;

/// The `Authorization` value a client sends for a fresh nonce (SIPp's layout).
fn authorization(server: &DigestServer, rng: &mut StdRng, alg: Algorithm, ha1: &str) -> String {
    let nonce = server.new_nonce(REALM, T0, rng);
    let opaque = server.opaque(REALM);
    let response = compute_response(
        alg,
        ha1,
        &nonce,
        Some("00000001"),
        Some("6b8b4567"),
        Some("auth"),
        "REGISTER",
        URI,
    );
    format!(
        "Digest username=\"{USER}\",realm=\"{REALM}\",cnonce=\"6b8b4567\",nc=00000001,\
         qop=auth,uri=\"{URI}\",nonce=\"{nonce}\",response=\"{response}\",\
         algorithm={},opaque=\"{opaque}\"",
        alg.name()
    )
}

fn bench_verify(c: &mut Criterion, name: &str, alg: Algorithm) {
    let ha1s = Ha1s::from_password(USER, REALM, "pw");
    let ha1 = match alg {
        Algorithm::Sha256 => confab_auth::credentials::ha1_sha256(USER, REALM, "pw"),
        _ => confab_auth::credentials::ha1_md5(USER, REALM, "pw"),
    };
    let server = RefCell::new(DigestServer::new([7u8; 32], Duration::from_secs(300)));
    let mut rng = StdRng::seed_from_u64(1);
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| {
        b.iter_batched(
            || authorization(&server.borrow(), &mut rng, alg, &ha1),
            |hdr| {
                let r = server.borrow_mut().verify(
                    "REGISTER",
                    black_box(&hdr),
                    |_, _| Some(ha1s.clone()),
                    T0 + 1_000,
                );
                debug_assert!(r.is_ok());
                r
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn verify_md5(c: &mut Criterion) {
    bench_verify(c, "verify MD5 (fresh nonce, nc=1)", Algorithm::Md5);
}

fn verify_sha256(c: &mut Criterion) {
    bench_verify(c, "verify SHA-256 (fresh nonce, nc=1)", Algorithm::Sha256);
}

fn challenge(c: &mut Criterion) {
    let server = DigestServer::new([7u8; 32], Duration::from_secs(300));
    let mut rng = StdRng::seed_from_u64(2);
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Elements(1));
    g.bench_function("challenge (nonce + opaque + both header values)", |b| {
        b.iter(|| server.challenge(black_box(REALM), T0, false, &mut rng))
    });
    g.finish();
}

criterion_group!(benches, verify_md5, verify_sha256, challenge);
criterion_main!(benches);
