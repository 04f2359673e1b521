//! In-process simulators of the outside systems, for tests and local development. They speak
//! the real wire protocols, so the bridge's own clients run against them unchanged.

pub mod pubsub;
