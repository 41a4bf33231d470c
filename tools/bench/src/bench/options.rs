//! The benchmark's command line.

use std::path::PathBuf;

pub struct Options {
    pub quick: bool,
    pub gongji: Option<PathBuf>,
    pub work: Option<PathBuf>,
    pub members: u64,
    pub records: u64,
    pub sled_records: u64,
    pub query_members: u64,
    pub postgres: bool,
    pub only_append: bool,
}

pub fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        gongji: None,
        work: None,
        members: 100_000,
        records: 5_000_000,
        sled_records: 200_000,
        query_members: 0,
        postgres: true,
        only_append: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes_given = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--quick" => o.quick = true,
            "--no-postgres" => o.postgres = false,
            "--only-append" => o.only_append = true,
            "--gongji" => o.gongji = Some(PathBuf::from(value()?)),
            "--work" => o.work = Some(PathBuf::from(value()?)),
            "--members" => {
                o.members = number(value()?)?;
                sizes_given.push("members");
            }
            "--records" => {
                o.records = number(value()?)?;
                sizes_given.push("records");
            }
            "--query-members" => {
                o.query_members = number(value()?)?;
                sizes_given.push("query-members");
            }
            "-h" | "--help" => {
                return Err(
                    "usage: gongji-bench [--quick] [--gongji PATH] [--work DIR] \
                            [--members N] [--records N] [--query-members N] [--no-postgres] \
                            [--only-append]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.quick {
        if !sizes_given.contains(&"members") {
            o.members = 300;
        }
        if !sizes_given.contains(&"records") {
            o.records = 20_000;
        }
        o.sled_records = 2_000;
    }
    Ok(o)
}
