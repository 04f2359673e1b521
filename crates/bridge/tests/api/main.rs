//! Integration tests: one binary, each test with its own database, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bridge;
mod browser;
mod consent;
mod console;
mod console_browser;
mod crash;
mod entries;
mod helpers;

mod fuzz;

mod handover;
mod handover_api;

mod http;
mod inbound;
mod inbound_more;
mod jobs;
mod logs;
mod metrics;
mod migrations;
mod outbound;
mod panel;
mod panel_browser;
mod process;
mod provisioning;
mod retention;
mod sandbox_browser;
mod secrets;
mod setup_walk_browser;
mod sim_cli;
mod sim_infobip;
mod slow_clients;
mod strict;
mod vendor_contract;
mod wizard;
mod wizard_browser;
