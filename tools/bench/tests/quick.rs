//! CI check that the benchmarks still work (not their speed): `gongji-bench --quick` and
//! `gongji-pg-bench --queries --quick` must run to the end and print well-formed figures.

use std::process::Command;

/// The PostgreSQL tests' database: `GONGJI_TEST_PG`, or the cluster `tools/pg-local up` starts.
#[path = "../../../crates/log-pg/tests/support/mod.rs"]
mod pg;

/// Runs a benchmark with `args` and `--work DIR`; checks it succeeded; its stdout and stderr.
fn run_bench(program: &str, args: &[&str], work: &std::path::Path) -> (String, String) {
    let output = Command::new(program)
        .args(args)
        .arg("--work")
        .arg(work)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{stderr}"
    );
    (String::from_utf8(output.stdout).expect("utf8"), stderr)
}

/// The names of the figures a benchmark printed, each line checked to be one figure.
fn figure_names(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .map(|line| {
            assert!(
                line.starts_with("{\"name\":\"")
                    && line.contains(",\"value\":")
                    && line.ends_with("\"}"),
                "not a figure: {line}"
            );
            line.split('"').nth(3).expect("name")
        })
        .collect()
}

#[test]
fn the_quick_benchmark_runs_and_prints_one_json_figure_per_line() {
    let work = tempfile::tempdir().expect("tempdir");
    let (stdout, stderr) = run_bench(
        env!("CARGO_BIN_EXE_gongji-bench"),
        &["--quick", "--no-postgres"],
        work.path(),
    );
    let names = figure_names(&stdout);
    for expected in [
        "log_append_events_per_second",
        "plain_file_append_100B_records_per_second",
        "log_append_vs_plain_file_frame_sized",
        "sled_insert_flush_per_1000_records_per_second",
    ] {
        assert!(names.contains(&expected), "missing {expected} in\n{stdout}");
    }
    // The ledger figures need the gongji binary beside the benchmark; it is
    // built by `cargo test --workspace` (the CLI's end-to-end tests need it).
    if names.contains(&"apply_commands_per_second") {
        for expected in [
            "query_account_median",
            "replay_events_per_second",
            "apply_peak_rss",
        ] {
            assert!(names.contains(&expected), "missing {expected} in\n{stdout}");
        }
    } else {
        assert!(stderr.contains("not found"), "{stderr}");
    }
}

/// The query stage builds the same small region on PostgreSQL and on the file log with the
/// real `gongji`, asks both the same questions and prints each kind's figures; the two stores
/// answer alike. Its log is dropped from the database and its file ledger deleted.
#[test]
fn the_quick_query_stage_measures_both_stores_and_cleans_up() {
    let work = tempfile::tempdir().expect("tempdir");
    let (uri, log) = (pg::pg_uri(), pg::fresh_log("bench-queries-test"));
    let (stdout, stderr) = run_bench(
        env!("CARGO_BIN_EXE_gongji-pg-bench"),
        &["--uri", &uri, "--queries", "--quick", "--pg-log", &log],
        work.path(),
    );
    let names = figure_names(&stdout);
    // The stage needs the gongji binary beside the benchmark (built by `cargo test --workspace`).
    if names.is_empty() {
        assert!(stderr.contains("not found"), "{stderr}");
        return;
    }
    for kind in ["account", "year", "history", "fund", "account_as_of"] {
        for store in ["pg", "file"] {
            for stat in ["p50", "p99", "max"] {
                let name = format!("{store}_query_{kind}_{stat}");
                assert!(
                    names.contains(&name.as_str()),
                    "missing {name} in\n{stdout}"
                );
            }
        }
        let ratio = format!("query_{kind}_p50_pg_over_file");
        assert!(names.contains(&ratio.as_str()), "missing {ratio}");
    }
    for expected in ["pg_events", "file_events", "pg_query_worst_p99"] {
        assert!(names.contains(&expected), "missing {expected} in\n{stdout}");
    }
    assert!(
        stdout.contains(r#"{"name":"query_answers_differing","value":0,"#),
        "{stdout}"
    );
    let left = std::fs::read_dir(work.path())
        .expect("work dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(left, 0, "the file ledger is deleted");
    let mut client = pg::client();
    for table in [
        "gongji_log_heads",
        "gongji_log_records",
        "gongji_projections",
    ] {
        let rows = client
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE log = $1"),
                &[&log],
            )
            .expect("count the bench's rows")
            .get::<_, i64>(0);
        assert_eq!(rows, 0, "the bench's log is dropped from {table}");
    }
}

#[test]
fn the_generator_binary_is_reproducible() {
    let run = |seed: &str| {
        Command::new(env!("CARGO_BIN_EXE_gongji-gen"))
            .args(["--members", "50", "--months", "3", "--seed", seed])
            .output()
            .expect("run gongji-gen")
    };
    let a = run("5");
    assert!(a.status.success());
    assert_eq!(a.stdout, run("5").stdout);
    assert_ne!(a.stdout, run("6").stdout);
    let bad = Command::new(env!("CARGO_BIN_EXE_gongji-gen"))
        .args(["--members", "many"])
        .output()
        .expect("run gongji-gen");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--members"));
}

#[test]
fn the_generator_prints_its_help_and_a_readable_count() {
    for flag in ["--help", "-h"] {
        let help = Command::new(env!("CARGO_BIN_EXE_gongji-gen"))
            .arg(flag)
            .output()
            .expect("run gongji-gen");
        assert_eq!(help.status.code(), Some(0), "{flag}");
        let stdout = String::from_utf8_lossy(&help.stdout);
        for option in [
            "--members",
            "--seed",
            "--months",
            "--start",
            "--region",
            "--out",
        ] {
            assert!(stdout.contains(option), "{flag} lists {option}: {stdout}");
        }
        assert!(
            help.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&help.stderr)
        );
    }
    let run = Command::new(env!("CARGO_BIN_EXE_gongji-gen"))
        .args(["--members", "5", "--months", "1"])
        .output()
        .expect("run gongji-gen");
    assert!(run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!stderr.contains("Stats {"), "no debug output: {stderr}");
    let lines = run.stdout.iter().filter(|b| **b == b'\n').count();
    assert!(
        stderr.starts_with(&format!("gongji-gen: wrote {lines} lines (")),
        "{stderr}"
    );
}
