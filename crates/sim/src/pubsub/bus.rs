//! The simulated event bus: topics with their current schema, a retained event log per topic,
//! and the mapping between replay ids and log positions.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use apache_avro::Schema;
use tokio::time::Instant;

use super::SimError;
use super::avro;
use pubsub_wire::proto::{ConsumerEvent, ProducerEvent, ReplayPreset};

/// Replay ids are 8-byte big-endian sequence numbers, per topic, starting at 1. Clients must
/// treat them as opaque; only the simulator reads them back.
pub(super) fn encode_replay_id(seq: u64) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}

pub(super) fn decode_replay_id(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

/// Why a subscription could not start at the position it asked for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StartError {
    UnknownTopic,
    /// The replay id is not 8 bytes: `fetch.replayid.validation.failed`.
    MalformedReplayId,
    /// The replay id names no retained event: `fetch.replayid.corrupted`.
    UnknownReplayId,
    UnknownPreset,
}

struct Stored {
    seq: u64,
    at: Instant,
    event: ProducerEvent,
}

impl Stored {
    fn to_consumer(&self) -> ConsumerEvent {
        ConsumerEvent { event: Some(self.event.clone()), replay_id: encode_replay_id(self.seq) }
    }
}

struct Topic {
    schema_id: String,
    schema: Schema,
    events: VecDeque<Stored>,
    last_seq: u64,
}

/// All topics and schemas. Guarded by a mutex in the simulator and never held across `.await`.
pub(super) struct Bus {
    topics: HashMap<String, Topic>,
    /// Every schema ever registered, by id: events keep the id they were written with, so old
    /// ids must stay resolvable after a topic's schema changes.
    schemas: HashMap<String, String>,
    retention: Duration,
}

impl Bus {
    pub(super) fn new(retention: Duration) -> Self {
        Self { topics: HashMap::new(), schemas: HashMap::new(), retention }
    }

    /// Creates a topic or replaces its current schema (keeping its events); returns the schema id.
    pub(super) fn register(&mut self, topic: &str, schema_json: &str) -> Result<String, SimError> {
        let schema = avro::parse_schema(schema_json).map_err(SimError::Schema)?;
        let schema_id = avro::schema_id(&schema);
        self.schemas.insert(schema_id.clone(), schema_json.to_owned());
        match self.topics.get_mut(topic) {
            Some(t) => {
                t.schema_id = schema_id.clone();
                t.schema = schema;
            }
            None => {
                let t = Topic { schema_id: schema_id.clone(), schema, events: VecDeque::new(), last_seq: 0 };
                self.topics.insert(topic.to_owned(), t);
            }
        }
        Ok(schema_id)
    }

    /// The current schema id and parsed schema of a topic.
    pub(super) fn schema_of(&self, topic: &str) -> Option<(&str, &Schema)> {
        self.topics.get(topic).map(|t| (t.schema_id.as_str(), &t.schema))
    }

    pub(super) fn schema_json(&self, schema_id: &str) -> Option<&str> {
        self.schemas.get(schema_id).map(String::as_str)
    }

    /// Appends an event as published (payload unchecked, like Salesforce); returns its replay id.
    pub(super) fn append(&mut self, topic: &str, event: ProducerEvent, now: Instant) -> Result<Vec<u8>, SimError> {
        let retention = self.retention;
        let t = self.topics.get_mut(topic).ok_or_else(|| SimError::UnknownTopic(topic.to_owned()))?;
        purge(t, retention, now);
        t.last_seq += 1;
        t.events.push_back(Stored { seq: t.last_seq, at: now, event });
        Ok(encode_replay_id(t.last_seq))
    }

    /// The position a new subscription starts after (0: before the first event ever).
    pub(super) fn start_position(
        &mut self,
        topic: &str,
        preset: i32,
        replay_id: &[u8],
        now: Instant,
    ) -> Result<u64, StartError> {
        let retention = self.retention;
        let t = self.topics.get_mut(topic).ok_or(StartError::UnknownTopic)?;
        purge(t, retention, now);
        match ReplayPreset::try_from(preset).map_err(|_| StartError::UnknownPreset)? {
            ReplayPreset::Latest => Ok(t.last_seq),
            ReplayPreset::Earliest => Ok(t.events.front().map_or(t.last_seq, |e| e.seq - 1)),
            ReplayPreset::Custom => {
                let seq = decode_replay_id(replay_id).ok_or(StartError::MalformedReplayId)?;
                // Valid positions: a retained event, the tip (also of a topic without events:
                // a keep-alive's replay id), and "before the first event" while nothing has been
                // purged. An id from the future or of a purged event is "corrupted", and the
                // client falls back to EARLIEST.
                let oldest = t.events.front().map_or(t.last_seq, |e| e.seq);
                let before_first = seq == 0 && oldest <= 1;
                if seq != t.last_seq && !before_first && (seq < oldest || seq > t.last_seq) {
                    return Err(StartError::UnknownReplayId);
                }
                Ok(seq)
            }
        }
    }

    /// Up to `max` retained events after position `after`, oldest first.
    pub(super) fn read_after(&mut self, topic: &str, after: u64, max: usize, now: Instant) -> Vec<ConsumerEvent> {
        let retention = self.retention;
        let Some(t) = self.topics.get_mut(topic) else {
            return Vec::new();
        };
        purge(t, retention, now);
        // Sequence numbers are dense, so the first wanted event's index follows from the oldest.
        let skip =
            t.events.front().map_or(0, |e| usize::try_from(after.saturating_sub(e.seq - 1)).unwrap_or(usize::MAX));
        t.events.iter().skip(skip).take(max).map(Stored::to_consumer).collect()
    }

    /// Every retained event of a topic.
    pub(super) fn events(&mut self, topic: &str, now: Instant) -> Vec<ConsumerEvent> {
        self.read_after(topic, 0, usize::MAX, now)
    }

    /// The replay id of the newest event ever published on a topic.
    pub(super) fn latest_replay_id(&self, topic: &str) -> Option<Vec<u8>> {
        self.topics.get(topic).filter(|t| t.last_seq > 0).map(|t| encode_replay_id(t.last_seq))
    }
}

/// Drops events older than the retention window.
fn purge(topic: &mut Topic, retention: Duration, now: Instant) {
    while topic.events.front().is_some_and(|e| now.saturating_duration_since(e.at) > retention) {
        topic.events.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus_with_events(n: usize, retention: Duration) -> (Bus, Instant) {
        let mut bus = Bus::new(retention);
        bus.register("/event/E__e", &avro::platform_event_schema_json("E__e", "T__c", "P__c")).unwrap();
        let now = Instant::now();
        for i in 0..n {
            bus.append("/event/E__e", ProducerEvent { id: i.to_string(), ..Default::default() }, now).unwrap();
        }
        (bus, now)
    }

    #[test]
    fn presets_pick_their_start() {
        let (mut bus, now) = bus_with_events(3, Duration::from_secs(60));
        let start = |bus: &mut Bus, p: ReplayPreset, id: &[u8]| bus.start_position("/event/E__e", p as i32, id, now);
        assert_eq!(start(&mut bus, ReplayPreset::Latest, &[]), Ok(3));
        assert_eq!(start(&mut bus, ReplayPreset::Earliest, &[]), Ok(0));
        assert_eq!(start(&mut bus, ReplayPreset::Custom, &encode_replay_id(2)), Ok(2));
        assert_eq!(start(&mut bus, ReplayPreset::Custom, &encode_replay_id(4)), Err(StartError::UnknownReplayId));
        assert_eq!(start(&mut bus, ReplayPreset::Custom, &[1, 2]), Err(StartError::MalformedReplayId));
        assert_eq!(bus.start_position("/event/X__e", 0, &[], now), Err(StartError::UnknownTopic));
    }

    #[test]
    fn read_after_is_exclusive_and_bounded() {
        let (mut bus, now) = bus_with_events(5, Duration::from_secs(60));
        let ids: Vec<_> = bus.read_after("/event/E__e", 2, 2, now).into_iter().map(|e| e.replay_id).collect();
        assert_eq!(ids, [encode_replay_id(3), encode_replay_id(4)]);
        assert!(bus.read_after("/event/E__e", 5, 10, now).is_empty());
    }

    #[test]
    fn retention_purges_and_invalidates_old_replay_ids() {
        let (mut bus, start) = bus_with_events(2, Duration::from_secs(10));
        let later = start + Duration::from_secs(11);
        bus.append("/event/E__e", ProducerEvent::default(), later).unwrap();
        assert_eq!(bus.events("/event/E__e", later).len(), 1);
        let custom = ReplayPreset::Custom as i32;
        assert_eq!(
            bus.start_position("/event/E__e", custom, &encode_replay_id(1), later),
            Err(StartError::UnknownReplayId)
        );
        assert_eq!(bus.start_position("/event/E__e", ReplayPreset::Earliest as i32, &[], later), Ok(2));
        assert_eq!(bus.read_after("/event/E__e", 0, 10, later).len(), 1);
    }

    #[test]
    fn schema_change_keeps_old_ids_resolvable() {
        let (mut bus, _) = bus_with_events(0, Duration::from_secs(10));
        let old = bus.schema_of("/event/E__e").unwrap().0.to_owned();
        let new = bus.register("/event/E__e", &avro::platform_event_schema_json("E__e", "K__c", "P__c")).unwrap();
        assert_ne!(old, new);
        assert!(bus.schema_json(&old).is_some());
        assert_eq!(bus.schema_of("/event/E__e").unwrap().0, new);
    }
}
