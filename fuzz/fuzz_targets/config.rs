//! The config file reader and the inline-ignore scanner.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &str| {
    let _ = lastcall::check::config::parse(data);
    let _ = lastcall::check::config::inline_ignores(data);
});
