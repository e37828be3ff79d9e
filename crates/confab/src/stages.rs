//! Where a SIP message waits inside the front end, measured for operators
//! (`confab_sip_stage_seconds` and the queue gauges on `/metrics`): the
//! transport stamps each message when it reads it, the core loop reports here
//! when it takes a message and when a batch's outputs are handed back to the
//! transport. See docs/performance.md, "Where a request waits".

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use confab_frontend::Metrics;
use confab_transport::{Event, UdpSocketStats};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// The core loop's clock for one batch at a time.
pub struct StageClock {
    metrics: Arc<Metrics>,
    /// Read times of the messages of the current batch.
    stamps: Vec<Instant>,
    /// When the core took the batch's first event.
    started: Option<Instant>,
    events: usize,
}

impl StageClock {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        StageClock {
            metrics,
            stamps: Vec::with_capacity(1024),
            started: None,
            events: 0,
        }
    }

    /// The core task takes `ev` at `now`.
    pub fn taken(&mut self, ev: &Event, now: Instant) {
        self.started.get_or_insert(now);
        self.events += 1;
        if let Event::Message(m, _) = ev
            && let Some(read) = m.received_at()
        {
            self.metrics
                .stages
                .queue
                .observe(now.saturating_duration_since(read));
            self.stamps.push(read);
        }
    }

    /// The batch's outputs were handed to the transport; `waiting` events are
    /// queued for the core and `udp_waiting` batches for the UDP sender.
    pub fn delivered(&mut self, waiting: usize, udp_waiting: usize) {
        let Some(started) = self.started.take() else {
            return;
        };
        let done = Instant::now();
        let stages = &self.metrics.stages;
        stages.core.observe(done.saturating_duration_since(started));
        for read in self.stamps.drain(..) {
            stages
                .receive_to_send
                .observe(done.saturating_duration_since(read));
        }
        let m = &self.metrics;
        Metrics::set(&m.sip_event_queue_depth, waiting);
        m.sip_event_queue_depth_max
            .fetch_max(waiting as u64, Ordering::Relaxed);
        m.sip_core_batch_max
            .fetch_max(self.events as u64, Ordering::Relaxed);
        Metrics::set(&m.udp_send_queue_depth, udp_waiting);
        self.events = 0;
    }
}

/// Copies the kernel's figures for the SIP UDP socket into the metrics every
/// `every`, until `stop` changes.
pub fn sample_udp_socket(
    sock: Arc<UdpSocket>,
    metrics: Arc<Metrics>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            // Reading /proc is a blocking call, but on an in-memory table and once
            // a second: not worth a blocking-pool thread.
            if let Some(UdpSocketStats {
                rx_queue_bytes,
                drops,
            }) = confab_transport::udp_socket_stats(&sock)
            {
                metrics
                    .udp_socket_receive_queue_bytes
                    .store(rx_queue_bytes, Ordering::Relaxed);
                metrics
                    .udp_socket_drops_total
                    .store(drops, Ordering::Relaxed);
            }
        }
    });
}
