//! A response body: how it is delimited ([`Framing`], read from its head) and where the
//! reading of it stands ([`Decoder`]) — a length, chunks, or the end of the connection.
//! The decoder works on the bytes already read and says when it needs more, so it is
//! tested without sockets.

use bytes::{Buf, Bytes, BytesMut};

use super::{BodyError, MAX_HEAD};

/// The longest run of chunk extensions on one size line (hyper's bound too).
pub(super) const MAX_EXTENSION: usize = 16 * 1024;

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked { with_length: bool },
    Close,
}

impl Framing {
    pub(super) fn chunked(self) -> bool {
        matches!(self, Framing::Chunked { .. })
    }

    /// A body delimited by the close, or a chunked one that also had a length (a sign of
    /// a confused or hostile app, RFC 9112 6.3), ends the connection.
    pub(super) fn keeps_alive(self) -> bool {
        !matches!(
            self,
            Framing::Close | Framing::Chunked { with_length: true }
        )
    }

    fn into_state(self) -> State {
        match self {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked { .. } => State::Size { size: 0, digits: 0 },
            Framing::Close => State::UntilClose,
        }
    }
}

/// Where the reading of a response body stands.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
    /// Can the connection carry another request once this body is read?
    pub(super) keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    UntilClose,
    /// In a chunk-size line: the size so far.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: extensions, up to the line's end, and how many bytes of them.
    Extension {
        size: u64,
        len: usize,
    },
    /// The size line's CR was read.
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// In the trailer section: bytes of the current line so far.
    Trailer {
        line: usize,
        total: usize,
    },
    Done,
}

/// What the buffered bytes gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Data(Bytes),
    End,
    More,
}

impl Decoder {
    pub(super) fn new(framing: Framing, keep_alive: bool) -> Decoder {
        Decoder {
            state: framing.into_state(),
            keep_alive,
        }
    }

    pub(crate) fn is_end(&self) -> bool {
        self.state == State::Done
    }

    pub(crate) fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Consume what `buf` holds of the body: a data frame, the end, or a need for more.
    pub(super) fn step(&mut self, buf: &mut BytesMut) -> Result<Step, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(Step::End),
                // Body bytes, of a length-delimited body or of one chunk: what there is
                // of them, then what follows them.
                State::Length(n) | State::Data(n) => {
                    let Some((data, rest)) = cut(buf, n) else {
                        return Ok(Step::More);
                    };
                    self.state = match (self.state, rest) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), rest) => State::Length(rest),
                        (_, 0) => State::DataCr,
                        (_, rest) => State::Data(rest),
                    };
                    return Ok(Step::Data(data));
                }
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                _ => {
                    let Some(&b) = buf.first() else {
                        return Ok(Step::More);
                    };
                    buf.advance(1);
                    self.state = self.framing_byte(b)?;
                }
            }
        }
    }

    /// One byte of chunk framing (size lines, CRLFs, trailers).
    fn framing_byte(&self, b: u8) -> Result<State, BodyError> {
        let bad = |what| Err(BodyError::Chunked(what));
        Ok(match self.state {
            State::Size { size, digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits >= 15 {
                        return bad("chunk size too large");
                    }
                    let d = u64::from(hex(b));
                    State::Size {
                        size: size * 16 + d,
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return bad("chunk size missing"),
                b';' | b' ' | b'\t' => State::Extension { size, len: 1 },
                b'\r' => State::SizeLf { size },
                _ => return bad("invalid chunk size"),
            },
            State::Extension { size, len } => match b {
                b'\r' => State::SizeLf { size },
                b'\n' => return bad("bare LF in a chunk size line"),
                // Extensions are skipped, not passed on; without a bound an app could
                // keep one going forever without ever sending a byte of body.
                _ if len >= MAX_EXTENSION => return bad("chunk extension larger than 16 KiB"),
                _ => State::Extension { size, len: len + 1 },
            },
            State::SizeLf { size } => match (b, size) {
                (b'\n', 0) => State::Trailer { line: 0, total: 0 },
                (b'\n', n) => State::Data(n),
                _ => return bad("chunk size line not ended by CRLF"),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return bad("chunk data not followed by CRLF"),
            },
            State::DataLf => match b {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return bad("chunk data not followed by CRLF"),
            },
            State::Trailer { line, total } => {
                if total > MAX_HEAD {
                    return bad("trailers larger than 64 KiB");
                }
                match b {
                    b'\n' if line == 0 => State::Done,
                    b'\n' => State::Trailer {
                        line: 0,
                        total: total + 1,
                    },
                    // The CR of a line's CRLF does not count towards the line.
                    b'\r' => State::Trailer {
                        line,
                        total: total + 1,
                    },
                    _ => State::Trailer {
                        line: line + 1,
                        total: total + 1,
                    },
                }
            }
            other => other,
        })
    }

    /// The connection ended: the end of a close-delimited body, a truncation otherwise.
    pub(super) fn at_eof(&mut self) -> Result<(), BodyError> {
        if self.state == State::UntilClose {
            self.state = State::Done;
            self.keep_alive = false;
            Ok(())
        } else {
            Err(BodyError::Truncated)
        }
    }
}

/// Up to `n` of the buffered bytes (None when there are none yet), and how many of the
/// `n` are still to come.
fn cut(buf: &mut BytesMut, n: u64) -> Option<(Bytes, u64)> {
    if buf.is_empty() {
        return None;
    }
    let take = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
    Some((buf.split_to(take).freeze(), n - take as u64))
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(decoder: &mut Decoder, input: &[u8]) -> Result<(Vec<u8>, bool), BodyError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match decoder.step(&mut buf)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::End => return Ok((out, true)),
                Step::More => return Ok((out, false)),
            }
        }
    }

    #[test]
    fn a_chunked_body_is_decoded_whatever_the_reads() {
        let raw =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n";
        // The whole body at once, and one byte per read.
        for split in [raw.len(), 1] {
            let mut d = Framing::Chunked { with_length: false }.into_state();
            let mut decoder = Decoder {
                state: d,
                keep_alive: true,
            };
            let mut out = Vec::new();
            let mut ended = false;
            let mut buf = BytesMut::new();
            for piece in raw.chunks(split) {
                buf.extend_from_slice(piece);
                loop {
                    match decoder.step(&mut buf).unwrap() {
                        Step::Data(x) => out.extend_from_slice(&x),
                        Step::End => {
                            ended = true;
                            break;
                        }
                        Step::More => break,
                    }
                }
            }
            d = decoder.state;
            assert!(ended, "split {split}: {d:?}");
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "split {split}");
            assert!(buf.is_empty());
        }
    }

    /// Random bodies, chunked at random sizes with and without extensions and trailers,
    /// fed to the decoder in random pieces: what comes out is the body, and the bytes
    /// after it stay in the buffer.
    #[test]
    fn chunked_bodies_decode_whatever_their_chunks_and_reads() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..500 {
            let len = next(3000) as usize;
            let body: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
            let mut wire = Vec::new();
            let mut at = 0;
            while at < len {
                let n = (1 + next(700) as usize).min(len - at);
                if next(2) == 0 {
                    wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                } else {
                    wire.extend_from_slice(format!("{n:X};name=v\r\n").as_bytes());
                }
                wire.extend_from_slice(&body[at..at + n]);
                wire.extend_from_slice(b"\r\n");
                at += n;
            }
            wire.extend_from_slice(b"0\r\n");
            if next(2) == 0 {
                wire.extend_from_slice(b"x-checksum: 1\r\n");
            }
            wire.extend_from_slice(b"\r\nNEXT");
            let mut decoder = Decoder {
                state: Framing::Chunked { with_length: false }.into_state(),
                keep_alive: true,
            };
            let (mut out, mut buf, mut fed, mut ended) = (Vec::new(), BytesMut::new(), 0, false);
            while !ended {
                if fed < wire.len() {
                    let n = (1 + next(900) as usize).min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
                loop {
                    match decoder.step(&mut buf).unwrap() {
                        Step::Data(d) => out.extend_from_slice(&d),
                        Step::End => {
                            ended = true;
                            break;
                        }
                        Step::More => break,
                    }
                }
                assert!(ended || fed < wire.len(), "round {round}: stuck");
            }
            assert!(out == body, "round {round}: body differs");
            // What follows the body is left for the connection's next use.
            let rest = [&buf[..], &wire[fed..]].concat();
            assert_eq!(rest, b"NEXT", "round {round}");
        }
    }

    #[test]
    fn malformed_chunks_are_errors() {
        let table: &[(&[u8], &str)] = &[
            (
                b"zz\r\n",
                "malformed chunked response body: chunk size missing",
            ),
            (
                b"5\r\nhelloXX",
                "malformed chunked response body: chunk data not followed by CRLF",
            ),
            (
                b"5\nhello",
                "malformed chunked response body: invalid chunk size",
            ),
            (
                b"1000000000000000\r\n",
                "malformed chunked response body: chunk size too large",
            ),
        ];
        for (raw, msg) in table {
            let mut decoder = Decoder {
                state: Framing::Chunked { with_length: false }.into_state(),
                keep_alive: true,
            };
            let err = body(&mut decoder, raw).unwrap_err();
            assert_eq!(err.to_string(), *msg, "{raw:?}");
        }

        // An extension may be long, but not endless.
        let line =
            |ext: usize| [&b"5;"[..], &vec![b'x'; ext - 1], b"\r\nhello\r\n0\r\n\r\n"].concat();
        let mut decoder = Decoder::new(Framing::Chunked { with_length: false }, true);
        assert_eq!(
            body(&mut decoder, &line(MAX_EXTENSION)).unwrap(),
            (b"hello".to_vec(), true)
        );
        let mut decoder = Decoder::new(Framing::Chunked { with_length: false }, true);
        let err = body(&mut decoder, &line(MAX_EXTENSION + 1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed chunked response body: chunk extension larger than 16 KiB"
        );
    }

    #[test]
    fn a_length_body_ends_at_its_length_and_leaves_the_rest() {
        let mut decoder = Decoder {
            state: Framing::Length(5).into_state(),
            keep_alive: true,
        };
        let mut buf = BytesMut::from(&b"helloEXTRA"[..]);
        assert_eq!(
            decoder.step(&mut buf).unwrap(),
            Step::Data(Bytes::from_static(b"hello"))
        );
        assert_eq!(decoder.step(&mut buf).unwrap(), Step::End);
        assert_eq!(&buf[..], b"EXTRA");
        // The connection's end before the length is a truncation; for a close-delimited
        // body it is the end.
        let mut short = Decoder {
            state: Framing::Length(5).into_state(),
            keep_alive: true,
        };
        assert_eq!(body(&mut short, b"hel").unwrap(), (b"hel".to_vec(), false));
        assert!(matches!(short.at_eof(), Err(BodyError::Truncated)));
        let mut close = Decoder {
            state: Framing::Close.into_state(),
            keep_alive: false,
        };
        assert!(close.at_eof().is_ok());
    }
}
