//! Outbound: agent entries from Salesforce's platform event to WhatsApp.
//!
//! The [`subscriber`] reads the app's event over the Pub/Sub API and stores each entry's
//! work in the outbox together with the new replay position, in one transaction; the
//! [`relay`] job sends it through Infobip.

pub mod capabilities;
pub mod received;
pub mod reconnect;
pub mod relay;
pub mod render;
pub mod subscriber;
pub mod upload_failures;

use serde_json::{Value, json};

use crate::db::apps::WaitingMessages;
use crate::db::conversations::{self, NewMessage};
use crate::db::jobs;
use crate::db::{DbConn, DbError, Direction, MessageStatus, cursors};
use crate::worker::BackgroundJob;

/// Change Data Capture of MessagingSession: how some orgs tell that a session ended.
pub const SESSION_CHANGE_TOPIC: &str = "/data/MessagingSessionChangeEvent";

/// Namespace of the WhatsApp message ids the bridge gives agent entries: one entry, one id,
/// however often Salesforce replays it.
const MESSAGE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6279_6f63_2d6f_7574_626f_756e_642d_6d73);

/// One conversation entry from the platform event's `Payload`.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentEntry {
    pub identifier: String,
    pub entry_type: String,
    pub end_user: String,
    pub conversation_identifier: Option<String>,
    /// The whole `InteractionEvent`, kept until relayed.
    pub raw: Value,
}

impl AgentEntry {
    /// Reads the `InteractionEvent` JSON. Salesforce's own samples disagree on whether the
    /// entry is wrapped in `payload` or laid out flat beside `recipient`; both are read.
    pub fn parse(payload: &str) -> Option<Self> {
        let raw: Value = serde_json::from_str(payload).ok()?;
        let entry = raw.get("payload").filter(|p| p.get("entryType").is_some()).unwrap_or(&raw);
        let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            identifier: text(entry, "/identifier")?,
            entry_type: text(entry, "/entryType")?,
            end_user: text(&raw, "/recipient/subject")?,
            conversation_identifier: text(&raw, "/conversationIdentifier"),
            raw,
        })
    }

    /// The end of a messaging session, as learned from a change event.
    pub fn session_ended(session_id: &str, end_user: &str, conversation_identifier: Option<&str>) -> Self {
        let identifier = closing_identifier(session_id);
        let raw = json!({
            "conversationIdentifier": conversation_identifier,
            "recipient": { "appType": "custom", "subject": end_user, "role": "EndUser" },
            "payload": { "identifier": identifier, "entryType": "SessionStatusChanged",
                         "entryPayload": { "entryType": "SessionStatusChanged", "sessionStatus": "Ended", "sessionId": session_id } }
        });
        Self {
            identifier,
            entry_type: "SessionStatusChanged".into(),
            end_user: end_user.to_owned(),
            conversation_identifier: conversation_identifier.map(str::to_owned),
            raw,
        }
    }

    /// The key this entry is deduplicated by. A session's end may be told twice (the custom
    /// event's `SessionStatusChanged` and the change event): both map to one key, so the
    /// customer gets one closing message.
    fn dedupe_key(&self) -> String {
        match self.entry_payload().get("sessionId").and_then(Value::as_str) {
            Some(session) if self.entry_type == "SessionStatusChanged" => closing_identifier(session),
            _ => self.identifier.clone(),
        }
    }

    /// The entry's own payload (`entryPayload`), whichever shape the event had.
    pub fn entry_payload(&self) -> &Value {
        self.raw.pointer("/payload/entryPayload").or_else(|| self.raw.get("entryPayload")).unwrap_or(&Value::Null)
    }
}

/// Entry kinds that are Salesforce's own bookkeeping, for the agent's side only: nothing
/// for the customer to see (routing, transfers, receipts of the agent's messages).
const NOT_FOR_THE_CUSTOMER: &[&str] = &[
    "TypingStoppedIndicator",
    "DeliveryAcknowledgement",
    "RoutingWorkResult",
    "ConsultConversationInfo",
    "TransferProgress",
    "ParticipantsConferenced",
    "MessageUpdated",
    "MessageDeliveryFailed",
    "EndUserConsentUpdated",
];

/// Entries that become something on WhatsApp, or that the agent must hear could not; the
/// bookkeeping kinds are counted and let go, and so are the queue's news when the app has no
/// message for them.
pub fn is_relayed(entry: &AgentEntry, waiting: &WaitingMessages) -> bool {
    match entry.entry_type.as_str() {
        "QueuePosition" => !waiting.queue.trim().is_empty(),
        "RoutingResult" => !waiting.wait.trim().is_empty() && render::estimated_wait_minutes(entry).is_some(),
        "SessionStatusChanged" => entry.entry_payload().get("sessionStatus").and_then(Value::as_str) == Some("Ended"),
        kind => !NOT_FOR_THE_CUSTOMER.contains(&kind),
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EventsStored {
    pub queued: usize,
    pub duplicates: usize,
    pub ignored: usize,
    /// Notices for the agent stored on the inbound side (a file that did not upload).
    pub notices: usize,
}

/// Stores a batch of entries with their relay jobs and moves the cursor to `replay_id`
/// (call inside one write transaction: the position never gets ahead of the work).
pub fn store(
    conn: &mut DbConn,
    app_id: &str,
    topic: &str,
    default_sender: Option<&str>,
    waiting: &WaitingMessages,
    entries: &[AgentEntry],
    replay_id: &str,
) -> Result<EventsStored, DbError> {
    let now = crate::db::now();
    let mut stored = EventsStored::default();
    let mut new_jobs = Vec::new();
    for entry in entries {
        if entry.entry_type == "EndUserConsentUpdated" {
            honour_consent(conn, app_id, entry, now)?;
            stored.ignored += 1;
            continue;
        }
        if entry.entry_type == "MessageUpdated" {
            stored.notices += upload_failures::tell_agent(conn, app_id, entry)?;
            stored.ignored += 1;
            continue;
        }
        if !is_relayed(entry, waiting) {
            stored.ignored += 1;
            continue;
        }
        let Some(conversation) = find_conversation(conn, app_id, entry, default_sender, now)? else {
            stored.ignored += 1;
            continue;
        };
        let key = entry.dedupe_key();
        let provider_id = uuid::Uuid::new_v5(&MESSAGE_NAMESPACE, format!("{app_id}/{key}").as_bytes()).to_string();
        let body = entry.raw.to_string();
        let inserted = conversations::insert_message(
            conn,
            &NewMessage {
                app_id,
                conversation_id: conversation,
                direction: Direction::Outbound,
                provider_message_id: &provider_id,
                kind: &entry.entry_type,
                body: Some(&body),
                status: MessageStatus::Queued,
                received_at: Some(now),
                sf_entry_id: Some(&key),
            },
            now,
        )?;
        match inserted {
            Some(message_id) => {
                let relay = relay::RelayOutbound { message_id, parts_sent: 0 };
                new_jobs.push(relay.to_job()?.for_app(app_id).ordered_by(crate::inbound::ordering_key(conversation)));
                stored.queued += 1;
            }
            None => stored.duplicates += 1,
        }
    }
    jobs::enqueue(conn, &new_jobs)?;
    cursors::set(conn, app_id, topic, replay_id)?;
    Ok(stored)
}

/// Salesforce's record of the customer's consent (an agent or a flow changed it, or the
/// customer answered a consent request): an opt-out holds marketing templates back, as
/// WhatsApp's own STOP does, and any opt-in lifts it. Salesforce tells the customer itself.
fn honour_consent(
    conn: &mut DbConn,
    app_id: &str,
    entry: &AgentEntry,
    now: chrono::NaiveDateTime,
) -> Result<(), DbError> {
    let payload = entry.entry_payload();
    let subject = payload.get("endUserSubject").and_then(Value::as_str).unwrap_or(&entry.end_user);
    let Some(status) = payload.get("consentStatus").and_then(Value::as_str) else { return Ok(()) };
    let Some(conversation) =
        conversations::find_for_end_user(conn, app_id, subject, entry.conversation_identifier.as_deref())?
    else {
        return Ok(());
    };
    let opted_out = status == "OptedOut";
    conversations::set_marketing_opt_out(conn, conversation, opted_out.then_some(now))?;
    tracing::info!(app.id = %app_id, opted_out, "consent changed in Salesforce");
    Ok(())
}

fn closing_identifier(session_id: &str) -> String {
    format!("session-ended:{session_id}")
}

/// Turns session ids that a change event reported as ended into entries, for [`store`].
pub fn session_ends(conn: &mut DbConn, app_id: &str, sessions: &[String]) -> Result<Vec<AgentEntry>, DbError> {
    let mut entries = Vec::new();
    for session in sessions {
        if let Some(c) = conversations::by_session(conn, app_id, session)? {
            entries.push(AgentEntry::session_ended(session, &c.end_user_id, c.sf_conversation_id.as_deref()));
        }
    }
    Ok(entries)
}

/// The bridge's conversation for an entry: by Salesforce's conversation id, else by the end
/// user (a conversation Salesforce started, e.g. proactively, on the app's first sender).
fn find_conversation(
    conn: &mut DbConn,
    app_id: &str,
    entry: &AgentEntry,
    default_sender: Option<&str>,
    now: chrono::NaiveDateTime,
) -> Result<Option<i64>, DbError> {
    if let Some(found) =
        conversations::find_for_end_user(conn, app_id, &entry.end_user, entry.conversation_identifier.as_deref())?
    {
        return Ok(Some(found));
    }
    match default_sender {
        Some(sender) => Ok(Some(conversations::upsert(conn, app_id, &entry.end_user, sender, now)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_payload_shapes() {
        let wrapped = r#"{"conversationIdentifier":"c1","channelAddressIdentifier":"ch","recipient":{"subject":"4477","role":"EndUser","appType":"custom"},
            "payload":{"identifier":"e1","entryType":"Message","entryPayload":{"entryType":"Message","abstractMessage":{"messageType":"StaticContentMessage"}}}}"#;
        let flat = r#"{"channelAddressIdentifier":"ch","recipient":{"subject":"4477"},"identifier":"e2","entryType":"Message",
            "entryPayload":{"entryType":"Message"}}"#;
        let a = AgentEntry::parse(wrapped).unwrap();
        assert_eq!(
            (a.identifier.as_str(), a.end_user.as_str(), a.conversation_identifier.as_deref()),
            ("e1", "4477", Some("c1"))
        );
        assert_eq!(a.entry_payload()["abstractMessage"]["messageType"], "StaticContentMessage");
        let b = AgentEntry::parse(flat).unwrap();
        assert_eq!((b.identifier.as_str(), b.entry_payload()["entryType"].as_str()), ("e2", Some("Message")));
        assert!(AgentEntry::parse("{}").is_none());
    }
}
