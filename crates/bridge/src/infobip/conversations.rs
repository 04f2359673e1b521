//! Reading a chatbot conversation from the Conversations (CCaaS) API, page by page.

use serde_json::Value;

use super::client::{Account, Client};
use super::error::Error;

const SCOPE: &str = "conversations:read";

impl Client {
    /// One page of a conversation's messages, oldest first.
    pub async fn conversation_messages(
        &self,
        account: &Account,
        conversation_id: &str,
        page: usize,
        limit: usize,
    ) -> Result<Value, Error> {
        let mut url = url::Url::parse(&format!("{}/ccaas/1/conversations", account.base_url.trim_end_matches('/')))
            .map_err(|e| Error::BadUrl(e.to_string()))?;
        // The id is pushed as one path segment, escaped: it comes from the chatbot.
        url.path_segments_mut()
            .map_err(|()| Error::BadUrl(account.base_url.clone()))?
            .push(conversation_id)
            .push("messages");
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("limit", &limit.to_string())
            .append_pair("orderBy", "createdAt:asc");
        self.call(self.request_url(account.credentials(), url), Some(SCOPE)).await
    }
}
