//! The shell-word splitter and the entrypoint-script reader.
#![no_main]
use lastcall::check::{lint, shell};

libfuzzer_sys::fuzz_target!(|data: &str| {
    let _ = shell::split(data);
    let _ = shell::compound_operator(data);
    let _ = shell::simple_argv(data);
    let _ = lint::script_end(data);
});
