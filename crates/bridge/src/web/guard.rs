//! Keeps slow and crowding clients from starving signed traffic. A webhook's signature covers
//! its whole body, so nothing can be refused before the body is read, and a client that sends
//! headers and then stalls would hold its socket (and, a thousand times over, every file
//! descriptor) forever. So: each body must arrive within `server.body_read_secs` (408 after
//! that), headers within `server.header_read_secs` (actix closes the connection), and one
//! client address has at most `server.max_requests_per_client` requests in flight: beyond
//! that it gets a 503 at once, before its body is read, and its socket is closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use futures_util::{Future, Stream};

/// The limits, and the requests in flight per client address.
#[derive(Clone)]
pub struct ClientLimits {
    per_client: usize,
    body_deadline: Duration,
    in_flight: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ClientLimits {
    pub fn new(per_client: usize, body_deadline: Duration) -> Self {
        Self { per_client, body_deadline, in_flight: Arc::default() }
    }

    /// A place for one more request of `ip`, or `None` when it has its share already.
    fn enter(&self, ip: IpAddr) -> Option<InFlight> {
        // A panic elsewhere while counting must not lock every client out: the counts stay usable.
        let mut counts = self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(ip).or_default();
        if self.per_client > 0 && *count >= self.per_client {
            return None;
        }
        *count += 1;
        Some(InFlight { ip, in_flight: self.in_flight.clone() })
    }
}

/// One request's place; leaving frees it (and forgets the address at zero).
struct InFlight {
    ip: IpAddr,
    in_flight: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Middleware applying `web::Data<ClientLimits>`.
pub async fn limit_clients(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(limits) = req.app_data::<web::Data<ClientLimits>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let place = match req.peer_addr().map(|a| a.ip()) {
        Some(ip) => match limits.enter(ip) {
            Some(place) => Some(place),
            None => {
                let refused = HttpResponse::ServiceUnavailable()
                    .insert_header(("Retry-After", "1"))
                    .insert_header(("Connection", "close"))
                    .json(serde_json::json!({ "error": "too many requests in flight from this address" }));
                return Ok(req.into_response(refused));
            }
        },
        None => None,
    };
    let payload = req.take_payload();
    req.set_payload(Payload::Stream { payload: Box::pin(Deadline::new(payload, limits.body_deadline)) });
    let response = next.call(req).await;
    drop(place);
    Ok(response?.map_into_boxed_body())
}

/// The error a body read gets once its deadline has passed.
pub fn is_deadline(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

/// A request body that fails with `TimedOut` once `deadline` has passed since the headers.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Deadline {
    fn new(inner: Payload, deadline: Duration) -> Self {
        Self { inner, sleep: Box::pin(tokio::time::sleep(deadline)), expired: false }
    }
}

impl Stream for Deadline {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "the body did not arrive in time");
            return Poll::Ready(Some(Err(PayloadError::Io(late))));
        }
        Poll::Pending
    }
}

/// How many connections each HTTP worker may hold: what the process's open-file limit leaves
/// after a reserve for the database, the log and outgoing calls, shared by the workers.
pub fn max_connections_per_worker(workers: usize) -> usize {
    const RESERVE: usize = 128;
    let limit = open_file_limit().unwrap_or(25_600);
    (limit.saturating_sub(RESERVE) / workers.max(1)).clamp(16, 25_000)
}

/// The soft limit on open files (`Max open files` of `/proc/self/limits`), where there is one.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_has_its_share_and_gets_it_back() {
        let limits = ClientLimits::new(2, Duration::from_secs(1));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let first = limits.enter(a).unwrap();
        let _second = limits.enter(a).unwrap();
        assert!(limits.enter(a).is_none(), "a third request of the same address waits its turn");
        assert!(limits.enter(b).is_some(), "other addresses are served");
        drop(first);
        assert!(limits.enter(a).is_some());
        assert!(ClientLimits::new(0, Duration::from_secs(1)).enter(a).is_some(), "0: no limit");
    }

    #[test]
    fn connections_fit_the_open_file_limit() {
        assert!(open_file_limit().is_some_and(|n| n > 0));
        assert!(max_connections_per_worker(2) >= 16);
    }
}
