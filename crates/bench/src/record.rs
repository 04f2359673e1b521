//! What one direction of traffic did: when each message left, when its vendor took it, and
//! whether each conversation's messages came in the order they were sent.
//!
//! Messages carry `<prefix> <sequence>`; the simulators' taps report each arrival with the
//! end user it is for. One clock (this process's) measures both ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

pub struct Recorder {
    pub prefix: &'static str,
    epoch: Instant,
    next: AtomicU64,
    /// Messages sent but not yet arrived, by sequence: when each left.
    in_flight: Mutex<HashMap<u64, Instant>>,
    /// Latencies (µs) of the arrivals inside the measured period.
    latencies: Mutex<Vec<u32>>,
    /// Arrivals per second since the epoch.
    per_second: Mutex<Vec<u64>>,
    last_per_user: Mutex<HashMap<String, u64>>,
    pub sent: AtomicU64,
    pub arrived: AtomicU64,
    pub out_of_order: AtomicU64,
    pub unexpected: AtomicU64,
    /// Bounds the messages in flight in the closed-loop ("max") mode.
    pub window: Arc<Semaphore>,
    measuring: AtomicBool,
}

impl Recorder {
    pub fn new(prefix: &'static str, epoch: Instant, window: usize) -> Arc<Self> {
        Arc::new(Self {
            prefix,
            epoch,
            next: AtomicU64::new(0),
            in_flight: Mutex::default(),
            latencies: Mutex::default(),
            per_second: Mutex::default(),
            last_per_user: Mutex::default(),
            sent: AtomicU64::new(0),
            arrived: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            window: Arc::new(Semaphore::new(window)),
            measuring: AtomicBool::new(true),
        })
    }

    /// The next message's text, recorded as leaving at `at` (its scheduled time at a fixed rate,
    /// so a sender that falls behind shows as latency).
    pub fn leave(&self, at: Instant) -> String {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.in_flight).insert(seq, at);
        self.sent.fetch_add(1, Ordering::Relaxed);
        format!("{} {seq}", self.prefix)
    }

    /// A vendor took `text` for `user`.
    pub fn arrive(&self, user: &str, text: &str) {
        let Some(seq) = text.strip_prefix(self.prefix).and_then(|s| s.trim().parse::<u64>().ok()) else {
            return;
        };
        let now = Instant::now();
        let Some(left) = lock(&self.in_flight).remove(&seq) else {
            // Taken twice, or never sent by us.
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.window.add_permits(1);
        self.arrived.fetch_add(1, Ordering::Relaxed);
        {
            let mut last = lock(&self.last_per_user);
            let previous = last.entry(user.to_owned()).or_insert(0);
            if seq < *previous {
                self.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            *previous = (*previous).max(seq);
        }
        if self.measuring.load(Ordering::Relaxed) {
            let micros = u32::try_from(now.duration_since(left).as_micros()).unwrap_or(u32::MAX);
            lock(&self.latencies).push(micros);
            let second = usize::try_from(now.duration_since(self.epoch).as_secs()).unwrap_or(usize::MAX);
            let mut per_second = lock(&self.per_second);
            if per_second.len() <= second {
                per_second.resize(second + 1, 0);
            }
            if let Some(n) = per_second.get_mut(second) {
                *n += 1;
            }
        }
    }

    /// Arrivals after this are drained, not measured.
    pub fn stop_measuring(&self) {
        self.measuring.store(false, Ordering::Relaxed);
    }

    pub fn pending(&self) -> usize {
        lock(&self.in_flight).len()
    }

    /// The summary of the measured period `[from, to)` (seconds since the epoch).
    pub fn summary(&self, from: u64, to: u64) -> Summary {
        let mut latencies = lock(&self.latencies).clone();
        latencies.sort_unstable();
        let at = |q: f64| -> Duration {
            let i = ((latencies.len() as f64 - 1.0) * q).round().max(0.0) as usize;
            Duration::from_micros(latencies.get(i).copied().map_or(0, u64::from))
        };
        let per_second = lock(&self.per_second).clone();
        let seconds: Vec<u64> = (from..to).map(|s| per_second.get(s as usize).copied().unwrap_or(0)).collect();
        let total: u64 = seconds.iter().sum();
        Summary {
            sent: self.sent.load(Ordering::Relaxed),
            arrived: self.arrived.load(Ordering::Relaxed),
            lost: self.pending() as u64,
            out_of_order: self.out_of_order.load(Ordering::Relaxed),
            unexpected: self.unexpected.load(Ordering::Relaxed),
            per_second: total as f64 / seconds.len().max(1) as f64,
            slowest_second: seconds.iter().copied().min().unwrap_or(0),
            p50: at(0.50),
            p99: at(0.99),
            max: latencies.last().map_or(Duration::ZERO, |m| Duration::from_micros(u64::from(*m))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub sent: u64,
    pub arrived: u64,
    pub lost: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
    /// Mean arrivals per second over the measured period, and its slowest second.
    pub per_second: f64,
    pub slowest_second: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
