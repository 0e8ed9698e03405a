//! The `lastcall` binary; all behaviour lives in the library.

fn main() {
    std::process::exit(lastcall::cli::main());
}
