//! `gongji`: the command-line program. It parses arguments, opens the ledger, calls one library
//! function per command and prints what comes back; every decision, every byte stored and the
//! rule that nothing is printed before it is durable are `gongji-ledger`'s
//! ([`Ledger::apply_stream`](gongji_ledger::Ledger::apply_stream)).
//!
//! `main` turns an error into `gongji: MESSAGE` and exit status 2; everything is printed
//! through `print` (a closed standard output ends the output quietly, never in a panic); `try_main` dispatches to one
//! small function per command, in the module of its kind: `apply` (commands that write),
//! `query`, `audit` (auditors and operators), `reconcile`, `serve` (the service and its tokens).

mod apply;
mod args;
mod audit;
mod open;
mod output;
mod print;
mod query;
mod reconcile;
mod serve;

/// mimalloc rather than the system allocator: `apply` and `rebuild` allocate and free small
/// strings and buffers by the million (about a fifth of their instructions went to glibc's
/// malloc and free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

use args::{AuditCmd, Cli, Cmd, PolicyCmd, ReconcileCmd};

fn main() -> ExitCode {
    match try_main(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            print::error_line(&error);
            ExitCode::from(2)
        }
    }
}

fn try_main(cli: Cli) -> Result<ExitCode, String> {
    if let Cmd::Audit {
        action: AuditCmd::Check { file, json },
    } = &cli.command
    {
        return audit::check(file, *json);
    }
    open::choose_projections(cli.projections);
    let data = cli
        .data
        .ok_or("--data DIR is required: the ledger's data directory")?;
    let data = data.as_path();
    match cli.command {
        Cmd::Apply(args) => apply::apply(data, &args),
        Cmd::Account(args) => query::account(data, &args),
        Cmd::Year(args) => query::year(data, &args),
        Cmd::Inheritance(args) => query::inheritance(data, &args),
        Cmd::Transfers(args) => query::transfers(data, &args),
        Cmd::Fund(args) => query::fund(data, &args),
        Cmd::History(args) => query::history(data, &args),
        Cmd::Explain(args) => query::explain(data, &args),
        Cmd::Audit { action } => match action {
            AuditCmd::Replay { json } => audit::replay(data, json),
            AuditCmd::Verify { json } => audit::verify(data, json),
            AuditCmd::Export(args) => audit::export(data, &args),
            AuditCmd::Check { file, json } => audit::check(&file, json),
            AuditCmd::ClearQuarantine => audit::clear_quarantine(data),
            AuditCmd::Import { file, json } => audit::import(data, &file, json),
        },
        Cmd::Reconcile { action } => match action {
            ReconcileCmd::Detail(args) => reconcile::detail(data, &args),
            ReconcileCmd::Totals { file, json } => reconcile::totals(data, &file, json),
        },
        Cmd::Settlement(args) => reconcile::settlement(data, &args),
        Cmd::Policy { action } => match action {
            PolicyCmd::Load { file, json } => apply::policy_load(data, &file, json),
            PolicyCmd::List { json } => query::policy_list(data, json),
        },
        Cmd::Rebuild => audit::rebuild(data),
        Cmd::Serve(args) => serve::serve(data, &args),
        Cmd::Token { action } => serve::token(data, &action),
    }
}
