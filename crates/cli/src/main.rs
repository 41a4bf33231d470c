//! `gongji`: the command-line program. It parses arguments, opens the ledger, calls one library
//! function per command and prints what comes back; every decision, every byte stored and the
//! rule that nothing is printed before it is durable are `gongji-ledger`'s
//! ([`Ledger::apply_stream`](gongji_ledger::Ledger::apply_stream)).
//!
//! `main` turns a [`Failure`](failure::Failure) into `gongji: MESSAGE` on standard error and its
//! exit status (1 when what was asked is not there, 2 otherwise) and, when `--json` was given,
//! the error object `{"error":{"code":…,"message":…}}` on standard output, clap's own refusals
//! of the command line included; everything is printed through `print` (a closed standard
//! output ends the output quietly, never in a panic); `try_main` dispatches to one small function
//! per command, in the module of its kind: `apply` (commands that write), `query`, `audit`
//! (auditors and operators), `reconcile`, `serve` (the service and its tokens), `policy_file`
//! (reading a policy file; `policy check`, which needs no ledger), `whatif`, `monitor`
//! (fund supervision: the rules run over the log, a flag's evidence), `export` (settlements and
//! events as CSV or Parquet, `gongji-export`). What every `--json` answer looks like is
//! `docs/answers.md`.
//! Text for people is written by `text` (labels in the language chosen by `--lang` or
//! `GONGJI_LANG`, Chinese by default). `--data` is parsed once, by `location`, into a data
//! directory or a log in PostgreSQL (a `postgres://` URI and `--pg-log`); `open` opens the
//! ledger there, and every message names it with the URI's password masked.

mod apply;
mod args;
mod audit;
mod export;
mod failure;
mod location;
mod monitor;
mod open;
mod output;
mod policy_file;
mod print;
mod query;
mod reconcile;
mod regions;
mod serve;
mod text;
mod whatif;

/// mimalloc rather than the system allocator: `apply` and `rebuild` allocate and free small
/// strings and buffers by the million (about a fifth of their instructions went to glibc's
/// malloc and free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

use args::{AuditCmd, Cli, Cmd, MonitorCmd, MonitorRulesCmd, PolicyCmd, ReconcileCmd};
use failure::Failure;
use location::Location;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return refused_command_line(&error),
    };
    let json = wants_json(&cli.command);
    match try_main(cli) {
        Ok(code) => code,
        Err(failure) => {
            if json {
                // Standard output may be gone: the text on standard error still says it.
                let _ = print::json_line(&failure.json());
            }
            print::error_line(&failure.message);
            ExitCode::from(failure.exit)
        }
    }
}

/// clap refused the command line (or was asked for help or the version): clap says so as it
/// always does and, when `--json` is among the arguments, the error object (`bad_argument`)
/// goes to standard output first.
fn refused_command_line(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let message = match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => None,
        // clap prints the help here, not a message.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Some("a command or an argument is missing: see --help".to_string())
        }
        // clap's first paragraph, on one line, without its `error: `: what was wrong, with
        // the arguments it names.
        _ => {
            let rendered = error.render().to_string();
            let said: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let said = said.join(" ");
            Some(said.strip_prefix("error: ").unwrap_or(&said).to_string())
        }
    };
    if let Some(message) = message {
        if std::env::args_os().skip(1).any(|a| a == "--json") {
            let _ = print::json_line(&Failure::bad_argument(message).json());
        }
    }
    let _ = error.print();
    ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2))
}

/// Whether the command was given `--json`.
fn wants_json(command: &Cmd) -> bool {
    match command {
        Cmd::Apply(args) => args.json,
        Cmd::Account(args) | Cmd::Inheritance(args) | Cmd::Transfers(args) => args.json,
        Cmd::Year(args) => args.json,
        Cmd::Fund(args) => args.json,
        Cmd::History(args) => args.json,
        Cmd::Timeline(args) => args.json,
        Cmd::Explain(args) => args.json,
        Cmd::Settlement(args) => args.json,
        Cmd::Rebuild { json } | Cmd::Relay { json } => *json,
        Cmd::Whatif(args) => args.json,
        Cmd::Monitor { action } => match action {
            MonitorCmd::Run(args) => args.json,
            MonitorCmd::Explain(args) => args.json,
            MonitorCmd::Decide(args) => args.json,
            MonitorCmd::Rules { action } => match action {
                MonitorRulesCmd::Load(args) => args.json,
                MonitorRulesCmd::List { json } => *json,
            },
        },
        Cmd::Serve(_) | Cmd::Token { .. } | Cmd::Export(_) => false,
        Cmd::Audit { action } => match action {
            AuditCmd::Replay { json }
            | AuditCmd::Verify { json }
            | AuditCmd::Check { json, .. }
            | AuditCmd::CheckTransfers { json, .. }
            | AuditCmd::ClearQuarantine { json }
            | AuditCmd::Import { json, .. } => *json,
            AuditCmd::Export(args) => args.json,
        },
        Cmd::Reconcile { action } => match action {
            ReconcileCmd::Detail(args) => args.json,
            ReconcileCmd::Totals { json, .. } => *json,
        },
        Cmd::Policy { action } => match action {
            PolicyCmd::Load { json, .. }
            | PolicyCmd::Check { json, .. }
            | PolicyCmd::List { json } => *json,
        },
    }
}

fn try_main(cli: Cli) -> Result<ExitCode, Failure> {
    text::choose_lang(cli.lang().map_err(Failure::bad_argument)?);
    if let Cmd::Audit {
        action: AuditCmd::Check { file, json },
    } = &cli.command
    {
        return audit::check(file, *json);
    }
    if let Cmd::Audit {
        action: AuditCmd::CheckTransfers { archives, json },
    } = &cli.command
    {
        return regions::check_transfers(archives, *json);
    }
    if let Cmd::Policy {
        action: PolicyCmd::Check { file, json },
    } = &cli.command
    {
        return policy_file::check(file, *json);
    }
    if let Some(map) = &cli.regions {
        open::configure(&Location::Dir(map.clone()), cli.projections, cli.wait)?;
        return regions::run(map, cli.command);
    }
    if let Cmd::Relay { .. } = cli.command {
        return Err(Failure::bad_argument(
            "relay carries transfers between the regions of a region map: give --regions MAP",
        ));
    }
    let data = cli.data.ok_or_else(|| {
        Failure::bad_argument(
            "--data DIR|URI is required: the ledger's data directory or PostgreSQL URI",
        )
    })?;
    let data = &Location::parse(&data, cli.pg_log.as_deref())?;
    open::configure(data, cli.projections, cli.wait)?;
    match cli.command {
        Cmd::Apply(args) => apply::apply(data, &args),
        Cmd::Account(args) => query::account(data, &args),
        Cmd::Year(args) => query::year(data, &args),
        Cmd::Inheritance(args) => query::inheritance(data, &args),
        Cmd::Transfers(args) => query::transfers(data, &args),
        Cmd::Fund(args) => query::fund(data, &args),
        Cmd::History(args) => query::history(data, &args),
        Cmd::Timeline(args) => query::timeline(data, &args),
        Cmd::Explain(args) => query::explain(data, &args),
        Cmd::Audit { action } => match action {
            AuditCmd::Replay { json } => audit::replay(data, json),
            AuditCmd::Verify { json } => audit::verify(data, json),
            AuditCmd::Export(args) => audit::export(data, &args),
            AuditCmd::Check { file, json } => audit::check(&file, json),
            AuditCmd::CheckTransfers { .. } => unreachable!("answered above with no ledger"),
            AuditCmd::ClearQuarantine { json } => audit::clear_quarantine(data, json),
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
            PolicyCmd::Check { .. } => unreachable!("answered above with no ledger"),
        },
        Cmd::Rebuild { json } => audit::rebuild(data, json),
        Cmd::Whatif(args) => whatif::whatif(data, &args),
        Cmd::Monitor { action } => match action {
            MonitorCmd::Run(args) => monitor::run(data, &args),
            MonitorCmd::Explain(args) => monitor::explain(data, &args),
            MonitorCmd::Decide(args) => monitor::decide(data, &args),
            MonitorCmd::Rules { action } => match action {
                MonitorRulesCmd::Load(args) => monitor::load_rules(data, &args),
                MonitorRulesCmd::List { json } => monitor::list_rules(data, json),
            },
        },
        Cmd::Export(args) => export::export(data, &args),
        Cmd::Relay { .. } => unreachable!("refused above without --regions"),
        Cmd::Serve(args) => serve::serve(data, &args),
        Cmd::Token { action } => serve::token(data, &action),
    }
}
