//! handoff: hand work between AI coding-agent sessions on different machines.
//!
//! The library holds everything; `main.rs` only calls [`app::main`]. How the pieces fit: docs/architecture.md.

#![deny(missing_docs)]

pub mod app;
pub mod cli;
pub mod commands;
pub mod complete;
pub mod config;
pub mod crypto;
pub mod executor;
pub mod exit;
pub mod known;
pub mod outbox;
pub mod output;
pub mod progress;
pub mod registry;
pub mod router;
pub mod secrets;
pub mod server;
pub mod state;
pub mod urgent;
