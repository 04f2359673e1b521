//! When to try a failed job again: capped exponential backoff with jitter, never sooner than
//! the remote side asked for (`Retry-After`).

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Delay before attempt `attempts + 1`, after `attempts` failed ones (1-based).
    /// "Equal jitter": half the exponential delay is fixed, half random, so retries of jobs
    /// that failed together spread out but none comes back immediately.
    pub fn delay(&self, attempts: i32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempts.saturating_sub(1).clamp(0, 30) as u32;
        let base = self.initial.saturating_mul(1u32 << exponent).min(self.max);
        let half = base / 2;
        let jitter = Duration::from_nanos(fastrand::u64(0..=half.as_nanos().min(u128::from(u64::MAX)) as u64));
        let delay = half + jitter;
        match retry_after {
            // The server's wish wins over our schedule, within our cap.
            Some(wanted) => delay.max(wanted.min(self.max)),
            None => delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff { initial: Duration::from_millis(500), max: Duration::from_secs(60) }
    }

    #[test]
    fn grows_exponentially_within_jitter_bounds() {
        let b = backoff();
        for attempt in 1..=6 {
            let full = Duration::from_millis(500 * (1 << (attempt - 1)));
            for _ in 0..50 {
                let d = b.delay(attempt, None);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} outside {:?}..={full:?}", full / 2);
            }
        }
    }

    #[test]
    fn is_capped() {
        let b = backoff();
        for _ in 0..50 {
            assert!(b.delay(40, None) <= Duration::from_secs(60));
        }
    }

    #[test]
    fn honours_retry_after_up_to_the_cap() {
        let b = backoff();
        assert!(b.delay(1, Some(Duration::from_secs(10))) >= Duration::from_secs(10));
        assert_eq!(b.delay(1, Some(Duration::from_secs(3600))), Duration::from_secs(60));
    }
}
