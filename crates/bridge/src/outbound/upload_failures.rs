//! Salesforce's `MessageUpdated` entries: the result of storing a file the customer sent,
//! which Salesforce uploads after it took the message. When the upload failed the agent
//! would only see a broken attachment, so each failed file becomes a notice in the
//! conversation that says which file and why, and what to ask the customer.

use serde_json::Value;

use super::AgentEntry;
use crate::db::conversations;
use crate::db::{DbConn, DbError};
use crate::infobip::notification::{UPLOAD_FAILED_KIND, notice};

/// What the agent reads for each `errorType` of `ErrorAttachmentUploadResult`.
fn reason(error_type: &str) -> &'static str {
    match error_type {
        "AttachmentTooLarge" => "it is larger than Salesforce takes",
        "StorageLimitExceeded" => "the org's file storage is full",
        "AttachmentUploadNotEnabled" | "AttachmentUploadNotAllowed" => "file uploads are not allowed on this channel",
        "AttachmentNotFound" => "Salesforce could not find the file it was sent",
        _ => "Salesforce could not store it",
    }
}

/// The failed files of a `MessageUpdated` entry: (attachment id or name, name, error type).
fn failed_files(entry: &AgentEntry) -> Vec<(String, String, String)> {
    let message = entry.entry_payload().get("updatedMessage").unwrap_or(&Value::Null);
    let attachments =
        message.pointer("/staticContent/attachments").and_then(Value::as_array).into_iter().flatten().filter(|a| {
            a.pointer("/attachmentUploadResult/resultType").and_then(Value::as_str)
                == Some("ErrorAttachmentUploadResult")
        });
    let text = |a: &Value, p: &str| a.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    attachments
        .map(|a| {
            let name = text(a, "/name");
            let id = [text(a, "/id"), text(a, "/referenceId"), name.clone()].into_iter().find(|s| !s.is_empty());
            (id.unwrap_or_default(), name, text(a, "/attachmentUploadResult/errorType"))
        })
        .collect()
}

/// Stores a notice for each failed file of `entry` (in the caller's transaction); returns how
/// many. The same entry replayed stores none again.
pub fn tell_agent(conn: &mut DbConn, app_id: &str, entry: &AgentEntry) -> Result<usize, DbError> {
    let files = failed_files(entry);
    if files.is_empty() {
        return Ok(0);
    }
    let Some(id) =
        conversations::find_for_end_user(conn, app_id, &entry.end_user, entry.conversation_identifier.as_deref())?
    else {
        return Ok(0);
    };
    let Some(conversation) = conversations::find(conn, id)? else { return Ok(0) };
    let notices: Vec<_> = files
        .iter()
        .map(|(file_id, name, error)| {
            let name = if name.is_empty() { "a file".to_owned() } else { format!("the file \"{name}\"") };
            let text = format!(
                "⚠ Bridge notice: {name} the customer sent did not reach this conversation: {}. Ask them to send it again, or another way.",
                reason(error)
            );
            notice(
                UPLOAD_FAILED_KIND,
                format!("upload-failed:{}:{file_id}", entry.identifier),
                conversation.end_user_id.clone(),
                conversation.sender_number.clone(),
                &text,
                None,
            )
        })
        .collect();
    Ok(crate::inbound::store(conn, app_id, &notices)?.accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failed_uploads_are_told_each_with_its_reason() {
        let raw = serde_json::json!({ "recipient": { "subject": "4477" }, "payload": {
            "identifier": "e9", "entryType": "MessageUpdated", "entryPayload": { "entryType": "MessageUpdated",
            "updatedMessage": { "messageType": "StaticContentMessage", "staticContent": { "formatType": "Attachments",
                "attachments": [
                    { "id": "a1", "name": "scan.pdf", "attachmentUploadResult": {
                        "resultType": "ErrorAttachmentUploadResult", "errorType": "AttachmentTooLarge" } },
                    { "id": "a2", "name": "ok.png", "attachmentUploadResult": {
                        "resultType": "CompletedAttachmentUploadResult" } } ] } } } } });
        let entry = AgentEntry::parse(&raw.to_string()).unwrap();
        assert_eq!(failed_files(&entry), [("a1".to_owned(), "scan.pdf".to_owned(), "AttachmentTooLarge".to_owned())]);
        assert_eq!(reason("StorageLimitExceeded"), "the org's file storage is full");
        assert_eq!(reason("SomethingNew"), "Salesforce could not store it");
    }
}
