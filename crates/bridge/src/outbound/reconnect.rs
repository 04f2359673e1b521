//! When a broken Pub/Sub subscription is opened again.
//!
//! Failures back off exponentially (0.5 s doubling, at most a minute), but only while streams
//! keep failing: once a stream has been healthy (it delivered a response, events or a
//! keep-alive), the next break starts the count again. A server that closed the connection on
//! purpose (a GOAWAY, for too many pings or a redeploy) is not a failure at all: the
//! subscription opens again at once, from the stored position.

use std::time::Duration;

const INITIAL: Duration = Duration::from_millis(500);
const MAX: Duration = Duration::from_secs(60);

/// How a stream ended, as far as reconnecting is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It failed (connection refused, reset, an error status).
    Failed,
    /// The server let the connection go (GOAWAY): open it again now.
    Closed,
}

/// The reconnect schedule of one subscription.
#[derive(Debug, Default, Clone)]
pub struct Reconnect {
    failures: u32,
}

impl Reconnect {
    /// How long to wait before opening the stream again; `healthy` says whether it delivered
    /// anything before it ended.
    pub fn after(&mut self, ended: Ended, healthy: bool) -> Duration {
        if healthy {
            self.failures = 0;
        }
        match ended {
            Ended::Closed => Duration::ZERO,
            Ended::Failed => {
                self.failures = self.failures.saturating_add(1);
                INITIAL.saturating_mul(1 << self.failures.min(7)).min(MAX)
            }
        }
    }
}

/// Whether a gRPC status is the server closing the connection on purpose: HTTP/2 GOAWAY,
/// for instance `too_many_pings` (gRPC servers refuse pings more often than they allow) or a
/// graceful restart.
pub fn is_server_goaway(status: &tonic::Status) -> bool {
    let text = status.message().to_ascii_lowercase();
    matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Internal | tonic::Code::Unknown)
        && (text.contains("goaway") || text.contains("too_many_pings") || text.contains("too many pings"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_until_a_stream_is_healthy_again() {
        let mut r = Reconnect::default();
        let delays: Vec<u64> = (0..4).map(|_| r.after(Ended::Failed, false).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8]);
        // A healthy stream that then breaks starts the schedule again.
        assert_eq!(r.after(Ended::Failed, true), Duration::from_secs(1));
        for _ in 0..20 {
            r.after(Ended::Failed, false);
        }
        assert_eq!(r.after(Ended::Failed, false), MAX, "capped");
    }

    #[test]
    fn a_goaway_reconnects_at_once_and_counts_no_failure() {
        let mut r = Reconnect::default();
        r.after(Ended::Failed, false);
        assert_eq!(r.after(Ended::Closed, false), Duration::ZERO);
        assert_eq!(r.after(Ended::Failed, false), Duration::from_secs(2), "the earlier failure still counts");
        let goaway = tonic::Status::unavailable("h2 protocol error: error received from peer: GOAWAY too_many_pings");
        assert!(is_server_goaway(&goaway));
        assert!(!is_server_goaway(&tonic::Status::unavailable("connection refused")));
    }
}
