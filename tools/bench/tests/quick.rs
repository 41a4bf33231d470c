//! CI check that the benchmark still works (not its speed): `gongji-bench --quick`
//! must run to the end and print well-formed figures.

use std::process::Command;

#[test]
fn the_quick_benchmark_runs_and_prints_one_json_figure_per_line() {
    let work = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_gongji-bench"))
        .args(["--quick", "--no-postgres", "--work"])
        .arg(work.path())
        .output()
        .expect("run gongji-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "gongji-bench --quick failed:\n{stderr}"
    );
    let stdout = String::from_utf8(output.stdout).expect("utf8");
    let names: Vec<&str> = stdout
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
        .collect();
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
