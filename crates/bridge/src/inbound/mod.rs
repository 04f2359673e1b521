//! Inbound: WhatsApp messages from Infobip into Salesforce conversations.
//!
//! The webhook handler stores each message with its delivery job in one transaction
//! ([`store`]) and answers; the job ([`deliver`]) later turns the message into an
//! interaction and posts it, in order per conversation, retrying what can be retried.

pub mod consent;
pub mod deliver;
pub mod receipts;
pub mod render;

use crate::db::conversations::{self, NewMessage};
use crate::db::jobs;
use crate::db::{DbConn, DbError, Direction, MessageStatus};
use crate::infobip::webhook::InboundMessage;
use crate::worker::BackgroundJob;

use deliver::DeliverInbound;

/// Message kinds of chatbot transcript turns start with this (then the WhatsApp type).
pub const TRANSCRIPT_KIND_PREFIX: &str = "transcript:";

pub use crate::db::conversations::ordering_key;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub accepted: usize,
    pub duplicates: usize,
}

/// Stores messages of one webhook for `app_id` and enqueues their delivery (call inside
/// one write transaction). A message id seen before is skipped: Infobip redelivers.
pub fn store(conn: &mut DbConn, app_id: &str, messages: &[InboundMessage]) -> Result<Stored, DbError> {
    let now = crate::db::now();
    let mut stored = Stored::default();
    // Within one delivery Infobip may batch several messages; keep the order they were sent.
    let mut ordered: Vec<&InboundMessage> = messages.iter().collect();
    ordered.sort_by_key(|m| m.received_at);
    let mut new_jobs = Vec::new();
    for m in ordered {
        let conversation = conversations::upsert(conn, app_id, &m.from, &m.to, now)?;
        let body = m.raw.to_string();
        let inserted = conversations::insert_message(
            conn,
            &NewMessage {
                app_id,
                conversation_id: conversation,
                direction: Direction::Inbound,
                provider_message_id: &m.message_id,
                kind: &m.kind,
                body: Some(&body),
                status: MessageStatus::Received,
                received_at: m.received_at,
                sf_entry_id: None,
            },
            now,
        )?;
        let Some(message_id) = inserted else {
            stored.duplicates += 1;
            continue;
        };
        // A notice about the customer (an identity change) is not the customer writing: it
        // does not open WhatsApp's 24-hour window.
        if !crate::infobip::notification::is_notice(&m.kind) {
            conversations::touch_inbound(conn, conversation, m.received_at.unwrap_or(now))?;
        }
        new_jobs.push(DeliverInbound { message_id }.to_job()?.for_app(app_id).ordered_by(ordering_key(conversation)));
        stored.accepted += 1;
    }
    jobs::enqueue(conn, &new_jobs)?;
    Ok(stored)
}
