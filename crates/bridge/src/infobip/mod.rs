//! Infobip: the one client for every call to Infobip's API ([`Client`], its [`Error`]), the
//! WhatsApp webhook documents and their signatures, templates, and the per-sender pace.

pub mod account;
pub mod catalog;
mod client;
pub mod conversations;
pub mod delivery;
mod error;
pub mod media;
pub mod messages;
pub mod notification;
pub mod rate;
mod shape;
pub mod signature;
pub mod templates;
pub mod webhook;

pub use client::{Account, Client, Credentials};
pub use error::Error;

/// Infobip's documented default; each account usually has its own `xxxxx.api.infobip.com`.
pub const DEFAULT_BASE_URL: &str = "https://api.infobip.com";
