//! The REST and Tooling APIs (`/services/data/vXX.X/…`), called with a user's or the
//! integration user's token: queries, describes, and records created, found or changed.
//! REST errors come as `[{"message", "errorCode"}]`.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{AccessToken, Client, Error};

const API_VERSION: &str = "v60.0";

/// A setup record found by developer name, or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sobject: &'static str,
    pub id: String,
    pub developer_name: String,
    pub created: bool,
}

impl Record {
    /// A record that exists (its id may not be known).
    pub fn found(sobject: &'static str, name: &str) -> Self {
        Self { sobject, id: String::new(), developer_name: name.to_owned(), created: false }
    }
}

fn describe(body: &Value) -> String {
    body.as_array()
        .and_then(|a| a.first())
        .map(|e| {
            let message = crate::redact::vendor_text(e["message"].as_str().unwrap_or_default());
            format!("{}: {message}", e["errorCode"].as_str().unwrap_or("ERROR"))
        })
        .unwrap_or_else(|| crate::redact::vendor_text(&body.to_string()))
}

/// `https://<instance>/services/data/<version>/<path>`.
fn rest_url(token: &AccessToken, path: &str) -> String {
    format!("{}/services/data/{API_VERSION}/{path}", token.instance_url.trim_end_matches('/'))
}

impl Client {
    /// Sends a REST request; `None` for a resource that does not exist (404).
    async fn rest_optional(
        &self,
        request: reqwest::RequestBuilder,
        token: &AccessToken,
    ) -> Result<Option<Value>, Error> {
        let response = request
            .bearer_auth(token.token.expose_secret())
            .send()
            .await
            .map_err(|e| Error::Transport(crate::redact::http_error(e)))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            200..=299 => Ok(Some(body)),
            404 => Ok(None),
            401 | 403 => Err(Error::MissingScope),
            _ if body.is_null() => Err(Error::Refused { status, code: None, detail: format!("HTTP {status}") }),
            _ => Err(Error::Refused { status, code: None, detail: describe(&body) }),
        }
    }

    async fn rest(&self, request: reqwest::RequestBuilder, token: &AccessToken) -> Result<Value, Error> {
        self.rest_optional(request, token).await?.ok_or_else(|| Error::Refused {
            status: 404,
            code: None,
            detail: "NOT_FOUND: the resource does not exist".into(),
        })
    }

    /// The org's limits the bridge watches (`/limits`), in [`WATCHED_LIMITS`]' order; a limit
    /// the org does not report is left out.
    pub async fn limits(&self, token: &AccessToken) -> Result<Vec<OrgLimit>, Error> {
        let body = self.rest(self.http.get(rest_url(token, "limits")), token).await?;
        Ok(WATCHED_LIMITS
            .iter()
            .filter_map(|(name, _)| {
                let limit = body.get(*name)?;
                Some(OrgLimit { name, max: limit.get("Max")?.as_i64()?, remaining: limit.get("Remaining")?.as_i64()? })
            })
            .collect())
    }

    /// Runs a SOQL query (REST, or Tooling with `tooling`); returns the records.
    pub async fn query(&self, token: &AccessToken, soql: &str, tooling: bool) -> Result<Vec<Value>, Error> {
        let url = rest_url(token, if tooling { "tooling/query" } else { "query" });
        let body = self.rest(self.http.get(url).query(&[("q", soql)]), token).await?;
        Ok(body["records"].as_array().cloned().unwrap_or_default())
    }

    /// An object's field names, or `None` when the org has no such object.
    pub async fn field_names(&self, token: &AccessToken, object: &str) -> Result<Option<Vec<String>>, Error> {
        let url = rest_url(token, &format!("sobjects/{object}/describe"));
        let Some(described) = self.rest_optional(self.http.get(url), token).await? else { return Ok(None) };
        let names = described["fields"].as_array().into_iter().flatten();
        Ok(Some(names.filter_map(|f| f["name"].as_str().map(str::to_owned)).collect()))
    }

    /// Creates a record; returns its id.
    pub async fn create_record(&self, token: &AccessToken, sobject: &str, fields: &Value) -> Result<String, Error> {
        let url = rest_url(token, &format!("sobjects/{sobject}"));
        let created = self.rest(self.http.post(url).json(fields), token).await?;
        Ok(created["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Changes fields of a record.
    pub async fn update_record(
        &self,
        token: &AccessToken,
        sobject: &str,
        id: &str,
        fields: &Value,
    ) -> Result<(), Error> {
        let url = rest_url(token, &format!("sobjects/{sobject}/{id}"));
        self.rest_optional(self.http.patch(url).json(fields), token).await.map(|_| ())
    }

    /// Creates a Tooling record: `FullName` and its `Metadata`.
    pub async fn create_tooling(
        &self,
        token: &AccessToken,
        sobject: &'static str,
        full_name: &str,
        metadata: Value,
    ) -> Result<Record, Error> {
        let url = rest_url(token, &format!("tooling/sobjects/{sobject}"));
        let body = json!({ "FullName": full_name, "Metadata": metadata });
        let created = self.rest(self.http.post(url).json(&body), token).await?;
        Ok(Record {
            sobject,
            id: created["id"].as_str().unwrap_or_default().to_owned(),
            developer_name: full_name.to_owned(),
            created: true,
        })
    }

    /// A Tooling record found by developer name, or created with `metadata`.
    pub async fn find_or_create_tooling(
        &self,
        token: &AccessToken,
        sobject: &'static str,
        developer_name: &str,
        metadata: Value,
    ) -> Result<Record, Error> {
        // Developer names are API names (letters, digits, _): safe inside the quotes.
        let soql = format!("SELECT Id, DeveloperName FROM {sobject} WHERE DeveloperName = '{developer_name}'");
        if let Some(found) = self.query(token, &soql, true).await?.first() {
            return Ok(Record {
                id: found["Id"].as_str().unwrap_or_default().to_owned(),
                ..Record::found(sobject, developer_name)
            });
        }
        self.create_tooling(token, sobject, developer_name, metadata).await
    }
}

/// The org limits a connector can run out of: the REST calls it makes (setup, the panel's
/// queries) and the platform events that carry the agents' replies to it. With their words.
pub const WATCHED_LIMITS: &[(&str, &str)] =
    &[("DailyApiRequests", "API requests"), ("DailyDeliveredPlatformEvents", "delivered platform events")];

/// One of the org's limits for the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgLimit {
    pub name: &'static str,
    pub max: i64,
    pub remaining: i64,
}

impl OrgLimit {
    /// Less than a tenth left: time to warn, before the org runs out.
    pub fn low(&self) -> bool {
        self.max > 0 && self.remaining * 10 < self.max
    }

    /// The limit in words.
    pub fn words(&self) -> &'static str {
        WATCHED_LIMITS.iter().find(|(n, _)| *n == self.name).map_or(self.name, |(_, w)| *w)
    }
}
