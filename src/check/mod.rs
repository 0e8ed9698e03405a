//! `lastcall check` (issue 5): audit container and orchestrator files for shutdown
//! mistakes. Not built yet.

/// Flags of `lastcall check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Files or directories to check.
    #[arg(value_name = "PATH")]
    pub paths: Vec<std::path::PathBuf>,
}

/// Run the check; returns the exit code.
pub fn run(args: CheckArgs) -> i32 {
    let _ = args;
    eprintln!("lastcall: check is not built yet (issue 5)");
    1
}
