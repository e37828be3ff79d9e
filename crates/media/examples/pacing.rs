//! Pacing benchmark: how many concurrent G.711 streams one media node sends on
//! time. Runs the node on a single-threaded tokio runtime (one core), starts N
//! looping streams (a 1 s tone, PCMU, RTCP on) towards a loopback sink socket
//! that nobody reads (the kernel still does the sending work), and reports each
//! second the packets sent, the pacing lateness (p50/p99/max: how long after its
//! due time each packet went out) and the process CPU time per stream.
//!
//! ```sh
//! cargo run -p confab-media --example pacing -- 1000 10
//! ```
//! Arguments: streams (default 1000), seconds (default 10), sockets (default
//! 64: streams share them round robin, as calls share a machine's ports).
//! Linux only (CPU time from /proc/self/stat).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_media::pacer::{AtEnd, StreamSpec};
use confab_media::{Codec, MediaNode, Prompt};
use tokio::net::UdpSocket;

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')').
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 (1-based); here 11 and 12 (0-based
    // after the state field at 0).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn main() -> std::io::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let streams = args.first().copied().unwrap_or(1000) as usize;
    let seconds = args.get(1).copied().unwrap_or(10);
    let sockets = args.get(2).copied().unwrap_or(64).max(1) as usize;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let sink = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let sink_addr: SocketAddr = sink.local_addr()?;
        let mut socks = Vec::with_capacity(sockets);
        for _ in 0..sockets {
            socks.push(Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?));
        }
        let prompt = Prompt::tones("1000:1000").map_err(std::io::Error::other)?;
        let (node, _task) = MediaNode::spawn();
        // Start the streams spread over one period, as calls arrive.
        for i in 0..streams {
            let spec = StreamSpec {
                prompt: prompt.clone(),
                codec: Codec::Pcmu,
                remote: sink_addr,
                rtcp: true,
                send: true,
                at_end: AtEnd::Loop,
                ssrc: i as u32,
                seq: 0,
                timestamp: 0,
            };
            node.play(spec, socks[i % sockets].clone(), None);
            if i % (streams / 20).max(1) == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = node.stats().await;
        println!("streams={streams} sockets={sockets} (one core, current-thread runtime)");
        println!("second  packets  p50_ms  p99_ms  max_ms  send_errors  cpu_%  cpu_us_per_stream_s");
        let mut worst_p99 = Duration::ZERO;
        let mut total_cpu = Duration::ZERO;
        for s in 1..=seconds {
            let (c0, t0) = (cpu_time(), Instant::now());
            tokio::time::sleep(Duration::from_secs(1)).await;
            let st = node.stats().await.unwrap_or_default();
            let cpu = cpu_time().saturating_sub(c0);
            let wall = t0.elapsed();
            total_cpu += cpu;
            worst_p99 = worst_p99.max(st.p99);
            println!(
                "{s:>6}  {:>7}  {:>6.1}  {:>6.1}  {:>6.1}  {:>11}  {:>5.1}  {:>8.1}",
                st.packets,
                st.p50.as_secs_f64() * 1e3,
                st.p99.as_secs_f64() * 1e3,
                st.max.as_secs_f64() * 1e3,
                st.send_errors,
                cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
                cpu.as_secs_f64() * 1e6 / streams as f64 / wall.as_secs_f64(),
            );
        }
        println!(
            "summary: streams={streams} worst_p99_ms={:.1} cpu_%={:.1} cpu_us_per_stream_per_s={:.1}",
            worst_p99.as_secs_f64() * 1e3,
            total_cpu.as_secs_f64() / seconds as f64 * 100.0,
            total_cpu.as_secs_f64() * 1e6 / streams as f64 / seconds as f64
        );
        drop(sink);
        Ok(())
    })
}
