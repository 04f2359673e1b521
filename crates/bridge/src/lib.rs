//! byoc-bridge: a Bring-Your-Own-Channel connector between WhatsApp (through Infobip) and
//! Salesforce Service Cloud Messaging. All logic lives in this library; `main.rs` only
//! calls [`cli::main`].
//!
//! Every call to a vendor goes through its one client, [`salesforce::Client`] or
//! [`infobip::Client`]; the two directions live in [`inbound`] and [`outbound`], their
//! background jobs run on the [`worker`] with the [`jobs::JobContext`]; `ARCHITECTURE.md`
//! walks one message each way.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod directory;
pub mod error;
pub mod handover;
pub mod inbound;
pub mod infobip;
pub mod jobs;
pub mod media_links;
pub mod metrics;
pub mod outbound;
pub mod proactive;
pub mod provisioning;
pub mod redact;
pub mod replica;
pub mod salesforce;
pub mod startup;
pub mod telemetry;
pub mod web;
pub mod worker;
