//! A response body's decoder on any bytes split into reads of any sizes: no panic,
//! progress at each step, no more body than input, and the same body, end and leftover
//! bytes as when all of it comes in one read.
//!
//! Input: a framing byte (chunked, a length, or until the close), 8 bytes of length, 8
//! bytes of read-size seed, the body.
#![no_main]
mod h1;

use bytes::BytesMut;
use h1::{Reads, read_body};
use lastcall::proxy::h1_fuzz_api::Decoder;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&framing, rest)) = data.split_first() else {
        return;
    };
    let Some((length, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let Some((seed, body)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let decoder = || match framing % 4 {
        // A length: small ones mostly, so that the body ends within the input.
        0 => Decoder::length(u64::from_le_bytes(*length) % (body.len() as u64 + 2)),
        1 => Decoder::length(u64::from_le_bytes(*length)),
        2 => Decoder::until_close(),
        _ => Decoder::chunked(),
    };
    let whole = read_body(
        &mut decoder(),
        &mut BytesMut::new(),
        &mut Reads::whole(body),
    );
    let mut reads = Reads::new(body, u64::from_le_bytes(*seed));
    let split = read_body(&mut decoder(), &mut BytesMut::new(), &mut reads);
    assert_eq!(whole, split, "one read and split reads disagree");
});
