//! The simulators' own tests: each speaks its vendor's protocol and refuses what the vendor
//! refuses, checked against the vendors' contracts. One binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract;
mod npm_client;
mod pubsub;
mod salesforce;
mod salesforce_agent;
