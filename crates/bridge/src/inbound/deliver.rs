//! The `deliver_inbound` job: one stored WhatsApp message becomes one interaction in the
//! end user's Salesforce conversation.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::render::{Rendered, labelled, render};
use crate::db::MessageStatus;
use crate::db::conversations::{self, Conversation, Message};
use crate::directory::ActiveApp;
use crate::infobip::media::Media;
use crate::jobs::JobContext;
use crate::salesforce::interactions::{Attachment, MAX_ATTACHMENT_BYTES, SUPPORTED_ATTACHMENT_TYPES};
use crate::salesforce::requests::{
    AbstractMessage, ChoicesResponse, EntryPayload, Interaction, SelectedOption, TitleItem,
};
use crate::worker::{Attempt, BackgroundJob, Completion, JobFailure};

/// Namespace of the entry ids derived from WhatsApp message ids: a retried delivery sends
/// the same entry id again.
const ENTRY_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6279_6f63_2d69_6e62_6f75_6e64_2d65_6e74);

/// Delivers the stored inbound message `message_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverInbound {
    pub message_id: i64,
}

impl BackgroundJob for DeliverInbound {
    const KIND: &'static str = "deliver_inbound";
    type Context = JobContext;

    async fn run(self, ctx: &JobContext, attempt: &Attempt) -> Result<(), JobFailure> {
        let message_id = self.message_id;
        let (message, conversation, reply_target) =
            ctx.db
                .run(move |c| {
                    let Some(message) = conversations::message(c, message_id)? else { return Ok(None) };
                    let Some(conversation) = conversations::find(c, message.conversation_id)? else { return Ok(None) };
                    // A button or list reply answers the agent's choices if the bridge sent them.
                    let context =
                        message.body.as_deref().and_then(|b| serde_json::from_str::<Value>(b).ok()).and_then(|raw| {
                            raw.pointer("/message/context/id").and_then(Value::as_str).map(str::to_owned)
                        });
                    let reply_target = match context {
                        Some(id) => {
                            conversations::outbound_by_provider_id(c, &message.app_id, &id)?.and_then(|m| m.sf_entry_id)
                        }
                        None => None,
                    };
                    Ok(Some((message, conversation, reply_target)))
                })
                .await?
                .ok_or_else(|| JobFailure::permanent(format!("message {message_id} no longer exists")))?;
        if message.status == MessageStatus::Delivered {
            return Ok(());
        }
        let app = ctx.active_app(&message.app_id).await?;
        deliver(ctx, &app, message, &conversation, reply_target.as_deref(), Some(attempt.completion())).await
    }
}

/// The interaction of one message, and its file when there is one.
struct Outgoing {
    entry_id: String,
    interaction: Interaction,
    attachment: Option<Attachment>,
}

/// Turns one stored message into an interaction, posts it, and records the outcome; with
/// `completion`, the job that delivers it ends in the same transaction.
pub async fn deliver(
    ctx: &JobContext,
    app: &ActiveApp,
    message: Message,
    conversation: &Conversation,
    reply_target: Option<&str>,
    completion: Option<Completion>,
) -> Result<(), JobFailure> {
    let outgoing = prepare(ctx, app, &message, conversation, reply_target).await?;
    let posted = ctx
        .salesforce
        .post_interaction(
            &app.salesforce,
            &conversation.end_user_id,
            outgoing.interaction,
            outgoing.attachment.as_ref(),
        )
        .await;
    let now = crate::db::now();
    let purge = ctx.purge_after_delivery();
    match posted {
        Ok(response) => {
            let entry_id = outgoing.entry_id;
            let outgoing_entry = entry_id.clone();
            let session = response.work_item_ids.first().cloned();
            let sf_conversation = response.conversation_identifier.clone();
            let changed = sf_conversation.is_some()
                && (conversation.sf_conversation_id != sf_conversation || conversation.messaging_session_id != session);
            let conversation_id = conversation.id;
            ctx.db
                .write(move |c| {
                    if changed && let Some(id) = &sf_conversation {
                        conversations::set_salesforce_ids(c, conversation_id, id, session.as_deref())?;
                    }
                    conversations::mark_delivered(c, message.id, &entry_id, now, purge)?;
                    completion.as_ref().map_or(Ok(()), |done| done.record(c))
                })
                .await?;
            tracing::info!(
                app.id = %app.id,
                conversation.id = conversation_id,
                message.id = message.id,
                entry.id = %outgoing_entry,
                "message delivered to Salesforce"
            );
            let latency = (now - message.created_at).num_milliseconds().max(0) as f64 / 1000.0;
            ctx.metrics.inbound_delivery_seconds.observe(latency);
            ctx.metrics.inbound(&app.name, "delivered");
            Ok(())
        }
        Err(e) if e.is_permanent() => {
            let reason = format!("Salesforce refused the message: {}", e.detail());
            let error = reason.clone();
            ctx.db.write(move |c| conversations::mark_failed(c, message.id, &error, now, purge)).await?;
            ctx.metrics.inbound(&app.name, "failed");
            Err(JobFailure::permanent(reason))
        }
        Err(e) => Err(e.into()),
    }
}

/// The Salesforce entry id of a stored message: derived from its provider id, so a retried
/// delivery repeats it.
pub fn entry_id(app: &ActiveApp, message: &Message) -> String {
    uuid::Uuid::new_v5(&ENTRY_NAMESPACE, format!("{}/{}", app.id, message.provider_message_id).as_bytes()).to_string()
}

fn text_entry(entry_id: &str, text: &str) -> Interaction {
    Interaction::EntryInteraction {
        timestamp: chrono::Utc::now().timestamp_millis(),
        payload: EntryPayload::Message {
            id: entry_id.to_owned(),
            abstract_message: AbstractMessage::text(entry_id, text),
        },
    }
}

async fn prepare(
    ctx: &JobContext,
    app: &ActiveApp,
    message: &Message,
    conversation: &Conversation,
    reply_target: Option<&str>,
) -> Result<Outgoing, JobFailure> {
    let raw: Value = message
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok())
        .ok_or_else(|| JobFailure::permanent("the message body is no longer stored"))?;
    let entry_id = entry_id(app, message);
    let outgoing = |interaction, attachment| Outgoing { entry_id: entry_id.clone(), interaction, attachment };
    let text = |text: &str| outgoing(text_entry(&entry_id, text), None);
    // A chatbot transcript's turns carry their speaker, put before what they said.
    let kind = message.kind.strip_prefix(super::TRANSCRIPT_KIND_PREFIX).unwrap_or(&message.kind);
    let speaker = raw.get("speaker").and_then(Value::as_str);
    match render(kind, &raw, reply_target) {
        Rendered::Text(body) => Ok(text(&labelled(speaker, &body))),
        Rendered::Choice { in_reply_to, option, title } => Ok(outgoing(
            Interaction::EntryInteraction {
                timestamp: chrono::Utc::now().timestamp_millis(),
                payload: EntryPayload::Message {
                    id: entry_id.clone(),
                    abstract_message: AbstractMessage::ChoicesResponseMessage {
                        id: entry_id.clone(),
                        in_reply_to_message_id: in_reply_to,
                        choices_response: ChoicesResponse::Selections {
                            selected_options: vec![SelectedOption {
                                option_identifier: option,
                                option_title: TitleItem::new(title),
                            }],
                        },
                    },
                },
            },
            None,
        )),
        Rendered::Media { url, caption, label } => {
            let described = |why: &str| {
                let quoted = caption.as_deref().map(|c| format!(": “{c}”")).unwrap_or_default();
                labelled(speaker, &format!("{label}{quoted}\n({why})"))
            };
            let account = app
                .account_for_sender(&conversation.sender_number)
                .ok_or_else(|| JobFailure::permanent("the message's sender number is not configured for this app"))?;
            match ctx.infobip.download_media(account, &url, MAX_ATTACHMENT_BYTES).await? {
                Media::File { bytes, mime_type } if SUPPORTED_ATTACHMENT_TYPES.contains(&mime_type.as_str()) => {
                    let caption = match speaker {
                        Some(_) => Some(labelled(speaker, caption.as_deref().unwrap_or_default())),
                        None => caption.clone(),
                    };
                    let interaction = Interaction::AttachmentInteraction {
                        timestamp: chrono::Utc::now().timestamp_millis(),
                        id: entry_id.clone(),
                        attachment_index: 0,
                        content_length: bytes.len(),
                        text: caption,
                    };
                    let file_name =
                        format!("{}.{}", label.to_ascii_lowercase().replace(' ', "-"), extension(&mime_type));
                    Ok(outgoing(interaction, Some(Attachment { bytes, mime_type, file_name })))
                }
                Media::File { mime_type, .. } => Ok(text(&described(&format!(
                    "sent as {mime_type}, a format Salesforce cannot display; ask the customer to send it another way"
                )))),
                Media::TooLarge => Ok(text(&described("larger than the 25 MB Salesforce accepts"))),
                Media::Gone => Ok(text(&described("no longer available from WhatsApp"))),
            }
        }
    }
}

fn extension(mime: &str) -> &str {
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/bmp" => "bmp",
        "application/pdf" => "pdf",
        "video/mp4" | "audio/mp4" => "mp4",
        "audio/mpeg" => "mp3",
        "video/mpeg" => "mpeg",
        "video/3gpp" | "audio/3gpp" => "3gp",
        "video/3gpp2" | "audio/3gpp2" => "3g2",
        _ => "bin",
    }
}
