//! The only module with `unsafe`: what must run in the forked child between `fork` and
//! `exec`, where only async-signal-safe calls are allowed.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};

/// Make the child start like a process started by a plain shell, whatever lastcall itself
/// inherited or set up: every signal unblocked (lastcall blocks them all to read them from
/// a signalfd), every disposition at default (Rust ignores SIGPIPE, and a parent such as
/// `nohup` may have ignored HUP), and in a session of its own so that signals sent to its
/// process group reach everything it starts and nothing else.
pub fn prepare_child(cmd: &mut Command) {
    // SAFETY: the closure runs in the child after fork, before exec. It only calls
    // sigaction, sigprocmask and setsid, which are async-signal-safe, allocates nothing,
    // and touches no lock that another thread of the parent could have held at fork time.
    unsafe {
        cmd.pre_exec(|| {
            for sig in Signal::iterator() {
                if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
                    continue;
                }
                // SAFETY: SIG_DFL installs no handler, so there is no handler code whose
                // safety depends on program state.
                let _ = nix::sys::signal::signal(sig, SigHandler::SigDfl);
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(io::Error::from)?;
            nix::unistd::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
}

/// Register a signalfd with the tokio reactor. Must be called inside a runtime.
pub fn register_signalfd(
    sfd: nix::sys::signalfd::SignalFd,
) -> io::Result<tokio::io::unix::AsyncFd<nix::sys::signalfd::SignalFd>> {
    // SAFETY: the SignalFd owns its descriptor (an OwnedFd inside), it moves into the
    // AsyncFd, and nothing closes or replaces it while the AsyncFd holds it; `as_raw_fd`
    // always returns that same descriptor.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(sfd, tokio::io::Interest::READABLE)
            .map_err(|e| e.into_parts().1)
    }
}
