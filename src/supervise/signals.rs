//! Signals arrive through a signalfd, as data in the event loop, rather than through
//! handlers. All catchable signals are blocked in every thread (the mask is set before the
//! runtime starts its threads, which inherit it), so nothing is lost between two reads and
//! nothing runs in signal-handler context. Blocked signals are also delivered to PID 1 of a
//! namespace, which ignores signals it has no handler for.

use std::io;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tokio::io::unix::AsyncFd;

/// Signals that must stay unblocked: the kernel sends them for faults in lastcall itself.
const SYNCHRONOUS: [Signal; 6] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

fn catchable() -> SigSet {
    let mut set = SigSet::all();
    for sig in SYNCHRONOUS {
        set.remove(sig);
    }
    set
}

/// Block every catchable signal in the calling thread. Call before any thread starts.
pub fn block_all() -> io::Result<()> {
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&catchable()), None).map_err(io::Error::from)
}

/// The stream of signals sent to lastcall.
#[derive(Debug)]
pub struct Signals {
    fd: AsyncFd<SignalFd>,
}

impl Signals {
    /// Needs a tokio runtime; signals must already be blocked.
    pub fn new() -> io::Result<Signals> {
        let sfd =
            SignalFd::with_flags(&catchable(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
                .map_err(io::Error::from)?;
        Ok(Signals {
            fd: crate::sys::register_signalfd(sfd)?,
        })
    }

    /// The next signal. Real-time signals and unknown numbers are skipped.
    pub async fn next(&self) -> io::Result<Signal> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.get_inner().read_signal() {
                Ok(Some(info)) => {
                    if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                        return Ok(sig);
                    }
                }
                Ok(None) => guard.clear_ready(),
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
