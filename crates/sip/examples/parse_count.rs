//! Parses one message file N times, as the `parse` benchmark does, and prints the
//! time per message. Made for counting instructions, which a busy machine does not
//! disturb the way it disturbs timings:
//!
//! ```sh
//! cargo build --release -p confab-sip --example parse_count
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/parse_count FILE typed 20000
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/parse_count FILE typed 0
//! ```
//!
//! (difference of the two `I refs` totals ÷ 20,000 = instructions per message).
//! Modes: `typed` (parse and read the core typed headers, like the benchmark's
//! `+typed` rows) or `parse` (parse only), each on a shared copy of one buffer as
//! the benchmark does; `typed-fresh` and `parse-fresh` copy the message into a new
//! buffer first, as the UDP transport does with each datagram (the copy is in the
//! count: compare fresh with fresh).

use std::hint::black_box;
use std::process::ExitCode;

use bytes::Bytes;
use confab_sip::{HeaderName, Limits, Message, NameAddr};

/// What the `parse` benchmark's `+typed` rows do per message.
fn parse_and_touch(buf: Bytes, limits: &Limits) -> usize {
    let Ok(m) = Message::parse(buf, limits) else {
        return 0;
    };
    let via = m.top_via();
    let mut n = via.branch().map_or(0, str::len) + via.host.len();
    n += m.from_tag().map_or(0, str::len);
    let to = m.to();
    n += to.uri.len() + to.tag().map_or(0, str::len);
    n += m.call_id().len();
    let (seq, method) = m.cseq();
    n += seq as usize + method.as_str().len();
    if let Some(c) = m.header(HeaderName::Contact)
        && let Ok(c) = NameAddr::parse(c)
        && let Ok(u) = c.parsed_uri()
    {
        n += u.host.len() + u.port.map_or(0, usize::from);
    }
    n + m.body().len()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, mode, n] = &args[..] else {
        eprintln!("usage: parse_count FILE typed|parse|typed-fresh|parse-fresh N");
        return ExitCode::from(2);
    };
    let (Ok(raw), Ok(n)) = (std::fs::read(file), n.parse::<usize>()) else {
        eprintln!("cannot read {file} or bad count {n}");
        return ExitCode::from(2);
    };
    let typed = mode.starts_with("typed");
    let fresh = mode.ends_with("-fresh");
    let buf = Bytes::from(raw);
    let limits = Limits::default();
    let start = std::time::Instant::now();
    let mut acc = 0usize;
    for _ in 0..n {
        let buf = if fresh {
            Bytes::copy_from_slice(black_box(&buf))
        } else {
            buf.clone()
        };
        acc += if typed {
            parse_and_touch(black_box(buf), &limits)
        } else {
            usize::from(Message::parse(black_box(buf), &limits).is_ok())
        };
    }
    let secs = start.elapsed().as_secs_f64();
    if n > 0 {
        println!(
            "{mode}: {n} messages, {:.0} ns/message (checksum {acc})",
            secs * 1e9 / n as f64
        );
    }
    ExitCode::SUCCESS
}
