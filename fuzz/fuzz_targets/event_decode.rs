//! Fuzz target `event_decode`: see `fuzz/cases.rs`.
#![no_main]

#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cases::event_decode(data));
