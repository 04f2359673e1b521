//! One `Subscribe` stream: credit-based flow control, keep-alives and injected failures.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, Streaming};

use super::Shared;
use super::bus::{StartError, decode_replay_id, encode_replay_id};
use super::status::{plain_status, status_with_code, unavailable};
use super::wire::error_codes;
use pubsub_wire::proto::{FetchRequest, FetchResponse};

/// Most events a client may have requested and not yet received (Pub/Sub flow control).
pub const MAX_OUTSTANDING: i32 = 100;

type Outbound = mpsc::Sender<Result<FetchResponse, Status>>;

/// How long a failing stream waits to hand its final status to a client that is not reading.
const FINAL_SEND_WAIT: Duration = Duration::from_secs(5);

/// Counts the stream as open from its start position on, for as long as its task runs.
struct OpenStream<'a>(&'a Shared);

impl<'a> OpenStream<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.open_streams.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Runs the stream until the client leaves or it fails; a failure is sent as the last item,
/// which tonic turns into the call's status and trailers.
pub(super) async fn run(shared: Arc<Shared>, inbound: Streaming<FetchRequest>, tx: Outbound, rpc_id: String) {
    if let Err(status) = serve(&shared, inbound, &tx, &rpc_id).await {
        tracing::debug!(rpc_id, code = ?status.code(), "simulated Subscribe stream failed");
        // Bounded: a client that stopped reading must not keep the task (and shutdown) waiting.
        let _ = tokio::time::timeout(FINAL_SEND_WAIT, tx.send(Err(status))).await;
    }
}

/// Sends one response unless the stream is broken or closed meanwhile. `Ok(false)`: the client left.
async fn send(
    shared: &Shared,
    broken: &CancellationToken,
    tx: &Outbound,
    response: FetchResponse,
    rpc_id: &str,
) -> Result<bool, Status> {
    tokio::select! {
        sent = tx.send(Ok(response)) => Ok(sent.is_ok()),
        _ = broken.cancelled() => Err(unavailable(rpc_id)),
        _ = shared.closed.cancelled() => Err(unavailable(rpc_id)),
    }
}

/// Adds credit, treating what exceeds the outstanding cap as the cap (as Salesforce does).
fn add_credit(pending: i32, requested: i32) -> i32 {
    pending.saturating_add(requested.max(0)).min(MAX_OUTSTANDING)
}

fn start_error(e: StartError, topic: &str, rpc_id: &str) -> Status {
    match e {
        StartError::UnknownTopic => plain_status(Code::NotFound, &format!("topic {topic} not found"), rpc_id),
        StartError::UnknownPreset => plain_status(Code::InvalidArgument, "unknown replay preset", rpc_id),
        // Salesforce answers a bad replay id with INVALID_ARGUMENT and the reason in the trailer.
        StartError::MalformedReplayId => status_with_code(
            Code::InvalidArgument,
            "The replay ID could not be validated.",
            error_codes::REPLAY_ID_VALIDATION_FAILED,
            rpc_id,
        ),
        StartError::UnknownReplayId => status_with_code(
            Code::InvalidArgument,
            "The replay ID is unknown or no longer retained.",
            error_codes::REPLAY_ID_CORRUPTED,
            rpc_id,
        ),
    }
}

async fn serve(
    shared: &Shared,
    mut inbound: Streaming<FetchRequest>,
    tx: &Outbound,
    rpc_id: &str,
) -> Result<(), Status> {
    // Taken before the first request so that `break_streams` also hits streams still starting.
    let broken = shared.break_token();
    let first = tokio::select! {
        _ = broken.cancelled() => return Err(unavailable(rpc_id)),
        _ = shared.closed.cancelled() => return Err(unavailable(rpc_id)),
        _ = tx.closed() => return Ok(()),
        first = inbound.message() => first,
    };
    let Ok(Some(first)) = first else {
        return Ok(()); // the client left before asking for anything
    };
    let topic = first.topic_name;
    if topic.is_empty() {
        return Err(plain_status(Code::InvalidArgument, "topic_name is required", rpc_id));
    }
    let mut position = shared
        .bus()
        .start_position(&topic, first.replay_preset, &first.replay_id, Instant::now())
        .map_err(|e| start_error(e, &topic, rpc_id))?;
    // Counted from here: an open stream has its position, so an event published after a test
    // sees the stream open is delivered on it, whatever the replay preset.
    let _open = OpenStream::new(shared);
    let mut pending = add_credit(0, first.num_requested);
    let mut inbound_open = true;
    let mut published = shared.published.subscribe();
    let keepalive = shared.config.keepalive_interval;
    let credit_timeout = shared.config.credit_timeout;
    let mut last_sent = Instant::now();

    loop {
        if broken.is_cancelled() || shared.closed.is_cancelled() {
            return Err(unavailable(rpc_id));
        }
        if pending > 0 {
            let want = usize::try_from(pending).unwrap_or(0);
            let mut events = shared.bus().read_after(&topic, position, want, Instant::now());
            let (allowed, trip) = shared.fault_allowance(events.len());
            events.truncate(allowed);
            let sent = !events.is_empty();
            if let Some(last) = events.last().and_then(|e| decode_replay_id(&e.replay_id)) {
                position = last;
                pending -= i32::try_from(events.len()).unwrap_or(MAX_OUTSTANDING);
                let response = FetchResponse {
                    events,
                    latest_replay_id: encode_replay_id(position),
                    rpc_id: rpc_id.to_owned(),
                    pending_num_requested: pending,
                };
                if !send(shared, &broken, tx, response, rpc_id).await? {
                    return Ok(());
                }
                last_sent = Instant::now();
            }
            if trip {
                shared.break_streams();
            }
            if sent {
                continue;
            }
        }
        tokio::select! {
            _ = broken.cancelled() => return Err(unavailable(rpc_id)),
            _ = shared.closed.cancelled() => return Err(unavailable(rpc_id)),
            _ = tx.closed() => return Ok(()),
            message = inbound.message(), if inbound_open => match message {
                Ok(Some(request)) => {
                    if !request.topic_name.is_empty() && request.topic_name != topic {
                        let msg = format!("topic_name {} does not match the stream's topic", request.topic_name);
                        return Err(plain_status(Code::InvalidArgument, &msg, rpc_id));
                    }
                    pending = add_credit(pending, request.num_requested);
                }
                // A half-closed client can still receive what it asked for.
                Ok(None) => inbound_open = false,
                Err(_) => return Ok(()),
            },
            changed = published.changed() => if changed.is_err() {
                return Ok(());
            },
            // Credit used up: the client has this long to ask for more, then the stream closes.
            _ = sleep_until(last_sent + credit_timeout), if pending == 0 => {
                tracing::debug!(rpc_id, "no credit left and none asked for: closing the simulated stream");
                return Ok(());
            }
            _ = sleep_until(last_sent + keepalive), if pending > 0 => {
                // Idle with credit left: an empty batch tells the client where the subscription
                // stands, on a topic without events too. It carries the last position delivered,
                // so storing it never skips an undelivered event.
                let response = FetchResponse {
                    events: Vec::new(),
                    latest_replay_id: encode_replay_id(position),
                    rpc_id: rpc_id.to_owned(),
                    pending_num_requested: pending,
                };
                if !send(shared, &broken, tx, response, rpc_id).await? {
                    return Ok(());
                }
                last_sent = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_accumulates_up_to_the_cap() {
        assert_eq!(add_credit(0, 30), 30);
        assert_eq!(add_credit(30, 50), 80);
        assert_eq!(add_credit(80, 50), MAX_OUTSTANDING);
        assert_eq!(add_credit(10, -5), 10);
        assert_eq!(add_credit(0, i32::MAX), MAX_OUTSTANDING);
    }
}
