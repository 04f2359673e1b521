//! gRPC statuses shaped like the Pub/Sub API's: the Salesforce reason in the `error-code`
//! trailer and the call's rpc id appended to the message.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use super::wire::{error_codes, metadata};

/// A status carrying `error-code: <error_code>`.
pub(super) fn status_with_code(code: Code, message: &str, error_code: &'static str, rpc_id: &str) -> Status {
    let mut status = Status::new(code, format!("{message} rpcId: {rpc_id}"));
    status.metadata_mut().insert(metadata::ERROR_CODE, MetadataValue::from_static(error_code));
    status
}

/// A status without a Salesforce error code (used where the real code is not documented).
pub(super) fn plain_status(code: Code, message: &str, rpc_id: &str) -> Status {
    Status::new(code, format!("{message} rpcId: {rpc_id}"))
}

/// The status streams end with when the service goes away or a fault is injected.
pub(super) fn unavailable(rpc_id: &str) -> Status {
    status_with_code(Code::Unavailable, "The service is unavailable.", error_codes::SERVICE_UNAVAILABLE, rpc_id)
}

/// A fresh rpc id for one call.
pub(super) fn new_rpc_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
