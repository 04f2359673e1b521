//! A per-sender send rate limit (a token bucket per WhatsApp number), so bursts of agent
//! replies stay within what the number may send instead of collecting 429s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, so the pacing can be tested with a paused clock.
use tokio::time::Instant;

#[derive(Clone)]
pub struct SenderLimiter {
    per_second: f64,
    buckets: Arc<Mutex<HashMap<String, (f64, Instant)>>>,
}

impl SenderLimiter {
    pub fn new(per_second: u32) -> Self {
        Self { per_second: f64::from(per_second.max(1)), buckets: Arc::default() }
    }

    /// Waits until `sender` may send one more message.
    pub async fn acquire(&self, sender: &str) {
        loop {
            let wait = {
                let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                let (tokens, last) = buckets.entry(sender.to_owned()).or_insert((self.per_second, now));
                *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.per_second);
                *last = now;
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    None
                } else {
                    Some(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
                }
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn allows_a_burst_then_paces() {
        let limiter = SenderLimiter::new(10);
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            limiter.acquire("a").await;
        }
        assert!(start.elapsed() < Duration::from_millis(5), "a full bucket lets a burst through");
        for _ in 0..10 {
            limiter.acquire("a").await;
        }
        let paced = start.elapsed();
        assert!(paced >= Duration::from_millis(900) && paced < Duration::from_millis(1200), "{paced:?}");
        let other = tokio::time::Instant::now();
        limiter.acquire("b").await;
        assert!(other.elapsed() < Duration::from_millis(5), "senders have separate buckets");
    }
}
