//! Simulators of the vendors' APIs, faithful to their published contracts, for tests,
//! benchmarks and the sandbox. They speak the real protocols and refuse what the real
//! services refuse.

pub mod contract;
pub mod faults;
pub mod infobip;
pub mod salesforce;
pub mod server;
