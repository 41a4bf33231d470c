//! How the benchmark reports and measures: one JSON figure per line on standard output, notes
//! on standard error, rates, medians, bytes on disk, a child process's wall time and peak
//! memory, and the directory a benchmark works in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn emit(name: &str, value: f64, unit: &str) {
    let value = if value.is_finite() { value } else { -1.0 };
    println!(
        "{{\"name\":\"{name}\",\"value\":{},\"unit\":\"{unit}\"}}",
        if value.fract() == 0.0 && value.abs() < 1e15 {
            format!("{value:.0}")
        } else {
            format!("{value:.4}")
        }
    );
}

pub fn note(message: &str) {
    eprintln!("gongji-bench: {message}");
}

pub fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// The directory a benchmark works in: `given` (created if missing), else a fresh temporary
/// one named with `prefix`, deleted when the returned guard is dropped.
pub fn work_dir(
    given: Option<&Path>,
    prefix: &str,
) -> Result<(PathBuf, Option<tempfile::TempDir>), String> {
    if let Some(dir) = given {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        return Ok((dir.to_path_buf(), None));
    }
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| e.to_string())?;
    Ok((tmp.path().to_path_buf(), Some(tmp)))
}

/// Runs a child to completion; returns (exit code, wall time, peak RSS bytes).
pub fn run_measured(command: &mut Command) -> Result<(i32, Duration, u64), String> {
    let start = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    if waited != pid {
        return Err(format!("waiting for {command:?} failed"));
    }
    // The child was reaped by wait4; forget it so its Drop does nothing.
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, elapsed, usage.ru_maxrss as u64 * 1024))
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}
