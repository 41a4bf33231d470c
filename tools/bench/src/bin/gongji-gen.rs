//! `gongji-gen`: writes a seeded synthetic region as a command file for `gongji apply`.
//!
//! ```text
//! gongji-gen [--members N] [--seed S] [--months M] [--start YYYY-MM] [--region CODE] [--out FILE]
//!            [--plant-misuse RATE] [--planted FILE]
//! ```
//! Defaults: 1000 members, seed 1, 12 months from 2024-01, region 500000, standard output.
//! The same arguments always give the same file. Prints the line counts on standard error.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use gongji_tools::gen::{generate_planted, Config, Stats};
use gongji_tools::plant::{plant, Planting};

const USAGE: &str = "usage: gongji-gen [--members N] [--seed S] [--months M] [--start YYYY-MM] \
                     [--region CODE] [--out FILE] [--plant-misuse RATE] [--planted FILE]";

/// What `--help` prints (on standard output, exit 0).
const HELP: &str = "gongji-gen: writes a seeded synthetic region as a command file for `gongji apply`.
The same arguments always give the same file; the line counts go to standard error.

usage: gongji-gen [--members N] [--seed S] [--months M] [--start YYYY-MM] [--region CODE] [--out FILE]
                  [--plant-misuse RATE] [--planted FILE]

  --members N       members enrolled (default 1000)
  --seed S          seed of the generator (default 1)
  --months M        months of contributions, claims and payments, 1..=1200 (default 12)
  --start YYYY-MM   first month (default 2024-01)
  --region CODE     the pooling region (default 500000)
  --out FILE        write to FILE (default standard output)
  --plant-misuse R  also plant cases of every misuse pattern the monitoring rules look for
                    (docs/supervision.md), ceil(members x R) of each, on members of their own
                    (ids starting with X); the ordinary lines stay as they are
  --planted FILE    where the planted cases go, one JSON object a line (default FILE.planted
                    beside --out; required when writing to standard output)
  -h, --help        print this help
";

/// What the command line asked for: a region to write, or the help.
enum Parsed {
    Generate(Request),
    Help,
}

/// What to write, and where.
struct Request {
    config: Config,
    out: Option<String>,
    plant_rate: f64,
    planted: Option<String>,
}

fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut config = Config::default();
    let mut out = None;
    let mut plant_rate = 0.0;
    let mut planted = None;
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
            "--plant-misuse" => {
                plant_rate = value
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=0.1).contains(r))
                    .ok_or_else(|| {
                        format!("--plant-misuse must be a rate from 0 to 0.1, got {value:?}")
                    })?
            }
            "--planted" => planted = Some(value.clone()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if plant_rate > 0.0 && planted.is_none() {
        planted = Some(
            out.as_ref()
                .map(|out| format!("{out}.planted"))
                .ok_or("--plant-misuse writing to standard output needs --planted FILE")?,
        );
    }
    Ok(Parsed::Generate(Request {
        config,
        out,
        plant_rate,
        planted,
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let request = match parse(&args) {
        Ok(Parsed::Generate(request)) => request,
        Ok(Parsed::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let (config, out) = (&request.config, &request.out);
    let planting = plant(config, request.plant_rate);
    if let Some(path) = &request.planted {
        if let Err(message) = write_planted(path, &planting) {
            eprintln!("gongji-gen: {message}");
            return ExitCode::from(2);
        }
    }
    let result = match out {
        Some(path) => std::fs::File::create(path)
            .map_err(|e| format!("cannot create {path}: {e}"))
            .and_then(|f| {
                let mut w = BufWriter::with_capacity(1 << 20, f);
                let stats = generate_planted(config, &planting, &mut w)
                    .map_err(|e| format!("writing {path}: {e}"))?;
                w.flush().map_err(|e| format!("writing {path}: {e}"))?;
                Ok(stats)
            }),
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
            generate_planted(config, &planting, &mut w)
                .map_err(|e| format!("writing standard output: {e}"))
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

/// The planted cases, one JSON object a line.
fn write_planted(path: &str, planting: &Planting) -> Result<(), String> {
    let mut text = String::new();
    for case in &planting.cases {
        text += &serde_json::to_string(case).expect("a case serializes");
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))
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
        ("planted", stats.planted),
    ];
    let counts: Vec<String> = counts
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    format!("{} lines ({})", stats.lines, counts.join(", "))
}
