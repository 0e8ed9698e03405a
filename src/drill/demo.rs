//! The built-in demo app, and the drill's always-healthy peer backend.
//!
//! The demo is the app most teams actually ship: an HTTP server with some response latency
//! that dies at once on SIGTERM, like a Go server that never called `signal.Notify` (Go's
//! runtime exits on TERM) or a Node server whose framework quits on it. It runs as a real,
//! separate process (`lastcall demo-app`, a hidden subcommand) so that the drill stops it
//! exactly as it would stop a user's app.
//!
//! It is a deliberately small HTTP/1.1 server on a raw TCP socket rather than hyper, because
//! the drill needs it to misbehave precisely on request (`--misbehave`): answer 500, reset
//! the connection, close it without an answer, or never answer. Those are the failure
//! causes the drill must count, and a test drives them on purpose.
//!
//! TERM arrives through a signalfd, not a handler: as PID 1 of a PID namespace the kernel
//! drops signals that have the default disposition, and a blocked signal is never dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::duration;
use crate::supervise::signals::{self, Signals};

/// Flags of the hidden `lastcall demo-app` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Port to listen on, on 127.0.0.1.
    #[arg(long, env = "PORT")]
    pub port: u16,
    /// How long each answer takes (health checks are answered at once).
    #[arg(long, default_value = "50ms", value_parser = duration::arg)]
    pub latency: Duration,
    /// Misbehave on purpose, cycling through these answers request by request:
    /// ok, 500, reset, close, hang.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub misbehave: Vec<Answer>,
    /// Close keep-alive connections that stay idle this long (Node's keepAliveTimeout is 5s).
    #[arg(long, value_name = "DURATION", value_parser = duration::arg)]
    pub idle_timeout: Option<Duration>,
    /// Ignore SIGTERM (an app that never stops until SIGKILL).
    #[arg(long)]
    pub ignore_term: bool,
}

/// How the demo answers one (non-health) request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Answer {
    /// 200 after the latency.
    Ok,
    /// 500 after the latency.
    #[value(name = "500")]
    Status500,
    /// Reset the connection (RST) instead of answering.
    Reset,
    /// Close the connection (FIN) instead of answering.
    Close,
    /// Never answer; keep the connection open until the client gives up.
    Hang,
}

/// What a server answers; shared by every connection.
#[derive(Debug)]
pub struct Behaviour {
    pub name: &'static str,
    pub latency: Duration,
    pub pattern: Vec<Answer>,
    /// Close keep-alive connections idle for this long.
    pub idle_timeout: Option<Duration>,
    served: AtomicUsize,
}

impl Behaviour {
    pub fn new(name: &'static str, latency: Duration, pattern: Vec<Answer>) -> Behaviour {
        Behaviour {
            name,
            latency,
            pattern,
            idle_timeout: None,
            served: AtomicUsize::new(0),
        }
    }

    fn next_answer(&self) -> Answer {
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        if self.pattern.is_empty() {
            Answer::Ok
        } else {
            self.pattern[n % self.pattern.len()]
        }
    }
}

/// Run the demo app until a stop signal; returns the exit code (128 + signal).
pub fn run(args: DemoArgs) -> i32 {
    if let Err(e) = signals::block_all() {
        crate::log::say(format_args!("demo-app: cannot block signals: {e}"));
        return 1;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::log::say(format_args!("demo-app: cannot start the runtime: {e}"));
            return 1;
        }
    };
    runtime.block_on(async move {
        let signals = match Signals::new() {
            Ok(s) => s,
            Err(e) => {
                crate::log::say(format_args!("demo-app: cannot read signals: {e}"));
                return 1;
            }
        };
        let listener = match TcpListener::bind(("127.0.0.1", args.port)).await {
            Ok(l) => l,
            Err(e) => {
                crate::log::say(format_args!(
                    "demo-app: cannot listen on 127.0.0.1:{}: {e}",
                    args.port
                ));
                return 1;
            }
        };
        crate::log::say(format_args!(
            "demo-app: listening on 127.0.0.1:{} (latency {}); exits at once on SIGTERM",
            args.port,
            duration::fmt(args.latency)
        ));
        let mut behaviour = Behaviour::new("task", args.latency, args.misbehave);
        behaviour.idle_timeout = args.idle_timeout;
        let behaviour = Arc::new(behaviour);
        tokio::spawn(serve(listener, behaviour));
        loop {
            match signals.next().await {
                Ok(nix::sys::signal::Signal::SIGTERM) if args.ignore_term => {
                    crate::log::say(format_args!("demo-app: ignoring SIGTERM (--ignore-term)"));
                }
                Ok(sig) if is_stop(sig) => {
                    // No drain, no goodbye: this is the app that loses requests. Exit from
                    // here, without unwinding the runtime, as a process killed by the
                    // signal would (status 128+N, like a shell reports it).
                    std::process::exit(128 + sig as i32);
                }
                Ok(_) => continue,
                Err(e) => {
                    crate::log::say(format_args!("demo-app: reading signals failed: {e}"));
                    return 1;
                }
            }
        }
    })
}

fn is_stop(sig: nix::sys::signal::Signal) -> bool {
    use nix::sys::signal::Signal::*;
    matches!(sig, SIGTERM | SIGINT | SIGQUIT | SIGHUP)
}

/// Serve connections on `listener` until the runtime ends.
pub async fn serve(listener: TcpListener, behaviour: Arc<Behaviour>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, behaviour.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A request head is never larger than this from the drill's own clients.
const MAX_HEAD: usize = 16 * 1024;

async fn connection(mut stream: TcpStream, behaviour: Arc<Behaviour>) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let head_len = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                return;
            }
            let read = stream.read(&mut chunk);
            let got = match behaviour.idle_timeout.filter(|_| buf.is_empty()) {
                // An idle keep-alive connection: close it (FIN) after the idle timeout, as
                // Node (5 s) and Go servers with an IdleTimeout do. A load balancer that
                // reuses it at that moment meets the keep-alive race.
                Some(idle) => match tokio::time::timeout(idle, read).await {
                    Ok(r) => r,
                    Err(_) => {
                        let _ = stream.shutdown().await;
                        return;
                    }
                },
                None => read.await,
            };
            match got {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = Head::parse(&buf[..head_len]);
        buf.drain(..head_len);
        // Bodies are not used; read and drop them so the next request parses.
        let mut body_left = head.content_length;
        while body_left > 0 {
            if buf.is_empty() {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let take = body_left.min(buf.len());
            buf.drain(..take);
            body_left -= take;
        }
        let (status, body) = if head.path == "/health" {
            (200, "ok\n".to_string())
        } else {
            let answer = behaviour.next_answer();
            tokio::time::sleep(behaviour.latency).await;
            match answer {
                Answer::Ok => (200, format!("served by {}\n", behaviour.name)),
                Answer::Status500 => (500, "broken on purpose\n".to_string()),
                Answer::Reset => {
                    let _ = stream.set_zero_linger();
                    return;
                }
                Answer::Close => {
                    let _ = stream.shutdown().await;
                    return;
                }
                Answer::Hang => {
                    // Hold the connection until the client gives up on it.
                    while let Ok(n) = stream.read(&mut chunk).await {
                        if n == 0 {
                            break;
                        }
                    }
                    return;
                }
            }
        };
        let reason = if status == 200 {
            "OK"
        } else {
            "Internal Server Error"
        };
        let connection = if head.close { "close" } else { "keep-alive" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() || head.close {
            return;
        }
    }
}

struct Head {
    path: String,
    content_length: usize,
    close: bool,
}

impl Head {
    fn parse(raw: &[u8]) -> Head {
        let text = String::from_utf8_lossy(raw);
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let _method = parts.next();
        let path = parts.next().unwrap_or("/").to_string();
        let http10 = parts.next() == Some("HTTP/1.0");
        let mut head = Head {
            path,
            content_length: 0,
            close: http10,
        };
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                head.content_length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("connection") {
                head.close = value.eq_ignore_ascii_case("close");
            }
        }
        head
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_drill_sends() {
        let h = Head::parse(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(
            (h.path.as_str(), h.close, h.content_length),
            ("/health", true, 0)
        );
        let h = Head::parse(b"POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n");
        assert_eq!(
            (h.path.as_str(), h.close, h.content_length),
            ("/", false, 12)
        );
    }

    #[test]
    fn misbehaviour_cycles_request_by_request() {
        let b = Behaviour::new(
            "t",
            Duration::ZERO,
            vec![Answer::Ok, Answer::Status500, Answer::Reset],
        );
        let seen: Vec<Answer> = (0..6).map(|_| b.next_answer()).collect();
        assert_eq!(
            seen,
            [
                Answer::Ok,
                Answer::Status500,
                Answer::Reset,
                Answer::Ok,
                Answer::Status500,
                Answer::Reset
            ]
        );
    }
}
