//! `lastcall drill` (issue 4): rehearse a container stop under load. Not built yet.

/// Flags of `lastcall drill`.
#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    /// The app to drill; without it, a built-in demo app.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<std::ffi::OsString>,
}

/// Run the drill; returns the exit code.
pub fn run(args: DrillArgs) -> i32 {
    let _ = args;
    eprintln!("lastcall: drill is not built yet (issue 4)");
    1
}
