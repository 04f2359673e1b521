//! Taps: a callback that sees each message a simulated vendor accepted, the moment it did.
//!
//! The benchmark measures latency from its own send to the vendor's acceptance with one
//! clock, in one process; a tap costs nothing when unset.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

/// Called with (end user, accepted message as received).
pub type TapFn = dyn Fn(&str, &Value) + Send + Sync;

/// A tap that can be set once and is shared by the simulator's clones.
#[derive(Clone, Default)]
pub struct Tap(Arc<OnceLock<Arc<TapFn>>>);

impl Tap {
    /// Sets the callback; false when one was set already.
    pub fn set(&self, f: Arc<TapFn>) -> bool {
        self.0.set(f).is_ok()
    }

    pub(crate) fn call(&self, end_user: &str, message: &Value) {
        if let Some(f) = self.0.get() {
            f(end_user, message);
        }
    }
}
