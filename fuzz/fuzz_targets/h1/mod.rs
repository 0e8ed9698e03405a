//! What the `h1_*` targets share: reads of random sizes, and the body loop of
//! `h1::Conn::poll_body` without the socket, with the invariants every step must keep.

use bytes::BytesMut;
use lastcall::proxy::h1_fuzz_api::{Decoder, Step};

/// The input handed out in reads whose sizes follow a seed: one byte at a time, a few
/// bytes, a few dozen, or all at once.
pub struct Reads<'a> {
    input: &'a [u8],
    fed: usize,
    rng: u64,
    max: usize,
}

impl<'a> Reads<'a> {
    pub fn new(input: &'a [u8], seed: u64) -> Reads<'a> {
        let max = match seed % 4 {
            0 => 1,
            1 => 8,
            2 => 64,
            _ => usize::MAX,
        };
        Reads {
            input,
            fed: 0,
            rng: seed | 1,
            max,
        }
    }

    /// All of the input in one read.
    pub fn whole(input: &'a [u8]) -> Reads<'a> {
        Reads::new(input, 3)
    }

    /// Append the next read to `buf`: how many bytes it had, 0 at the end.
    pub fn read(&mut self, buf: &mut BytesMut) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let want = match self.max {
            usize::MAX => usize::MAX,
            m => 1 + (self.rng % m as u64) as usize,
        };
        let n = want.min(self.input.len() - self.fed);
        buf.extend_from_slice(&self.input[self.fed..self.fed + n]);
        self.fed += n;
        n
    }

    /// What was not read yet.
    pub fn unread(&self) -> &'a [u8] {
        &self.input[self.fed..]
    }

    pub fn len(&self) -> usize {
        self.input.len()
    }
}

/// How a body's reading ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Its end, with the bytes after it (read or not) and whether the connection is kept.
    Done {
        rest: Vec<u8>,
        keep_alive: bool,
    },
    /// The connection's end, and what the decoder made of it.
    Eof(Result<(), String>),
    Error(String),
}

/// Read a body as `Conn::poll_body` does, checking at each step that the decoder makes
/// progress (consumes bytes, asks for more with nothing left unused, or ends) and that
/// its frames add up to no more than the input.
pub fn read_body(
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    reads: &mut Reads<'_>,
) -> (Vec<u8>, End) {
    let mut body = Vec::new();
    // Each step consumes a byte, reads one, or ends.
    let mut budget = 2 * (buf.len() + reads.len()) + 4;
    loop {
        budget = budget
            .checked_sub(1)
            .expect("the decoder makes no progress");
        let before = buf.len();
        match decoder.step(buf) {
            Ok(Step::Data(data)) => {
                assert!(!data.is_empty(), "an empty data frame");
                assert!(
                    buf.len() + data.len() <= before,
                    "a frame of bytes not read"
                );
                body.extend_from_slice(&data);
                assert!(body.len() <= reads.len(), "a body larger than the input");
            }
            Ok(Step::End) => {
                assert!(decoder.is_end());
                assert_eq!(decoder.remaining(), Some(0));
                let rest = [&buf[..], reads.unread()].concat();
                let keep_alive = decoder.keep_alive();
                return (body, End::Done { rest, keep_alive });
            }
            Ok(Step::More) => {
                // Nothing is left in the buffer for a later step: what the decoder does
                // not hand out it has consumed, so the buffer never grows with the body.
                assert!(buf.is_empty(), "More with {} bytes unused", buf.len());
                assert!(!decoder.is_end());
                if reads.read(buf) == 0 {
                    return (body, End::Eof(decoder.at_eof()));
                }
            }
            Err(e) => return (body, End::Error(e)),
        }
    }
}
