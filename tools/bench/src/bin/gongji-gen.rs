//! `gongji-gen`: writes a seeded synthetic region as a command file for `gongji apply`.
//!
//! ```text
//! gongji-gen [--members N] [--seed S] [--months M] [--start YYYY-MM] [--region CODE] [--out FILE]
//! ```
//! Defaults: 1000 members, seed 1, 12 months from 2024-01, region 500000, standard output.
//! The same arguments always give the same file. Prints the line counts on standard error.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use gongji_tools::gen::{generate, Config, Stats};

const USAGE: &str = "usage: gongji-gen [--members N] [--seed S] [--months M] [--start YYYY-MM] \
                     [--region CODE] [--out FILE]";

/// What `--help` prints (on standard output, exit 0).
const HELP: &str = "gongji-gen: writes a seeded synthetic region as a command file for `gongji apply`.
The same arguments always give the same file; the line counts go to standard error.

usage: gongji-gen [--members N] [--seed S] [--months M] [--start YYYY-MM] [--region CODE] [--out FILE]

  --members N       members enrolled (default 1000)
  --seed S          seed of the generator (default 1)
  --months M        months of contributions, claims and payments, 1..=1200 (default 12)
  --start YYYY-MM   first month (default 2024-01)
  --region CODE     the pooling region (default 500000)
  --out FILE        write to FILE (default standard output)
  -h, --help        print this help
";

/// What the command line asked for: a region to write, or the help.
enum Parsed {
    Generate(Config, Option<String>),
    Help,
}

fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut config = Config::default();
    let mut out = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(Parsed::Help);
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |what: &str| -> Result<u64, String> {
            value
                .parse::<u64>()
                .map_err(|_| format!("{what} must be a whole number, got {value:?}"))
        };
        match flag.as_str() {
            "--members" => config.members = number("--members")?,
            "--seed" => config.seed = number("--seed")?,
            "--months" => {
                config.months = u32::try_from(number("--months")?)
                    .ok()
                    .filter(|m| (1..=1200).contains(m))
                    .ok_or("--months must be 1..=1200")?
            }
            "--start" => {
                let (y, m) = value
                    .split_once('-')
                    .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
                    .filter(|(y, m)| (1900..=9000).contains(y) && (1..=12).contains(m))
                    .ok_or_else(|| format!("--start must be YYYY-MM, got {value:?}"))?;
                config.start_year = y;
                config.start_month = m;
            }
            "--region" => config.region = value.clone(),
            "--out" => out = Some(value.clone()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Parsed::Generate(config, out))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, out) = match parse(&args) {
        Ok(Parsed::Generate(config, out)) => (config, out),
        Ok(Parsed::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let result = match &out {
        Some(path) => std::fs::File::create(path)
            .map_err(|e| format!("cannot create {path}: {e}"))
            .and_then(|f| {
                let mut w = BufWriter::with_capacity(1 << 20, f);
                let stats =
                    generate(&config, &mut w).map_err(|e| format!("writing {path}: {e}"))?;
                w.flush().map_err(|e| format!("writing {path}: {e}"))?;
                Ok(stats)
            }),
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
            generate(&config, &mut w).map_err(|e| format!("writing standard output: {e}"))
        }
    };
    match result {
        Ok(stats) => {
            eprintln!("gongji-gen: wrote {}", describe(&stats));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("gongji-gen: {message}");
            ExitCode::from(2)
        }
    }
}

/// The line counts, readable: `12 lines (enroll 5, contribute 5, ...)`.
fn describe(stats: &Stats) -> String {
    let counts = [
        ("enroll", stats.enroll),
        ("contribute", stats.contribute),
        ("allocate", stats.allocate),
        ("claim", stats.claim),
        ("account_pay", stats.account_pay),
        ("bind_family", stats.bind_family),
        ("unbind_family", stats.unbind_family),
        ("retire", stats.retire),
        ("reverse", stats.reverse),
    ];
    let counts: Vec<String> = counts
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    format!("{} lines ({})", stats.lines, counts.join(", "))
}
