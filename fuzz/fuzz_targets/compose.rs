//! The compose reader and every rule and output format after it.
#![no_main]
use lastcall::check::{check_text, scan::Kind};

libfuzzer_sys::fuzz_target!(|data: &str| {
    let _ = check_text("compose.yaml", data, Some(Kind::Compose));
});
