//! Support for the proxy, admin and load-balancer tests: the real `lastcall` binary in
//! front of a real app process (`app.py`), a small HTTP/1.1 client over raw sockets (so
//! tests see exactly what is on the wire: headers, clean EOF versus reset), and waiting
//! for conditions instead of sleeping.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const APP_PY: &str = include_str!("app.py");

/// A port nobody listens on right now (the app binds it a moment later).
pub fn free_port() -> u16 {
    // Outside the ephemeral range: see lastcall::net::free_port.
    lastcall::net::free_port().unwrap()
}

/// Write the app script into `dir`.
pub fn app_script(dir: &Path) -> PathBuf {
    let path = dir.join("app.py");
    std::fs::write(&path, APP_PY).unwrap();
    path
}

/// Poll `cond` until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `lastcall run` with a proxy in front of `app.py`.
pub struct Lastcall {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub app_port: u16,
    pub log: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
}

impl Lastcall {
    /// Start lastcall with `extra` flags; waits until the app is ready (serving).
    pub fn start(extra: &[&str]) -> Lastcall {
        let lc = Lastcall::start_no_wait(extra, 0);
        lc.wait_phase("serving", Duration::from_secs(20));
        lc
    }

    pub fn start_no_wait(extra: &[&str], app_delay_ms: u32) -> Lastcall {
        let dir = tempfile::tempdir().unwrap();
        let script = app_script(dir.path());
        let app_port = free_port();
        let upstream = format!("127.0.0.1:{app_port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lastcall"));
        cmd.args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--admin-listen",
            "127.0.0.1:0",
        ]);
        cmd.args(extra);
        cmd.arg("--");
        cmd.arg("python3");
        cmd.arg(&script);
        cmd.arg(app_port.to_string());
        cmd.arg("lastcall-app");
        cmd.arg(app_delay_ms.to_string());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Integration tests run with every variable of the test harness; none of ours.
        for (k, _) in std::env::vars() {
            if k.starts_with("LASTCALL_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if std::env::var_os("LASTCALL_TEST_VERBOSE").is_some() {
                        eprintln!("{line}");
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let find = |prefix: &str| -> SocketAddr {
            let mut found = None;
            wait_until(prefix, Duration::from_secs(10), || {
                found = log.lock().unwrap().iter().find_map(|l| {
                    let rest = &l[l.find(prefix)? + prefix.len()..];
                    rest.split([' ', ',']).next()?.parse().ok()
                });
                found.is_some()
            });
            found.unwrap()
        };
        let proxy = find("proxy listening on ");
        let admin = find("admin listening on ");
        Lastcall {
            child,
            proxy,
            admin,
            app_port,
            log,
            dir,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    /// The phase from `GET /status`; `exited` once the admin endpoint is gone.
    pub fn phase(&self) -> String {
        let Ok(mut c) = Conn::open(self.admin) else {
            return "exited".into();
        };
        let Ok(r) = c.get("/status") else {
            return "exited".into();
        };
        let v: serde_json::Value = serde_json::from_str(&r.body_text()).unwrap();
        v["phase"].as_str().unwrap().to_string()
    }

    /// Wait until the drain reached `phase` or a later one.
    pub fn wait_phase(&self, phase: &str, timeout: Duration) {
        const ORDER: [&str; 6] = [
            "starting", "serving", "unready", "closing", "stopping", "exited",
        ];
        let rank = |p: &str| ORDER.iter().position(|o| *o == p).unwrap();
        let want = rank(phase);
        wait_until(&format!("phase {phase}"), timeout, || {
            rank(&self.phase()) >= want
        });
    }

    /// Probe the health path like a load balancer node, `n` times.
    pub fn probe(&self, n: usize) -> Vec<u16> {
        (0..n).map(|_| get(self.proxy, "/health").status).collect()
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                start.elapsed() < timeout,
                "lastcall did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Lastcall {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 response as read off the wire.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A keep-alive HTTP/1.1 client connection over a raw socket.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            reader: BufReader::new(s),
        })
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: test\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(body)
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Resp> {
        self.send(method, path, headers, body)?;
        self.read_response(method == "HEAD")
    }

    pub fn get(&mut self, path: &str) -> io::Result<Resp> {
        self.request("GET", path, &[], &[])
    }

    /// Read one response. A clean EOF before any byte is `UnexpectedEof`; a reset is
    /// `ConnectionReset`, so tests can tell them apart.
    pub fn read_response(&mut self, head_only: bool) -> io::Result<Resp> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before a response",
            ));
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if self.reader.read_line(&mut h)? == 0 {
                return Err(io::Error::other("closed inside the response head"));
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if head_only || status == 101 || status == 204 || status == 304 {
            return Ok(resp);
        }
        if let Some(n) = resp.header("content-length") {
            let n: usize = n.parse().map_err(io::Error::other)?;
            resp.body.resize(n, 0);
            self.reader.read_exact(&mut resp.body)?;
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim(), 16).map_err(io::Error::other)?;
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                resp.body.extend_from_slice(&chunk[..n]);
            }
        } else {
            self.reader.read_to_end(&mut resp.body)?;
        }
        Ok(resp)
    }

    /// After a `Connection: close` response: the next read must be a clean EOF.
    pub fn read_eof(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 1];
        match self.reader.read(&mut buf)? {
            0 => Ok(()),
            _ => Err(io::Error::other("data after the last response")),
        }
    }

    pub fn raw(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.reader
    }
}

/// One GET on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Resp {
    Conn::open(addr).unwrap().get(path).unwrap()
}

/// A keep-alive load loop on `conns` connections until `stop` is set, bounded by
/// `max`. Returns (ok count, failures as text).
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(usize, Vec<String>)>>,
}

impl Load {
    pub fn start(addr: SocketAddr, conns: usize, path: &'static str, max: Duration) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..conns)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let begin = Instant::now();
                    let mut ok = 0;
                    let mut failed = Vec::new();
                    let mut conn = None;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) && begin.elapsed() < max
                    {
                        if conn.is_none() {
                            match Conn::open(addr) {
                                Ok(c) => conn = Some(c),
                                Err(e) => {
                                    failed.push(format!("connect: {e}"));
                                    continue;
                                }
                            }
                        }
                        let c = conn.as_mut().unwrap();
                        match c.get(path) {
                            Ok(r) if r.status == 200 => {
                                ok += 1;
                                if r.closes() {
                                    conn = None;
                                }
                            }
                            Ok(r) => {
                                failed.push(format!(
                                    "status {}: {}",
                                    r.status,
                                    r.body_text().trim()
                                ));
                                conn = None;
                            }
                            Err(e) => {
                                failed.push(format!("{:?}: {e}", e.kind()));
                                conn = None;
                            }
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    (ok, failed)
                })
            })
            .collect();
        Load { stop, threads }
    }

    pub fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut ok = 0;
        let mut failed = Vec::new();
        for t in self.threads {
            let (o, f) = t.join().unwrap();
            ok += o;
            failed.extend(f);
        }
        (ok, failed)
    }
}
