//! The span-keeping YAML/JSON tree: any text gives a tree or an error, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &str| {
    let _ = lastcall::check::tree::parse(data);
});
