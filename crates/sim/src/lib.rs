//! Simulators of the vendors' APIs, faithful to their published contracts, for tests,
//! benchmarks and the sandbox. They speak the real protocols (HTTP, gRPC) and refuse what
//! the real services refuse, so the bridge's own clients run against them unchanged.

pub mod contract;
pub mod control;
pub mod faults;
pub mod ids;
pub mod infobip;
pub mod pubsub;
pub mod salesforce;
pub mod server;
pub mod tap;
