//! dirsync keeps a target application's users and groups in step with Microsoft Entra ID.
//!
//! The pure [`plan`] decides what a run changes; the rest is the shell around it: a
//! [`source`] that reads Entra, a [`target`] adapter that applies changes, a [`store`] that
//! mirrors what was applied and keeps reports, and [`sync`], which runs one tenant end to end.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod cli;
pub mod connect;
#[cfg(feature = "emulators")]
pub mod demo;
pub mod domain;
#[cfg(feature = "emulators")]
pub mod emulator;
pub mod http;
pub mod notify;
pub mod plan;
pub mod report;
pub mod schedule;
pub mod service;
pub mod settings;
pub mod source;
pub mod store;
pub mod sync;
pub mod target;
pub mod tenant;
