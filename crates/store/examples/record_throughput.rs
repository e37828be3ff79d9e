//! How many call records a second the Monitoring writers get into the store.
//!
//! Pushes N call records through a bounded channel into a writer task that does
//! what the Mediation role's record writer does (take what queued, up to a batch,
//! `Store::record_calls` in one transaction per batch), into a real SQLite file
//! (a temporary directory) or a fresh PostgreSQL database (created from
//! `CONFAB_TEST_POSTGRES_URL` and dropped afterwards).
//!
//! ```sh
//! cargo run --release -p confab-store --example record_throughput -- sqlite
//! cargo run --release -p confab-store --example record_throughput -- postgres \
//!     --records 100000 --channel 16384 --batch 1024 --rate 5000
//! ```
//!
//! Without `--rate` the producer waits for room in the channel: the result is the
//! writer's ceiling. With `--rate R` it offers R records a second and drops what
//! does not fit (as the Mediation loop does): the result shows whether the writer
//! keeps up. Printed: records written and dropped, wall-clock records/s, and this
//! process's CPU time per 1,000 records (from /proc; PostgreSQL's own CPU is not
//! included).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use confab_store::{CallDetail, Store};
use sqlx::Connection as _;
use tokio::sync::mpsc;

struct Args {
    backend: String,
    records: u64,
    channel: usize,
    batch: usize,
    rate: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let backend = it
        .next()
        .ok_or("usage: record_throughput sqlite|postgres [--records N] [--channel N] [--batch N] [--rate R]")?;
    if backend != "sqlite" && backend != "postgres" {
        return Err(format!("unknown backend {backend:?}: sqlite or postgres"));
    }
    let mut a = Args {
        backend,
        records: 50_000,
        channel: 16_384,
        batch: 1_024,
        rate: None,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: {value:?} is not a number"))?;
        match flag.as_str() {
            "--records" => a.records = n,
            "--channel" => a.channel = usize::try_from(n).map_err(|e| e.to_string())?,
            "--batch" => a.batch = usize::try_from(n).map_err(|e| e.to_string())?,
            "--rate" => a.rate = Some(n),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.channel == 0 || a.batch == 0 {
        return Err("--channel and --batch must be at least 1".into());
    }
    Ok(a)
}

/// This process's user + system CPU time (from /proc/self/stat, in clock ticks of
/// 10 ms on Linux).
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 of `rest`.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn record(i: u64) -> CallDetail {
    let now = 1_765_000_000_000 + i64::try_from(i).unwrap_or(0);
    CallDetail {
        direction: if i.is_multiple_of(2) {
            "outbound"
        } else {
            "inbound"
        }
        .to_owned(),
        caller: format!("user{:04}@bench.test", i % 1000),
        callee: format!("+1206555{:04}", i % 10_000),
        number: format!("555{:04}", i % 10_000),
        trunk: "gw1".to_owned(),
        started: now,
        answered: now + 150,
        ended: now + 1150,
        code: 200,
        attempts: "gw1:200".to_owned(),
        relayed_packets: -1,
    }
}

async fn run(store: &Store, a: &Args) -> (u64, u64, Duration, Duration) {
    let (tx, mut rx) = mpsc::channel::<CallDetail>(a.channel);
    let batch_max = a.batch;
    let writer_store = store.clone();
    let writer = tokio::spawn(async move {
        let mut written = 0u64;
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < batch_max {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            match writer_store.record_calls(&batch).await {
                Ok(()) => written += batch.len() as u64,
                Err(e) => eprintln!("writing {} records failed: {e}", batch.len()),
            }
        }
        written
    });
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let mut dropped = 0u64;
    match a.rate {
        None => {
            for i in 0..a.records {
                if tx.send(record(i)).await.is_err() {
                    break;
                }
            }
        }
        Some(rate) => {
            // Every 10 ms, the records due by then.
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut sent = 0u64;
            while sent < a.records {
                tick.tick().await;
                let due = (t0.elapsed().as_millis() as u64 * rate / 1000).min(a.records);
                while sent < due {
                    if tx.try_send(record(sent)).is_err() {
                        dropped += 1;
                    }
                    sent += 1;
                }
            }
        }
    }
    drop(tx);
    let written = writer.await.unwrap_or(0);
    (
        written,
        dropped,
        t0.elapsed(),
        cpu_time().saturating_sub(cpu0),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse_args()?;
    let dir = tempfile::tempdir()?;
    let mut drop_db: Option<(String, String)> = None;
    let store = if a.backend == "sqlite" {
        Store::open_sqlite(&dir.path().join("confab.db")).await?
    } else {
        let admin = std::env::var("CONFAB_TEST_POSTGRES_URL")
            .map_err(|_| "CONFAB_TEST_POSTGRES_URL is not set")?;
        let db = format!("confab_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let (base, _) = admin.rsplit_once('/').ok_or("no database in the URL")?;
        let url = format!("{base}/{db}");
        drop_db = Some((admin, db));
        Store::open(&url).await?
    };
    let (written, dropped, wall, cpu) = run(&store, &a).await;
    let n = store.call_details(None, 0, u32::MAX).await?.len();
    store.close().await;
    if let Some((admin, db)) = drop_db {
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {db}")))
            .execute(&mut conn)
            .await?;
    }
    let secs = wall.as_secs_f64().max(1e-9);
    println!(
        "{} records={} channel={} batch={} rate={}: written={written} (rows in the table: {n}) \
         dropped={dropped} wall={:.2}s written/s={:.0} cpu={:.2}s cpu_ms_per_1000={:.1}",
        a.backend,
        a.records,
        a.channel,
        a.batch,
        a.rate.map_or("max".to_owned(), |r| r.to_string()),
        secs,
        written as f64 / secs,
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / (written.max(1) as f64),
    );
    Ok(())
}
