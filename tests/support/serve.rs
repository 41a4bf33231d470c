//! Starting `gongji serve` for the end-to-end tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use super::TestLedger;

/// Starts `gongji serve` over `ledger` on a loopback port the system picks, with `extra`
/// arguments and its standard error to `stderr`; returns the process and the address it
/// listens on, read from the first line it prints.
pub fn spawn(ledger: &TestLedger, extra: &[&str], stderr: Stdio) -> (Child, String) {
    let mut child = ledger
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("gongji serve starts");
    let mut first = String::new();
    let stdout = child.stdout.take().expect("stdout piped");
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let address = first
        .trim()
        .strip_prefix("gongji serve: listening on http://")
        .unwrap_or_else(|| panic!("first line names the address: {first:?}"))
        .to_string();
    (child, address)
}
