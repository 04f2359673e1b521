//! The `import_handover` job: reads the bot conversation from Infobip (every page, oldest
//! first), opens the user's Salesforce conversation with the routing attributes, and puts
//! the transcript in, in order. The job holds its conversation's place in the outbox, so
//! what the user writes meanwhile waits behind it.
//!
//! Two ways in: the `conversationHistory` API, which Salesforce reserves for some channels
//! (error 10057 elsewhere), or one entry per turn with the speaker's label. Progress is
//! stored per message, so a retry continues where the last attempt stopped, and the job
//! hands its lease back every few seconds (`JobFailure::Resume`) on long transcripts.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::transcript::{self, Turn};
use crate::db::conversations::{self, Conversation, Message, NewMessage};
use crate::db::handovers::{self, Handover, transcript_message_id};
use crate::db::{DbError, Direction, HandoverStatus, ImportMethod, MessageStatus};
use crate::directory::ActiveApp;
use crate::inbound::TRANSCRIPT_KIND_PREFIX;
use crate::inbound::deliver::{deliver, entry_id};
use crate::inbound::render::{Rendered, labelled, render};
use crate::jobs::JobContext;
use crate::salesforce::requests::{
    AbstractMessage, EntryPayload, HistoryEntry, HistoryParticipant, HistoryRequest, Participant,
};
use crate::worker::{Attempt, BackgroundJob, JobFailure};

/// Salesforce takes at most 25 entries per `conversationHistory` call, none older than 24 h.
const HISTORY_BATCH: usize = 25;
const HISTORY_MAX_AGE: chrono::Duration = chrono::Duration::hours(24);
/// "Only Bring Your Own Channel for CCaaS partners can access" / "environment isn't ready".
const HISTORY_REFUSED_CODES: &[i64] = &[10057, 10063];
/// Ids of the lines that open and close a transcript posted as entries.
pub const INTRO: &str = "~intro";
pub const OUTRO: &str = "~outro";
/// Infobip conversations longer than this many pages are cut (a guard against a paging loop).
const MAX_PAGES: usize = 1000;

/// Imports the transcript of handover `handover_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportHandover {
    pub handover_id: String,
}

impl BackgroundJob for ImportHandover {
    const KIND: &'static str = "import_handover";
    type Context = JobContext;

    async fn run(self, ctx: &JobContext, _attempt: &Attempt) -> Result<(), JobFailure> {
        let started = Instant::now();
        let id = self.handover_id;
        let (handover, conversation) = load(ctx, &id).await?;
        if handover.status == HandoverStatus::Imported {
            return Ok(());
        }
        let app = ctx.active_app(&handover.app_id).await?;
        let import = Import {
            ctx,
            app: &app,
            started,
            page_size: ctx.settings.infobip.conversation_page_size,
            slice: Duration::from_millis(ctx.settings.worker.slice_ms),
        };
        let result = import.import(handover, conversation).await;
        if let Err(JobFailure::Permanent { reason }) = &result {
            let reason = reason.clone();
            ctx.db.write(move |c| handovers::set_failed(c, &id, &reason)).await?;
        }
        result
    }
}

async fn load(ctx: &JobContext, id: &str) -> Result<(Handover, Conversation), JobFailure> {
    let id = id.to_owned();
    ctx.db
        .run(move |c| {
            let Some(h) = handovers::find(c, &id)? else { return Ok(None) };
            Ok(conversations::find(c, h.conversation_id)?.map(|conv| (h, conv)))
        })
        .await?
        .ok_or_else(|| JobFailure::permanent("the handover no longer exists"))
}

/// One run of an import.
struct Import<'a> {
    ctx: &'a JobContext,
    app: &'a ActiveApp,
    started: Instant,
    page_size: usize,
    /// How long one run may work before giving its lease back.
    slice: Duration,
}

impl Import<'_> {
    async fn import(&self, mut handover: Handover, mut conversation: Conversation) -> Result<(), JobFailure> {
        let app = self.app;
        if handover.method.is_none() {
            let turns = self.fetch(&handover, &conversation).await?;
            conversation = self.establish(&handover, conversation).await?;
            let method = self.choose_method(&turns);
            handover = self.store(handover, &turns, method).await?;
            tracing::info!(app.id = %app.id, handover.id = %handover.id, messages = turns.len(), method = %method, "transcript fetched");
        }
        // Read once per run (and again after a switch of method); each step below records
        // its own progress, so a retry reads what is still pending.
        let mut pending = self.pending(&handover).await?;
        let mut progressed = false;
        while !pending.is_empty() {
            if progressed && self.started.elapsed() >= self.slice {
                return Err(JobFailure::Resume { progress: format!("{} transcript messages to go", pending.len()) });
            }
            if handover.method == Some(ImportMethod::History) {
                match self.post_history(&conversation, pending.make_contiguous()).await {
                    Err(HistoryFailure::Salesforce(e))
                        if e.is_permanent()
                            && e.code().is_some_and(|c| HISTORY_REFUSED_CODES.contains(&c))
                            && app.transcript.import == "auto" =>
                    {
                        tracing::info!(app.id = %app.id, code = e.code(), "Salesforce refuses the conversationHistory API for this channel; posting the transcript as entries");
                        if let Ok(mut refused) = self.ctx.history_refused.lock() {
                            refused.insert(app.id.clone());
                        }
                        handover = self.switch_to_entries(handover).await?;
                        pending = self.pending(&handover).await?;
                    }
                    Err(e) => return Err(e.into()),
                    Ok(()) => {
                        pending.drain(..pending.len().min(HISTORY_BATCH));
                        progressed = true;
                    }
                }
            } else {
                // Later entries land in the conversation the first one opened.
                let first = pending.pop_front().ok_or_else(|| JobFailure::retry("transcript changed"))?;
                deliver(self.ctx, app, first, &conversation, None, None).await?;
                progressed = true;
                if conversation.sf_conversation_id.is_none() {
                    let id = conversation.id;
                    conversation = self
                        .ctx
                        .db
                        .run(move |c| conversations::find(c, id))
                        .await?
                        .ok_or_else(|| JobFailure::permanent("the conversation no longer exists"))?;
                }
            }
        }
        self.finish(&handover).await
    }

    /// The transcript messages not yet in Salesforce, in order.
    async fn pending(&self, handover: &Handover) -> Result<VecDeque<Message>, JobFailure> {
        let h = handover.clone();
        let transcript = self.ctx.db.run(move |c| handovers::transcript(c, &h)).await?;
        Ok(transcript
            .into_iter()
            .filter(|m| m.status != MessageStatus::Delivered && m.status != MessageStatus::Skipped)
            .collect())
    }

    /// Every message of the Infobip conversation, page by page; or the transcript the
    /// handover brought (a bot other than Infobip's).
    async fn fetch(&self, handover: &Handover, conversation: &Conversation) -> Result<Vec<Turn>, JobFailure> {
        if let Some(carried) = &handover.transcript {
            let messages: Vec<Value> = serde_json::from_str(carried)
                .map_err(|e| JobFailure::permanent(format!("the stored transcript cannot be read: {e}")))?;
            return Ok(transcript::turns(&messages, &self.app.transcript.labels));
        }
        let account = self
            .app
            .account_for_sender(&conversation.sender_number)
            .ok_or_else(|| JobFailure::permanent("the conversation's sender number is not configured for this app"))?;
        let mut messages: Vec<Value> = Vec::new();
        for page in 0..MAX_PAGES {
            let answer = self
                .ctx
                .infobip
                .conversation_messages(account, &handover.infobip_conversation_id, page, self.page_size)
                .await
                .map_err(|e| match e.status() {
                    Some(404) => JobFailure::permanent(format!(
                        "Infobip has no conversation {:?} (is Conversations enabled for this account?)",
                        handover.infobip_conversation_id
                    )),
                    Some(401 | 403) => JobFailure::permanent(format!(
                        "Infobip refused to read the conversation: {}; the API key needs the conversations:read scope",
                        e.detail()
                    )),
                    _ => e.into(),
                })?;
            let items = answer.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
            let total = answer.pointer("/pagination/totalItems").and_then(Value::as_u64).unwrap_or(0) as usize;
            let short_page = items.len() < self.page_size;
            messages.extend(items);
            if short_page || messages.len() >= total {
                break;
            }
        }
        Ok(transcript::turns(&messages, &self.app.transcript.labels))
    }

    /// Opens (or finds) the user's Salesforce conversation with the handover's routing attributes.
    async fn establish(&self, handover: &Handover, conversation: Conversation) -> Result<Conversation, JobFailure> {
        let routing: BTreeMap<String, String> = serde_json::from_str(&handover.routing_attributes).unwrap_or_default();
        let established =
            self.ctx.salesforce.establish(&self.app.salesforce, &conversation.end_user_id, &routing).await?;
        let session = established.messaging_session_id;
        let sf_conversation = established.conversation_identifier;
        let Some(sf_conversation) = sf_conversation else { return Ok(conversation) };
        let id = conversation.id;
        self.ctx
            .db
            .write(move |c| {
                conversations::set_salesforce_ids(c, id, &sf_conversation, session.as_deref())?;
                conversations::find(c, id)
            })
            .await?
            .ok_or_else(|| JobFailure::permanent("the conversation no longer exists"))
    }

    fn choose_method(&self, turns: &[Turn]) -> ImportMethod {
        let app = self.app;
        let refused = self.ctx.history_refused.lock().map(|r| r.contains(&app.id)).unwrap_or(false);
        let oldest_allowed = chrono::Utc::now() - HISTORY_MAX_AGE;
        let recent = turns.iter().all(|t| t.created_at.is_some_and(|at| at > oldest_allowed));
        match app.transcript.import.as_str() {
            "history" => ImportMethod::History,
            "auto" if !refused && recent && !turns.is_empty() => ImportMethod::History,
            _ => ImportMethod::Entries,
        }
    }

    /// Stores the transcript as messages of the conversation (with an opening and a
    /// closing line for entries) and the chosen method, in one transaction.
    async fn store(&self, handover: Handover, turns: &[Turn], method: ImportMethod) -> Result<Handover, JobFailure> {
        let turns = turns.to_vec();
        Ok(self
            .ctx
            .db
            .write(move |c| {
                let now = crate::db::now();
                let count = turns.len();
                let first = turns.first().and_then(|t| t.created_at);
                let mut rows: Vec<(String, String, Value)> = Vec::with_capacity(count + 2);
                let system = |text: String| json!({ "message": { "type": "TEXT", "text": text }, "speaker": Value::Null, "authorType": "SYSTEM" });
                let since = first.map(|t| format!(" since {}", t.format("%Y-%m-%d %H:%M UTC"))).unwrap_or_default();
                rows.push((INTRO.into(), "TEXT".into(), system(format!("— Conversation with the chatbot{since}: {count} messages —"))));
                rows.extend(turns.iter().map(|t| (t.id.clone(), t.kind.clone(), t.body.clone())));
                rows.push((OUTRO.into(), "TEXT".into(), system("— End of the chatbot conversation —".into())));
                for (id, kind, body) in rows {
                    let provider_id = transcript_message_id(&handover.id, &id);
                    let skip = method == ImportMethod::History && (id == INTRO || id == OUTRO);
                    conversations::insert_message(
                        c,
                        &NewMessage {
                            app_id: &handover.app_id,
                            conversation_id: handover.conversation_id,
                            direction: Direction::Inbound,
                            provider_message_id: &provider_id,
                            kind: &format!("{TRANSCRIPT_KIND_PREFIX}{kind}"),
                            body: Some(&body.to_string()),
                            status: if skip { MessageStatus::Skipped } else { MessageStatus::Received },
                            received_at: Some(now),
                            sf_entry_id: None,
                        },
                        now,
                    )?;
                }
                let count = i32::try_from(count).unwrap_or(i32::MAX);
                handovers::set_progress(c, &handover.id, HandoverStatus::Importing, Some(method), count, 0)?;
                handovers::find(c, &handover.id)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
            })
            .await?)
    }

    async fn switch_to_entries(&self, handover: Handover) -> Result<Handover, JobFailure> {
        Ok(self
            .ctx
            .db
            .write(move |c| {
                for m in handovers::transcript(c, &handover)? {
                    if m.status == MessageStatus::Skipped {
                        conversations::set_status(c, m.id, MessageStatus::Received)?;
                    }
                }
                handovers::set_progress(
                    c,
                    &handover.id,
                    HandoverStatus::Importing,
                    Some(ImportMethod::Entries),
                    handover.transcript_messages,
                    handover.imported_messages,
                )?;
                handovers::find(c, &handover.id)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
            })
            .await?)
    }

    /// Posts the next (at most 25) pending turns through `conversationHistory`.
    async fn post_history(&self, conversation: &Conversation, pending: &[Message]) -> Result<(), HistoryFailure> {
        let app = self.app;
        let batch: Vec<&Message> = pending.iter().take(HISTORY_BATCH).collect();
        let end_user = Participant::end_user(&conversation.end_user_id);
        let bot = Participant::chatbot("infobip-chatbot");
        let system = Participant::system("infobip-system");
        let mut participants: Vec<HistoryParticipant> = Vec::new();
        let mut entries = Vec::new();
        for m in &batch {
            let body: Value = m.body.as_deref().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
            let at = body
                .get("createdAt")
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or_else(|| m.created_at.and_utc().timestamp_millis(), |t| t.timestamp_millis());
            let (sender, text) = match body.get("authorType").and_then(Value::as_str) {
                Some("CUSTOMER") => (end_user.clone(), history_text(m, &body, None)),
                Some("BOT") => (bot.clone(), history_text(m, &body, None)),
                // Agent turns have no participant of their own (at most 3): labelled system lines.
                _ => (system.clone(), history_text(m, &body, body.get("speaker").and_then(Value::as_str))),
            };
            if !participants.iter().any(|p| p.participant == sender) {
                participants.push(HistoryParticipant { participant: sender.clone(), joined_time: at });
            }
            let id = entry_id(app, m);
            entries.push(HistoryEntry {
                client_timestamp: at,
                sender,
                entry_payload: EntryPayload::Message { abstract_message: AbstractMessage::text(&id, &text), id },
            });
        }
        let request = HistoryRequest {
            channel_address_identifier: app.salesforce.channel_address_identifier.clone(),
            conversation_participants: participants,
            conversation_entries: entries,
        };
        let answer = self
            .ctx
            .salesforce
            .conversation_history(&app.salesforce, &request)
            .await
            .map_err(HistoryFailure::Salesforce)?;
        let session = answer.messaging_session_id;
        let sf_conversation = answer.conversation_identifier;
        let delivered: Vec<(i64, String)> = batch.iter().map(|m| (m.id, entry_id(app, m))).collect();
        let conversation_id = conversation.id;
        self.ctx
            .db
            .write(move |c| {
                let now = crate::db::now();
                if let Some(id) = &sf_conversation {
                    conversations::set_salesforce_ids(c, conversation_id, id, session.as_deref())?;
                }
                for (id, entry) in &delivered {
                    conversations::mark_delivered(c, *id, entry, now, now)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| HistoryFailure::Job(e.into()))
    }

    async fn finish(&self, handover: &Handover) -> Result<(), JobFailure> {
        let h = handover.clone();
        let imported = self
            .ctx
            .db
            .write(move |c| {
                let delivered = handovers::transcript(c, &h)?
                    .iter()
                    .filter(|m| m.status == MessageStatus::Delivered && !is_frame(&m.provider_message_id))
                    .count();
                let delivered = i32::try_from(delivered).unwrap_or(i32::MAX);
                handovers::set_progress(
                    c,
                    &h.id,
                    HandoverStatus::Imported,
                    h.method,
                    h.transcript_messages,
                    delivered,
                )?;
                Ok(delivered)
            })
            .await?;
        tracing::info!(handover.id = %handover.id, imported, "transcript imported");
        Ok(())
    }
}

/// Why a `conversationHistory` batch did not go in: Salesforce's answer, which may mean
/// switching to entries, or anything else.
enum HistoryFailure {
    Salesforce(crate::salesforce::Error),
    Job(JobFailure),
}

impl From<HistoryFailure> for JobFailure {
    fn from(failure: HistoryFailure) -> Self {
        match failure {
            HistoryFailure::Salesforce(e) => e.into(),
            HistoryFailure::Job(f) => f,
        }
    }
}

/// The opening and closing lines are not part of the bot conversation itself.
pub fn is_frame(provider_message_id: &str) -> bool {
    provider_message_id.ends_with(&format!(":{INTRO}")) || provider_message_id.ends_with(&format!(":{OUTRO}"))
}

/// A turn as history text: files cannot be added through this API, so they are described.
fn history_text(message: &Message, body: &Value, label: Option<&str>) -> String {
    let kind = message.kind.strip_prefix(TRANSCRIPT_KIND_PREFIX).unwrap_or(&message.kind);
    let text = match render(kind, body, None) {
        Rendered::Text(t) => t,
        Rendered::Choice { title, .. } => title,
        Rendered::Media { caption, label, .. } => match caption {
            Some(c) => format!("{label}: “{c}” (file not included in the imported history)"),
            None => format!("{label} (file not included in the imported history)"),
        },
    };
    labelled(label, &text)
}
