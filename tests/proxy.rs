//! The drain proxy end to end: the real `lastcall` binary in front of a real app process,
//! real clients over loopback, the test itself acting as the load balancer's prober.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod proxy_support;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use proxy_support::{Conn, Lastcall, Load, get, wait_until};

const LONG: Duration = Duration::from_secs(20);

#[test]
fn forwards_requests_streams_bodies_and_rewrites_headers() {
    let lc = Lastcall::start(&[]);
    let r = get(lc.proxy, "/hello");
    assert_eq!(
        (r.status, r.body_text().as_str()),
        (200, "hello from lastcall-app\n")
    );

    let mut c = Conn::open(lc.proxy).unwrap();
    let r = c
        .request(
            "GET",
            "/headers",
            &[
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-custom", "kept"),
            ],
            &[],
        )
        .unwrap();
    let seen = r.body_text();
    assert!(
        seen.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1\n"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: http\n"), "{seen}");
    assert!(seen.contains("x-custom: kept\n"), "{seen}");
    assert!(seen.contains("host: test\n"), "{seen}");
    assert!(seen.starts_with("request-target: /headers\n"), "{seen}");
    assert!(!seen.contains("x-hop"), "{seen}");
    assert!(!seen.contains("keep-alive"), "{seen}");
    assert_eq!(r.header("connection"), None);

    // A body larger than any buffer on the way, both ways, on the same keep-alive connection.
    let body: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let r = c.request("POST", "/echo", &[], &body).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "echoed body differs");

    let r = c.get("/stream?chunks=5&ms=20").unwrap();
    assert_eq!(
        r.body_text(),
        "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n"
    );
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
}

#[test]
fn responses_arrive_whole_however_the_app_frames_them() {
    let lc = Lastcall::start(&[]);
    // All on one keep-alive client connection: lastcall frames every response for the
    // client itself, whatever the app did (RFC 9112 6.3), and keeps the client connection.
    let mut c = Conn::open(lc.proxy).unwrap();
    let table: &[(&str, &str, u16, &str)] = &[
        ("GET", "/raw/close-delimited", 200, "until the end\n"),
        ("GET", "/raw/informational", 200, "final\n"),
        ("GET", "/raw/chunked-and-length", 200, "chunk\n"),
        ("GET", "/raw/no-content", 204, ""),
        ("GET", "/raw/http10", 200, "old app"),
        ("HEAD", "/hello", 200, ""),
        (
            "GET",
            "/stream?chunks=3&ms=0",
            200,
            "chunk 0\nchunk 1\nchunk 2\n",
        ),
        ("GET", "/hello", 200, "hello from lastcall-app\n"),
    ];
    for (method, path, status, body) in table {
        let r = c.request(method, path, &[], &[]).unwrap();
        let what = format!("{method} {path}");
        assert_eq!(
            (r.status, r.body_text().as_str()),
            (*status, *body),
            "{what}"
        );
        assert!(!r.closes(), "{what}");
        match *path {
            // A HEAD answer keeps the length of the body it did not send.
            "/hello" if *method == "HEAD" => assert_eq!(r.header("content-length"), Some("24")),
            // Chunked wins over a length sent next to it, and the length is not passed on.
            "/raw/chunked-and-length" => assert_eq!(r.header("content-length"), None),
            "/raw/no-content" => assert_eq!(r.header("x-app"), Some("yes")),
            _ => {}
        }
    }
}

#[test]
fn an_app_that_breaks_http_gets_a_502_or_a_cut_response_never_a_hang() {
    let lc = Lastcall::start(&[]);
    let table = [
        ("garbage", "not an HTTP/1.x response"),
        ("ssh", "not an HTTP/1.x response"),
        (
            "gzip-transfer",
            "a transfer coding other than chunked, which lastcall cannot pass on",
        ),
    ];
    for (name, reason) in table {
        let r = get(lc.proxy, &format!("/raw/{name}"));
        assert_eq!(r.status, 502, "{name}");
        let line = format!(
            "502 for GET /raw/{name}: the app at 127.0.0.1:{} did not answer: malformed response head: {reason}",
            lc.app_port
        );
        wait_until("the 502 log line", Duration::from_secs(5), || {
            lc.log_text().contains(&line)
        });
    }
    // The head went out before the app broke off: the client gets what there was and
    // then the end of the connection, not a wait for bytes that will never come.
    let mut c = Conn::open(lc.proxy).unwrap();
    let err = c.get("/raw/truncated").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    assert_eq!(get(lc.proxy, "/hello").status, 200);
}

#[test]
fn the_app_gets_the_length_of_the_body_never_a_conflicting_one() {
    let lc = Lastcall::start(&[]);
    // (headers, body as sent, what the app must see): a length and chunked framing
    // together are how requests are smuggled past a proxy; the app sees one framing,
    // the body's.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>);
    let table: &[Case<'_>] = &[
        (
            &[("transfer-encoding", "chunked")],
            "3\r\nabc\r\n0\r\n\r\n",
            Some("transfer-encoding: chunked\ncontent-length: None\nbody: abc\n"),
        ),
        (
            &[("content-length", "3")],
            "abc",
            Some("transfer-encoding: None\ncontent-length: 3\nbody: abc\n"),
        ),
        // hyper refuses this one outright (400) or reads it as chunked; the app never
        // sees the client's length.
        (
            &[("content-length", "50"), ("transfer-encoding", "chunked")],
            "3\r\nabc\r\n0\r\n\r\n",
            None,
        ),
    ];
    for (headers, body, want) in table {
        let mut c = Conn::open(lc.proxy).unwrap();
        let mut head = String::from("POST /framing HTTP/1.1\r\nhost: test\r\n");
        for (k, v) in *headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(body);
        std::io::Write::write_all(&mut c.stream(), head.as_bytes()).unwrap();
        let r = c.read_response(false).unwrap();
        match want {
            Some(want) => assert_eq!((r.status, r.body_text().as_str()), (200, *want)),
            None if r.status == 400 => {}
            None => assert_eq!(
                (r.status, r.body_text().as_str()),
                (
                    200,
                    "transfer-encoding: chunked\ncontent-length: None\nbody: abc\n"
                ),
                "{headers:?}"
            ),
        }
    }
}

#[test]
fn an_app_that_answers_before_reading_the_upload_is_heard() {
    let lc = Lastcall::start(&[]);
    let mut c = Conn::open(lc.proxy).unwrap();
    // Small enough to sit in socket buffers: this client writes it all before reading.
    let body = vec![b'x'; 200 * 1024];
    let r = c.request("POST", "/early", &[], &body).unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (413, "too large\n"));
    assert_eq!(get(lc.proxy, "/hello").status, 200);
}

#[test]
fn health_is_503_until_the_app_is_ready() {
    let lc = Lastcall::start_no_wait(&["--upstream-health-path", "/health"], 1500);
    let r = get(lc.proxy, "/health");
    assert_eq!((r.status, r.body_text().as_str()), (503, "starting\n"));
    // Traffic that arrives before the app listens is answered, not dropped on the floor.
    let r = get(lc.proxy, "/hello");
    assert_eq!(r.status, 502);
    wait_until("health 200", LONG, || {
        get(lc.proxy, "/health").status == 200
    });
    assert_eq!(get(lc.proxy, "/health").body_text(), "serving\n");
    let log = lc.log_text();
    assert!(log.contains("phase serving: the app is ready"), "{log}");
    assert!(
        log.contains("502 for GET /hello: the app at 127.0.0.1:"),
        "{log}"
    );
}

#[test]
fn a_stop_loses_nothing_in_flight_and_closing_refuses_new_requests() {
    let mut lc = Lastcall::start(&["--stop-timeout", "20s"]);
    let proxy = lc.proxy;
    let slow = std::thread::spawn(move || {
        let start = Instant::now();
        let r = get(proxy, "/slow?ms=5000");
        (r, start.elapsed())
    });
    let stream = std::thread::spawn(move || get(proxy, "/stream?chunks=30&ms=100"));
    let load = Load::start(proxy, 4, "/hello", LONG);
    wait_until("2 requests in flight", LONG, || {
        let body = get(lc.admin, "/status").body_text();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["in_flight"].as_u64().unwrap() >= 2
    });
    let stopped = Instant::now();
    lc.signal(Signal::SIGTERM);
    lc.wait_phase("unready", LONG);
    // Unready: health says 503, everything else still flows.
    assert_eq!(lc.probe(1), [503]);
    let before = Instant::now();
    wait_until("load during unready", LONG, || {
        before.elapsed() > Duration::from_millis(500)
    });
    let (ok, failed) = load.finish();
    assert!(failed.is_empty(), "failed during unready: {failed:?}");
    assert!(ok > 0);
    assert_eq!(
        lc.phase(),
        "unready",
        "one probe is below the threshold of 2"
    );

    // The second 503 probe: the load balancer has let go, closing begins.
    assert_eq!(lc.probe(1), [503]);
    lc.wait_phase("closing", LONG);
    let mut c = Conn::open(lc.proxy).unwrap();
    let r = c.get("/hello").unwrap();
    assert_eq!(r.status, 503);
    assert!(r.closes(), "{:?}", r.headers);
    assert_eq!(r.header("retry-after"), Some("1"));
    c.read_eof().unwrap();
    // A client that sends a large body it is not asked for gets the 503 too, then a clean
    // close: the unread body must not turn the close into a reset that eats the answer.
    let mut c = Conn::open(lc.proxy).unwrap();
    let body = vec![b'x'; 4 * 1024 * 1024];
    let writer = {
        let mut s = c.stream().try_clone().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            let head = format!(
                "POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        })
    };
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 503);
    assert!(r.closes());
    writer.join().unwrap();

    let (r, took) = slow.join().unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (200, "slow done\n"));
    assert!(
        r.closes(),
        "a response finished in closing carries Connection: close"
    );
    assert!(took >= Duration::from_secs(5));
    let r = stream.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_text().lines().count(), 30);

    let status = lc.wait_exit(LONG);
    assert_eq!(
        status.code(),
        Some(143),
        "the app died of the TERM it got in stopping"
    );
    let log = lc.log_text();
    assert!(log.contains("closing ends: nothing in flight"), "{log}");
    assert!(log.contains("sending TERM to the app"), "{log}");
    // The app got TERM only after the 5 s request was done.
    assert!(stopped.elapsed() >= Duration::from_secs(4), "{log}");
}

#[test]
fn keepalive_clients_see_clean_closes_never_a_reset() {
    let lc = Lastcall::start(&["--stop-timeout", "20s"]);
    // Connections that keep sending, with short gaps, so that some send at the very moment
    // closing shuts them, and connections that stay idle.
    let busy: Vec<_> = (0..16)
        .map(|i| {
            let proxy = lc.proxy;
            std::thread::spawn(move || {
                let mut c = Conn::open(proxy).unwrap();
                let mut seen = Vec::new();
                let begin = Instant::now();
                while begin.elapsed() < LONG {
                    match c.get("/hello") {
                        Ok(r) => {
                            let closes = r.closes();
                            seen.push(format!(
                                "{}{}",
                                r.status,
                                if closes { " close" } else { "" }
                            ));
                            if closes {
                                // A client that sends its next request at the moment the
                                // connection is closed (it did not look at the header).
                                let sent = c.send("GET", "/hello", &[], &[]);
                                seen.push(match (sent, c.read_response(false)) {
                                    (_, Err(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                                        "eof".into()
                                    }
                                    (Err(e), _) | (_, Err(e)) => {
                                        format!("after close: {:?} {e}", e.kind())
                                    }
                                    (_, Ok(r)) => format!("after close: answered {}", r.status),
                                });
                                break;
                            }
                        }
                        Err(e) => {
                            seen.push(format!("{:?}", e.kind()));
                            break;
                        }
                    }
                    std::thread::sleep(Duration::from_micros(300 * (i % 4)));
                }
                seen
            })
        })
        .collect();
    let mut idle: Vec<Conn> = (0..8)
        .map(|_| {
            let mut c = Conn::open(lc.proxy).unwrap();
            assert_eq!(c.get("/hello").unwrap().status, 200);
            c
        })
        .collect();
    assert_eq!(get(lc.admin, "/status").status, 200);
    let r = Conn::open(lc.admin)
        .unwrap()
        .request("POST", "/drain", &[], &[])
        .unwrap();
    assert_eq!(r.status, 202);
    assert_eq!(lc.probe(2), [503, 503]);
    lc.wait_phase("closing", LONG);

    for c in &mut idle {
        c.read_eof()
            .expect("an idle keep-alive connection ends with a clean FIN");
    }
    for t in busy {
        let seen = t.join().unwrap();
        let last = seen.last().cloned().unwrap_or_default();
        assert!(
            last == "eof" || last == "UnexpectedEof",
            "a busy connection must end cleanly, got {seen:?}"
        );
        assert!(
            !seen.iter().any(|s| s.contains("Reset")),
            "reset seen: {seen:?}"
        );
        // Every request got a full answer until the connection ended.
        assert!(
            seen.iter().filter(|s| s.starts_with("200")).count() > 0,
            "{seen:?}"
        );
    }
}

#[test]
fn an_upgraded_connection_survives_unready_and_is_closed_at_the_cap() {
    let mut lc = Lastcall::start(&[
        "--stop-timeout",
        "8s",
        "--deregistration-delay",
        "2s",
        "--drain-timeout",
        "3s",
    ]);
    let mut ws = Conn::open(lc.proxy).unwrap();
    ws.send(
        "GET",
        "/ws",
        &[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        &[],
    )
    .unwrap();
    let r = ws.read_response(false).unwrap();
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    let echo = |ws: &mut Conn, msg: &[u8]| {
        use std::io::{Read, Write};
        ws.raw().get_mut().write_all(msg).unwrap();
        let mut back = vec![0; msg.len()];
        ws.raw().read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    };
    echo(&mut ws, b"before");
    let stopped = Instant::now();
    lc.signal(Signal::SIGTERM);
    lc.wait_phase("unready", LONG);
    echo(&mut ws, b"during unready");
    assert_eq!(lc.probe(2), [503, 503]);
    lc.wait_phase("closing", LONG);
    echo(&mut ws, b"during closing");
    // Closing waits for the tunnel (it is in flight) until its cap at +5 s, then closes it.
    ws.read_eof().unwrap();
    let closed = stopped.elapsed();
    assert!(
        closed >= Duration::from_millis(4500) && closed < Duration::from_secs(7),
        "closed at {closed:?}"
    );
    lc.wait_exit(LONG);
    let log = lc.log_text();
    assert!(
        log.contains("closing reached its cap with 1 request(s) in flight"),
        "{log}"
    );
    assert!(
        log.contains("closing an upgraded connection: the drain is over"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_connections_get_goaway_and_finish_their_streams() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let lc = tokio::task::spawn_blocking(|| Lastcall::start(&["--stop-timeout", "20s"]))
        .await
        .unwrap();
    let stream = tokio::net::TcpStream::connect(lc.proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = |path: &str| {
        hyper::Request::get(format!("http://test{path}"))
            .body(Empty::new())
            .unwrap()
    };
    let r = sender.send_request(req("/hello")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), hyper::Version::HTTP_2);
    // The HTTP/1.1 app sees origin-form and a Host header made from :authority.
    let r = sender.send_request(req("/headers")).await.unwrap();
    let seen = r.into_body().collect().await.unwrap().to_bytes();
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("request-target: /headers\n"), "{seen}");
    assert!(seen.contains("host: test\n"), "{seen}");
    let slow = sender.send_request(req("/slow?ms=1500"));
    let slow = tokio::spawn(slow);
    // Let the slow stream reach the app before the stop.
    let admin = lc.admin;
    tokio::task::spawn_blocking(move || {
        wait_until("the slow stream in flight", LONG, || {
            let v: serde_json::Value =
                serde_json::from_str(&get(admin, "/status").body_text()).unwrap();
            v["in_flight"].as_u64().unwrap() >= 1
        });
        let r = Conn::open(admin)
            .unwrap()
            .request("POST", "/drain", &[], &[])
            .unwrap();
        assert_eq!(r.status, 202);
    })
    .await
    .unwrap();
    let lc = tokio::task::spawn_blocking(move || {
        assert_eq!(lc.probe(2), [503, 503]);
        lc.wait_phase("closing", LONG);
        lc
    })
    .await
    .unwrap();
    // GOAWAY: the client's connection ends cleanly once the open stream is done, and the
    // stream itself completes normally.
    let ended = tokio::time::timeout(LONG, conn).await.unwrap().unwrap();
    assert!(ended.is_ok(), "{ended:?}");
    let r = slow.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"slow done\n");
    assert!(sender.send_request(req("/hello")).await.is_err());
    drop(lc);
}

#[test]
fn a_get_the_app_closes_its_idle_connection_under_is_sent_again_a_post_is_not() {
    let lc = Lastcall::start(&[]);
    let mut c = Conn::open(lc.proxy).unwrap();
    assert_eq!(c.get("/close-reused").unwrap().status, 200);
    // The upstream connection now idles, as before an app's keep-alive timeout fires;
    // the next request on it is closed under, unanswered.
    std::thread::sleep(Duration::from_millis(300));
    let r = c.get("/close-reused").unwrap();
    assert_eq!(
        (r.status, r.body_text().as_str()),
        (200, "first on this connection\n"),
        "{}",
        lc.log_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    let r = c
        .request("POST", "/close-reused", &[], b"not safe to repeat")
        .unwrap();
    assert_eq!(r.status, 502, "a POST must not be sent twice");
    // The log line is read from lastcall's stderr by another thread: wait for it.
    wait_until("the 502 log line", Duration::from_secs(5), || {
        lc.log_text().contains("502 for POST /close-reused")
    });
}

#[test]
fn bad_requests_get_400_and_431_never_a_crash() {
    let lc = Lastcall::start(&[]);
    use std::io::Write;
    let mut c = Conn::open(lc.proxy).unwrap();
    c.raw()
        .get_mut()
        .write_all(b"NOT HTTP AT ALL\r\n\r\n")
        .unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 400);

    let mut c = Conn::open(lc.proxy).unwrap();
    let huge = "a".repeat(100 * 1024);
    let r = c.request("GET", "/hello", &[("x-huge", &huge)], &[]);
    match r {
        Ok(r) => assert_eq!(r.status, 431),
        Err(e) => panic!("expected 431, got {e}"),
    }

    // A malformed chunk in the request body is the client's mistake: 400, not a 502 that
    // blames the app (and would count as an upstream error on dashboards).
    let mut c = Conn::open(lc.proxy).unwrap();
    c.raw()
        .get_mut()
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n",
        )
        .unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 400);
    let m = get(lc.admin, "/metrics").body_text();
    assert!(
        m.contains("lastcall_upstream_errors_total{kind=\"other\"} 0\n"),
        "{m}"
    );
    assert!(!lc.log_text().contains("502 for POST"), "{}", lc.log_text());

    assert_eq!(get(lc.proxy, "/hello").status, 200);
}

/// Slowloris: a head that starts and never finishes ends the connection at
/// --client-header-timeout. An idle keep-alive connection, with no byte of a next request,
/// is never closed from this side: the load balancer may reuse it at any moment.
#[test]
fn a_head_that_never_completes_is_cut_off_an_idle_connection_is_not() {
    use std::io::Write;
    let lc = Lastcall::start(&["--client-header-timeout", "1s"]);

    let mut idle = Conn::open(lc.proxy).unwrap();
    assert_eq!(idle.get("/hello").unwrap().status, 200);

    let mut slow = Conn::open(lc.proxy).unwrap();
    let t0 = Instant::now();
    slow.raw()
        .get_mut()
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.read_eof().unwrap();
    let cut = t0.elapsed();
    assert!(
        cut >= Duration::from_millis(800) && cut < Duration::from_secs(10),
        "{cut:?}"
    );

    // The idle connection outlived the timeout (it sat idle while the slow head was cut
    // off) and still serves.
    assert_eq!(idle.get("/hello").unwrap().status, 200);
    // And a complete head on a reused connection is not timed out by an earlier one.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(idle.get("/hello").unwrap().status, 200);
}

/// A client that stops sending its upload holds the request up, not the app: at
/// --upstream-timeout it gets 408 and its connection is closed, and nothing counts against
/// the app (no 504, no upstream error).
#[test]
fn a_stalled_upload_is_the_clients_408_not_the_apps_504() {
    use std::io::Write;
    let lc = Lastcall::start(&["--upstream-timeout", "300ms"]);
    let mut c = Conn::open(lc.proxy).unwrap();
    c.raw()
        .get_mut()
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
        .unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 408);
    assert_eq!(
        r.body_text(),
        "408 request timeout: the request body stopped arriving\n"
    );
    assert!(r.closes(), "{:?}", r.header("connection"));
    c.read_eof().unwrap();

    let m = get(lc.admin, "/metrics").body_text();
    assert!(
        m.contains("lastcall_upstream_errors_total{kind=\"timeout\"} 0\n"),
        "{m}"
    );
    assert!(
        m.contains("lastcall_requests_total{phase=\"serving\",code=\"408\"} 1\n"),
        "{m}"
    );
    assert!(!lc.log_text().contains("504 for POST"), "{}", lc.log_text());
    // An upload that completes is the app's to answer, as ever.
    let mut c = Conn::open(lc.proxy).unwrap();
    let r = c.request("POST", "/upload", &[], b"all of it").unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (200, "got 9 bytes\n"));
}

#[test]
fn a_slow_app_is_answered_504_with_a_log_line() {
    let lc = Lastcall::start(&["--upstream-timeout", "300ms"]);
    let r = get(lc.proxy, "/slow?ms=3000");
    assert_eq!(r.status, 504);
    assert_eq!(
        r.body_text(),
        "504 gateway timeout: the app took too long\n"
    );
    let port = lc.app_port;
    wait_until("the 504 log line", LONG, || {
        lc.log_text().contains(&format!(
            "504 for GET /slow: the app at 127.0.0.1:{port} sent no response within --upstream-timeout 300ms"
        ))
    });
    let m = get(lc.admin, "/metrics").body_text();
    assert!(
        m.contains("lastcall_upstream_errors_total{kind=\"timeout\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("lastcall_requests_total{phase=\"serving\",code=\"504\"} 1\n"),
        "{m}"
    );
}

#[test]
fn an_app_that_never_gets_ready_is_stopped_at_the_ready_timeout() {
    let mut lc = Lastcall::start_no_wait(
        &["--ready-timeout", "500ms", "--stop-timeout", "5s"],
        30_000,
    );
    lc.wait_exit(LONG);
    let log = lc.log_text();
    let port = lc.app_port;
    assert!(
        log.contains(&format!(
            "error: the app was not ready within --ready-timeout 500ms (connect to 127.0.0.1:{port}: Connection refused (os error 111)); stopping"
        )),
        "{log}"
    );
    assert!(log.contains("stop began (--ready-timeout)"), "{log}");
}

#[test]
fn usage_errors_are_one_clear_line_and_exit_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    // Another lastcall, or an nginx with `reuseport`: the port could be shared silently.
    let shared = reuseport_listener();
    let shared = shared
        .local_addr()
        .unwrap()
        .as_socket()
        .unwrap()
        .to_string();
    let table: &[(&[&str], &str)] = &[
        (
            &["--listen", &taken, "--upstream", "3000"],
            &format!(
                "lastcall: cannot listen on --listen {taken}: Address already in use (os error 98)\n"
            ),
        ),
        (
            &["--listen", &shared, "--upstream", "3000"],
            &format!(
                "lastcall: cannot listen on --listen {shared}: Address already in use (os error 98)\n"
            ),
        ),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "3000",
                "--upstream-health-path",
                "health",
            ],
            "lastcall: invalid value 'health' for '--upstream-health-path <PATH>': `health` is not a path (write it like /health) (see lastcall --help)\n",
        ),
    ];
    for (args, msg) in table {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lastcall"))
            .arg("run")
            .args(*args)
            .args(["--", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), *msg, "{args:?}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lastcall"))
        .args(["run", "--listen", "127.0.0.1:0", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--upstream <ADDR>"), "{err}");
}

/// A listener on 127.0.0.1 that lets any other `SO_REUSEPORT` socket of this user share
/// its port.
fn reuseport_listener() -> socket2::Socket {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    s.listen(16).unwrap();
    s
}
