//! `gongji-gen`: writes a seeded synthetic region as a command file for `gongji apply`.
//!
//! ```text
//! gongji-gen [--members N] [--seed S] [--months M] [--start YYYY-MM] [--region CODE] [--out FILE]
//! ```
//! Defaults: 1000 members, seed 1, 12 months from 2024-01, region 500000, standard output.
//! The same arguments always give the same file. Prints the line counts on standard error.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use gongji_tools::gen::{generate, Config};

const USAGE: &str = "usage: gongji-gen [--members N] [--seed S] [--months M] [--start YYYY-MM] \
                     [--region CODE] [--out FILE]";

fn parse(args: &[String]) -> Result<(Config, Option<String>), String> {
    let mut config = Config::default();
    let mut out = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
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
    Ok((config, out))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, out) = match parse(&args) {
        Ok(parsed) => parsed,
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
            eprintln!("{stats:?}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("gongji-gen: {message}");
            ExitCode::from(2)
        }
    }
}
