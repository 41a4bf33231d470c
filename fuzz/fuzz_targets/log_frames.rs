//! Fuzz target `log_frames`: see `fuzz/cases.rs` and `gongji_log::fuzzing`.
#![no_main]

#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cases::log::log_frames(data));
