//! Reading the Pub/Sub stream in batches: every response already received is taken together.
//!
//! Salesforce sends events as they are published, often one per response. Storing each
//! response in a write of its own held the stream to about one event per commit, and under
//! load the subscription fell behind by a tenth of a second and more. The responses waiting
//! when one is read are merged and stored in one write; Salesforce's credit (at most 100
//! events outstanding) bounds what one merge can hold.

use pubsub_wire::proto::{ConsumerEvent, FetchResponse};

/// The stream's next item when one is ready: `None` when nothing has arrived yet.
pub type Ready = Option<Result<Option<FetchResponse>, tonic::Status>>;

/// What one read brought.
pub struct Received {
    /// The events of every response taken, in the order they came.
    pub events: Vec<ConsumerEvent>,
    /// The last response taken: its position (for a keep-alive) and the credit still owed.
    pub last: FetchResponse,
    /// The end of the stream or its error, when one came right after them: handled once the
    /// events before it are stored.
    pub ended: Option<Result<(), tonic::Status>>,
}

/// Takes `first` and every response `ready` already has.
pub fn take_ready(mut first: FetchResponse, mut ready: impl FnMut() -> Ready) -> Received {
    let mut events = std::mem::take(&mut first.events);
    let mut last = first;
    let mut ended = None;
    while let Some(next) = ready() {
        match next {
            Ok(Some(mut more)) => {
                events.append(&mut more.events);
                last = more;
            }
            Ok(None) => {
                ended = Some(Ok(()));
                break;
            }
            Err(status) => {
                ended = Some(Err(status));
                break;
            }
        }
    }
    Received { events, last, ended }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use pubsub_wire::proto::ProducerEvent;

    use super::*;

    fn response(ids: &[&str], pending: i32) -> FetchResponse {
        FetchResponse {
            events: ids
                .iter()
                .map(|id| ConsumerEvent {
                    event: Some(ProducerEvent { id: (*id).to_owned(), ..Default::default() }),
                    replay_id: id.as_bytes().to_vec(),
                })
                .collect(),
            latest_replay_id: ids.last().map(|id| id.as_bytes().to_vec()).unwrap_or_default(),
            pending_num_requested: pending,
            ..Default::default()
        }
    }

    fn ids(received: &Received) -> Vec<String> {
        received.events.iter().filter_map(|e| e.event.as_ref().map(|e| e.id.clone())).collect()
    }

    #[test]
    fn responses_already_received_are_taken_together_in_order() {
        let mut waiting: VecDeque<Ready> = VecDeque::from([
            Some(Ok(Some(response(&["b", "c"], 97)))),
            Some(Ok(Some(response(&["d"], 96)))),
            None,
            Some(Ok(Some(response(&["e"], 95)))),
        ]);
        let received = take_ready(response(&["a"], 99), || waiting.pop_front().flatten());
        assert_eq!(ids(&received), ["a", "b", "c", "d"]);
        assert_eq!(received.last.pending_num_requested, 96, "the credit is the last response's");
        assert!(received.ended.is_none());
        assert_eq!(waiting.len(), 1, "it stops where no response is there yet: a later one is left for the next read");
    }

    #[test]
    fn an_error_after_events_leaves_them_to_be_stored_first() {
        let mut waiting: VecDeque<Ready> = VecDeque::from([
            Some(Ok(Some(response(&["b"], 98)))),
            Some(Err(tonic::Status::unavailable("gone"))),
            Some(Ok(Some(response(&["never"], 97)))),
        ]);
        let received = take_ready(response(&["a"], 99), || waiting.pop_front().flatten());
        assert_eq!(ids(&received), ["a", "b"]);
        assert!(matches!(&received.ended, Some(Err(s)) if s.message() == "gone"));
        assert_eq!(waiting.len(), 1, "nothing after the error is read");
    }

    #[test]
    fn a_keep_alive_alone_keeps_its_position() {
        let keep_alive =
            FetchResponse { latest_replay_id: b"p9".to_vec(), pending_num_requested: 100, ..Default::default() };
        let mut waiting: VecDeque<Ready> = VecDeque::from([Some(Ok(None))]);
        let received = take_ready(keep_alive, || waiting.pop_front().flatten());
        assert!(received.events.is_empty());
        assert_eq!(received.last.latest_replay_id, b"p9");
        assert!(matches!(received.ended, Some(Ok(()))), "the stream's end comes after");
    }
}
