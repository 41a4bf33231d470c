//! `gongji-bench`: the measurements of issue 6, with their baselines measured
//! in the same run. Prints one JSON object per figure on standard output:
//! `{"name":...,"value":...,"unit":...}`; progress and notes go to standard error.
//!
//! ```text
//! gongji-bench [--quick] [--gongji PATH] [--work DIR] [--members N] [--records N]
//!              [--query-members N] [--no-postgres] [--only-append]
//! ```
//! `--quick` runs every measurement on small sizes (a check that the benchmark
//! works, for CI; its figures mean nothing). `--gongji` defaults to the
//! `gongji` beside this program. `--only-append` stops after the durable-append
//! figures (log, plain files, log scan). See `docs/performance.md`.
//!
//! The stages, in order, each in a module of its own (in `src/bench/`, private to this
//! program): the durable log against plain files (`log`), sled and PostgreSQL (`baselines`),
//! the ledger as whole processes (`ledger`); `figures` prints and measures, `options` reads
//! the command line.

#[path = "../bench/baselines.rs"]
mod baselines;
#[path = "../bench/figures.rs"]
mod figures;
#[path = "../bench/ledger.rs"]
mod ledger;
#[path = "../bench/log.rs"]
mod log;
#[path = "../bench/options.rs"]
mod options;

use std::path::Path;
use std::process::ExitCode;

use figures::emit;
use options::{parse_options, Options};

const BATCH_RECORDS: u64 = 1000;
const PAYLOAD_BYTES: usize = 100;
const POLICY: &str = "policies/500000-2024-01-01.json";

fn run(o: &Options) -> Result<(), String> {
    let (work, _tmp) = figures::work_dir(o.work.as_deref(), "gongji-bench")?;
    emit(
        "machine_cpus",
        std::thread::available_parallelism().map_or(0, |n| n.get()) as f64,
        "cpus",
    );
    emit("quick_mode", if o.quick { 1.0 } else { 0.0 }, "bool");
    stages(o, &work)
}

fn stages(o: &Options, work: &Path) -> Result<(), String> {
    let append = log::durable_append(o, work)?;
    if o.only_append {
        return Ok(());
    }
    baselines::sled_baseline(o, work, append.log_rate)?;
    let pg_scan = baselines::postgres_baseline(o, append.log_rate, append.log_scan);
    ledger::whole_ledger(o, work, pg_scan)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gongji-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
