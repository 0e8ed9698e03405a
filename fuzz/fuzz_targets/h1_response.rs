//! The app's response as `h1::Conn` reads it, head then body, from any bytes split into
//! reads of any sizes: no panic, progress at each step, and the same status, headers,
//! body, end and leftover bytes as when the whole response comes in one read.
//!
//! Input: a flags byte (bit 0: the request was HEAD), 8 bytes of read-size seed, the
//! response.
#![no_main]
mod h1;

use bytes::BytesMut;
use h1::{End, Reads, read_body};
use lastcall::proxy::h1_fuzz_api::{MAX_HEAD, parse_head};

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Head(String),
    Response {
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        end: End,
    },
}

/// `Conn::poll_head`, then `Conn::poll_body`.
fn exchange(mut reads: Reads<'_>, head_request: bool) -> Outcome {
    let mut buf = BytesMut::new();
    let mut consumed = 0;
    let head = loop {
        if !buf.is_empty() {
            let before = buf.len();
            let parsed = parse_head(&mut buf, head_request);
            consumed += before - buf.len();
            match parsed {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(e) => return Outcome::Head(e),
            }
        }
        if buf.len() > MAX_HEAD {
            return Outcome::Head("too large".into());
        }
        if reads.read(&mut buf) == 0 {
            return Outcome::Head("closed".into());
        }
    };
    assert!(consumed <= reads.len() - reads.unread().len());
    let headers: Vec<_> = head
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    for (name, _) in &headers {
        let hop = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ];
        assert!(!hop.contains(&name.as_str()), "hop-by-hop {name} passed on");
    }
    let mut decoder = head.decoder;
    let (body, end) = read_body(&mut decoder, &mut buf, &mut reads);
    Outcome::Response {
        status: head.status.as_u16(),
        headers,
        body,
        end,
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((seed, response)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let head_request = flags & 1 == 1;
    let whole = exchange(Reads::whole(response), head_request);
    let split = exchange(
        Reads::new(response, u64::from_le_bytes(*seed)),
        head_request,
    );
    assert_eq!(whole, split, "one read and split reads disagree");
});
