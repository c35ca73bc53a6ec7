//! Shared helpers for the integration tests.

pub mod auth;
pub mod backend;
pub mod counting;
pub mod scim_server;
pub mod world;
