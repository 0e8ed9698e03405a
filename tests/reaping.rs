//! Zombies never pile up: orphans re-parented to lastcall are reaped, whether lastcall is
//! PID 1 of a namespace (as in a container) or a child subreaper under another init.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::time::Duration;

use support::Lastcall;

/// Double-forks 1,000 orphans that exit at once, then waits (up to 20 s) until none of
/// lastcall's children is a zombie. Exits 0 on success, 1 with the count otherwise.
const ORPHANS: &str = r#"
import os, sys, time
for _ in range(1000):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
reaper = os.getppid()
def zombies():
    n = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] == "Z" and int(fields[1]) == reaper:
            n += 1
    return n
deadline = time.monotonic() + 20
while (n := zombies()) and time.monotonic() < deadline:
    time.sleep(0.05)
print(f"zombies left: {n}", flush=True)
sys.exit(1 if n else 0)
"#;

#[test]
fn as_pid1_no_zombie_is_left() {
    if !support::pid_namespaces() {
        return;
    }
    let mut lc = Lastcall::start_as_pid1(&["run", "--", "python3", "-c", ORPHANS]);
    let status = lc.wait(Duration::from_secs(60));
    assert!(lc.log().contains("zombies left: 0"), "{}", lc.log());
    assert_eq!(status.code(), Some(0), "{}", lc.log());
}

#[test]
fn as_subreaper_no_zombie_is_left() {
    let mut lc = Lastcall::start(&["run", "--", "python3", "-c", ORPHANS]);
    let status = lc.wait(Duration::from_secs(60));
    assert!(lc.log().contains("zombies left: 0"), "{}", lc.log());
    assert_eq!(status.code(), Some(0), "{}", lc.log());
}
