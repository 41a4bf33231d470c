//! Fuzz target `archive`: see `fuzz/cases.rs`.
#![no_main]

#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cases::archive(data));
