//! The names Salesforce's Pub/Sub API uses on the wire, as its documentation gives them
//! (reference `pubsub-wire.md`): stated here, not borrowed from any client, so a client that
//! spells one differently is refused.

/// Metadata entries every call carries (lowercase on the wire).
pub mod metadata {
    /// OAuth access token.
    pub const ACCESS_TOKEN: &str = "accesstoken";
    /// The org's My Domain URL.
    pub const INSTANCE_URL: &str = "instanceurl";
    /// The org id (15 or 18 characters).
    pub const TENANT_ID: &str = "tenantid";
    /// Trailer holding Salesforce's own error code on a failed call.
    pub const ERROR_CODE: &str = "error-code";
}

/// Salesforce error codes carried in the `error-code` trailer ("Handle Errors" page).
pub mod error_codes {
    /// A `CUSTOM` replay id that is unknown or no longer retained.
    pub const REPLAY_ID_CORRUPTED: &str = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";
    /// A replay id that could not be read at all.
    pub const REPLAY_ID_VALIDATION_FAILED: &str =
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed";
    /// Missing or invalid credentials in the call metadata.
    pub const AUTH_ERROR: &str = "sfdc.platform.eventbus.grpc.service.auth.error";
    /// The service is unavailable; clients wait and retry.
    pub const SERVICE_UNAVAILABLE: &str = "sfdc.platform.eventbus.grpc.service.unavailable";
}
