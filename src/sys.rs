//! The only module with `unsafe`: what must run in the forked child between `fork` and
//! `exec`, where only async-signal-safe calls are allowed.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};

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
            for sig in 1..=SIGRTMAX {
                if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                    continue;
                }
                reset_to_default(sig);
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(io::Error::from)?;
            nix::unistd::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
}

/// The kernel's highest signal number on Linux (glibc's SIGRTMAX is a function).
const SIGRTMAX: i32 = 64;

/// The kernel's `struct sigaction` for x86_64 and aarch64 `rt_sigaction`.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Set `sig` to SIG_DFL with the raw syscall: glibc's `sigaction` refuses signals 32 and 33
/// (it uses them internally), yet a parent may have left them ignored, and ignored
/// dispositions survive exec. Async-signal-safe: one syscall, no allocation.
fn reset_to_default(sig: i32) {
    let act = KernelSigaction {
        handler: 0, // SIG_DFL
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: `act` is a valid, fully initialised kernel sigaction that lives across the
    // call; the old-action pointer is null (not wanted); the size is the kernel's sigset
    // size (8 bytes). SIG_DFL installs no handler code. Errors (EINVAL for KILL/STOP or an
    // unknown number) leave the disposition as it was, which is all we could do anyway.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig as libc::c_long,
            &act as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            8 as libc::c_long,
        );
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
