//! The Salesforce Pub/Sub API as it travels: the gRPC types and client generated from
//! Salesforce's own `pubsub_api.proto` (the server too, with the `server` feature, for the
//! simulator), the names of the call metadata and error codes, and Avro decoding of the
//! events' payloads. Nothing here knows about the bridge; it is the vendor's wire format.

pub mod avro;

/// Types, client and server generated from `proto/pubsub_api.proto` (package `eventbus.v1`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("eventbus.v1");
}

/// Names of the metadata entries every Pub/Sub call carries (lowercase on the wire).
pub mod metadata {
    /// OAuth access token.
    pub const ACCESS_TOKEN: &str = "accesstoken";
    /// The org's My Domain URL, e.g. `https://example.my.salesforce.com`.
    pub const INSTANCE_URL: &str = "instanceurl";
    /// The org id.
    pub const TENANT_ID: &str = "tenantid";
    /// Trailer holding Salesforce's own error code on a failed call.
    pub const ERROR_CODE: &str = "error-code";
}

/// Salesforce error codes carried in the `error-code` trailer.
pub mod error_codes {
    /// A `CUSTOM` replay id that is unknown or no longer retained (clients retry with `EARLIEST`).
    pub const REPLAY_ID_CORRUPTED: &str = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";
    /// A replay id that could not be read at all.
    pub const REPLAY_ID_VALIDATION_FAILED: &str =
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed";
    /// Missing or invalid credentials in the call metadata.
    pub const AUTH_ERROR: &str = "sfdc.platform.eventbus.grpc.service.auth.error";
    /// The service is unavailable; clients wait and retry.
    pub const SERVICE_UNAVAILABLE: &str = "sfdc.platform.eventbus.grpc.service.unavailable";
}
