//! Gongji as a service: the ledger over HTTP, for many users at once, each in their role.
//!
//! What it is for: `gongji serve` holds one ledger open, as its only writer, and answers
//! HTTP requests on it with axum on tokio: command streams (`POST /v1/commands`), the reads of
//! a member's data, a region's funds, the policies, the access log, health, metrics and the
//! OpenAPI document generated from the handlers. Every answer is the same JSON the command
//! line's `--json` gives: both call the same ledger functions and the one shaping in
//! [`answers`]. Tokens and roles ([`tokens`], [`roles`]) decide who may do what; every read of
//! a member's data is in the access log ([`access_log`]) before it is answered.
//!
//! What it is not for: it holds no insurance rule and no storage of the ledger's own; it reads
//! and writes the ledger only through `gongji-ledger`, and it touches no file inside the data
//! directory. Its own two files (the tokens, the access log) live beside the data directory
//! (`DIR.tokens`, `DIR.access-log` by default): the data directory is `gongji-log`'s alone.
//!
//! Modules: `answers` (the shaping shared with the CLI), `roles` (the permission table),
//! `tokens` (the token file), `access_log`, `metrics`, `error` (error answers), `reads` (the
//! ledger behind its lock: the read side and the writer), `app` (shared state and the guard
//! every request passes), `commands` (the command stream), `members` (member reads), `routes`
//! (the other routes), `openapi` (the router and its document), `schemas` (the answers' shapes in it), `listener` (the connection
//! bound), `server` (listening, signals, shutdown).

pub mod access_log;
pub mod answers;
mod app;
mod commands;
mod error;
mod listener;
mod members;
pub mod metrics;
mod openapi;
mod reads;
pub mod roles;
mod routes;
mod schemas;
mod server;
pub mod tokens;

pub use app::Limits;
pub use server::{beside, serve, ServeConfig};
