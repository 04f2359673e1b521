//! Infobip: account settings and webhook signatures now; webhook parsing, the WhatsApp
//! send client and the Conversations API join this module in later work.

pub mod account;
pub mod catalog;
pub mod client;
pub mod rate;
pub mod signature;
pub mod templates;
pub mod webhook;

/// Infobip's documented default; each account usually has its own `xxxxx.api.infobip.com`.
pub const DEFAULT_BASE_URL: &str = "https://api.infobip.com";
