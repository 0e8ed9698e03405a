# A stand-in app for signal tests: records every signal it gets as "NAME MONOTONIC PID"
# lines in the file named by argv[1]. argv[2] says what TERM does: "exit" (exit 0 at once),
# "slow=SECONDS" (finish work for that long, then write "finished" and exit 0), or
# "ignore" (keep running).
import os, signal, sys, time

# os.write on a raw descriptor: a handler interrupted by the next signal (lastcall sends
# CONT right after TERM) must not hit Python's "reentrant call" on a buffered file.
out_fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

class _Out:
    def write(self, text):
        os.write(out_fd, text.encode())

out = _Out()
on_term = sys.argv[2] if len(sys.argv) > 2 else "exit"
stopping = []

def record(sig, frame):
    out.write(f"{signal.Signals(sig).name} {time.monotonic():.6f} {os.getpid()}\n")
    if sig == signal.SIGTERM:
        if on_term == "exit":
            sys.exit(0)
        if on_term.startswith("slow="):
            stopping.append(float(on_term[5:]))

for s in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT",
          "SIGTERM", "SIGALRM", "SIGTSTP", "SIGTTIN", "SIGTTOU"):
    signal.signal(getattr(signal, s), record)
out.write(f"ready {os.getpid()}\n")
while True:
    if stopping:
        time.sleep(stopping[0])
        out.write(f"finished {os.getpid()}\n")
        sys.exit(0)
    time.sleep(0.005)
