//! A per-sender send rate limit, so bursts of agent replies stay within what the number may
//! send instead of collecting 429s.
//!
//! WhatsApp counts messages per number per second, and Infobip (like the simulator) answers
//! 429 when one second holds more than the number's rate. A token bucket is not that rule: a
//! full bucket lets a burst through and then refills during the same second, so one second can
//! hold twice the rate. This keeps the time of the last `per_second` sends of each number and
//! lets a send go only when the oldest of them left more than a window ago; the window is a
//! little over a second, so sends that reach Infobip a few milliseconds apart from where they
//! left still fall in different seconds there.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, so the pacing can be tested with a paused clock.
use tokio::time::Instant;

/// One second, and a margin for the sends' different times on the wire.
const WINDOW: Duration = Duration::from_millis(1_050);

#[derive(Clone)]
pub struct SenderLimiter {
    per_second: usize,
    recent: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl SenderLimiter {
    pub fn new(per_second: u32) -> Self {
        Self { per_second: usize::try_from(per_second.max(1)).unwrap_or(usize::MAX), recent: Arc::default() }
    }

    /// Waits until `sender` may send one more message, and counts it.
    pub async fn acquire(&self, sender: &str) {
        loop {
            let wait = {
                let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                let sends = recent.entry(sender.to_owned()).or_default();
                while sends.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                    sends.pop_front();
                }
                if sends.len() < self.per_second {
                    sends.push_back(now);
                    None
                } else {
                    sends.front().map(|oldest| WINDOW.saturating_sub(now.duration_since(*oldest)))
                }
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d.max(Duration::from_millis(1))).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn allows_a_burst_then_waits_for_the_window() {
        let limiter = SenderLimiter::new(10);
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            limiter.acquire("a").await;
        }
        assert!(start.elapsed() < Duration::from_millis(5), "a number's rate may go at once");
        limiter.acquire("a").await;
        let waited = start.elapsed();
        assert!(waited >= WINDOW && waited < WINDOW + Duration::from_millis(10), "{waited:?}");
        let other = tokio::time::Instant::now();
        limiter.acquire("b").await;
        assert!(other.elapsed() < Duration::from_millis(5), "senders have separate limits");
    }

    /// What Infobip counts: no one-second window, wherever it starts, holds more sends than
    /// the rate, also from a standing start (a token bucket that starts full lets twice the
    /// rate through in its first second).
    #[tokio::test(start_paused = true)]
    async fn no_second_holds_more_than_the_rate() {
        let limiter = SenderLimiter::new(80);
        let start = tokio::time::Instant::now();
        let mut times = Vec::new();
        for i in 0..400 {
            limiter.acquire("a").await;
            times.push(start.elapsed());
            if i % 7 == 0 {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        for (i, t) in times.iter().enumerate() {
            let in_second = times[i..].iter().take_while(|u| **u < *t + Duration::from_secs(1)).count();
            assert!(in_second <= 80, "{in_second} sends in the second from {t:?}");
        }
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_millis(4 * 1_050 + 100), "paced at the rate, not slower: {elapsed:?}");
    }
}
