//! Shared helpers for the integration tests.

pub mod auth;
pub mod backend;
pub mod browser;
pub mod counting;
pub mod scim_server;
pub mod smtp_sink;
#[cfg(feature = "emulators")]
pub mod world;
