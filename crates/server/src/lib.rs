//! Gongji as a service: the ledger over HTTP, for many users at once, each in their role.
//!
//! What it is for: `gongji serve` holds one ledger open, as its only writer, and answers
//! HTTP requests on it with axum on tokio: command streams (`POST /v1/commands`), the reads of
//! a member's data, a region's funds, the policies, the access log, the change feed
//! (`GET /v1/events`), audit verify, replay and export, reconciliation and statements, health,
//! metrics and the OpenAPI document generated from the handlers. Every answer is the same JSON the command
//! line's `--json` gives: both call the same ledger functions and the one shaping in
//! [`answers`]. Tokens and roles ([`tokens`], [`roles`]) decide who may do what; every read of
//! a member's data is in the access log ([`access_log`]) before it is answered.
//!
//! What it is not for: it holds no insurance rule and no storage of the ledger's own; it reads
//! and writes the ledger only through `gongji-ledger`. Its own files in the data directory
//! (`DIR/tokens`, `DIR/access-log` by default, and `DIR/SERVER` naming it while it runs) are
//! opened, replaced and removed only through `gongji_log::service_files`, by the log's rules
//! (no link followed, regular files only, mode 0600): no file of the directory is touched
//! any other way. With the ledger in PostgreSQL there is no data directory: the token file and
//! the access log are the files the caller names, and no `SERVER` note is written
//! ([`ServeConfig::note_dir`] is `None`).
//! An export's archive and a reconciliation's institution file are scratch files, in a private
//! directory of the request's own under the system's temporary directory, removed once used.
//!
//! Modules: `answers` (the shaping shared with the CLI), `roles` (the permission table),
//! `tokens` (the token file), `access_log`, `metrics`, `error` (error answers), `reads` (the
//! writing ledger behind its lock, and the read-only view queries are answered from, which
//! never waits for it), `app` (shared state and the guard
//! every request passes), `commands` (the command stream), `members` (member reads), `routes`
//! (the other routes), `feed` (the change feed), `audit_routes` (audit verify, replay and
//! export), `recon_routes` (reconciliation and statements), `bulk` (what those share: the
//! access-log entry of a read of many members, scratch files, streamed bodies), `openapi` (the
//! router and its document), `schemas` (the answers' shapes in it), `map` (the service over a region map: every region's
//! writer, a read view per region, the relay), `listener` (the connection bound, and the TLS handshakes off the
//! accept loop), `tls` (the certificate and key read into a rustls configuration), `server`
//! (listening, signals, shutdown, `DIR/SERVER`).

pub mod access_log;
pub mod answers;
mod app;
mod audit_routes;
mod bulk;
mod commands;
mod error;
mod export_routes;
mod feed;
mod flags;
mod listener;
mod map;
mod members;
pub mod metrics;
mod openapi;
mod reads;
mod recon_routes;
pub mod roles;
mod routes;
mod schemas;
mod server;
mod tls;
pub mod tokens;
mod web;

pub use app::Limits;
pub use map::{MapConfig, MapOpener, ViewOpener};
pub use server::{serve, ServeConfig, ServedLedgers};
pub use tls::TlsFiles;
