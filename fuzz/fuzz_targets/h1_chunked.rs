//! The chunked decoder against a strict reference decoder written from RFC 9112 7.1's
//! grammar. Chunked bodies are built from structured input (chunk sizes with leading
//! zeros in either case, extensions with quoted strings, trailers, the next response's
//! bytes after them), optionally damaged by a few edits, and read in reads of any sizes.
//! Where the reference accepts, the decoder must give the same body and stop at the same
//! byte; where the reference needs more, the decoder must too, and call the close a
//! truncation. Where the reference refuses, the decoder may refuse or be lenient.
#![no_main]
mod h1;

use bytes::BytesMut;
use h1::{End, Reads, read_body};
use lastcall::proxy::h1_fuzz_api::{Decoder, MAX_EXTENSION, MAX_HEAD};
use libfuzzer_sys::arbitrary::{self, Arbitrary};

#[derive(Arbitrary, Debug)]
struct Input {
    chunks: Vec<Chunk>,
    last: Line,
    trailers: Vec<Field>,
    after: Vec<u8>,
    edits: Vec<Edit>,
    seed: u64,
}

#[derive(Arbitrary, Debug)]
struct Chunk {
    line: Line,
    data: Vec<u8>,
}

/// A chunk-size line but for its size.
#[derive(Arbitrary, Debug)]
struct Line {
    zeros: u8,
    upper: bool,
    exts: Vec<Ext>,
}

#[derive(Arbitrary, Debug)]
struct Ext {
    ws: [u8; 2],
    name: Vec<u8>,
    value: Option<([u8; 2], Value)>,
}

#[derive(Arbitrary, Debug)]
enum Value {
    Token(Vec<u8>),
    Quoted(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Field {
    name: Vec<u8>,
    ws: [u8; 2],
    value: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Set(u16, u8),
    Insert(u16, u8),
    Remove(u16),
}

const TCHAR: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn is_tchar(b: u8) -> bool {
    TCHAR.contains(&b)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// VCHAR, obs-text, SP and HTAB: what a field value and a quoted-pair may hold.
fn is_text(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

fn token(w: &mut Vec<u8>, raw: &[u8]) {
    if raw.is_empty() {
        w.push(b'x');
    }
    w.extend(raw.iter().map(|b| TCHAR[usize::from(*b) % TCHAR.len()]));
}

fn ws(w: &mut Vec<u8>, b: u8) {
    w.extend_from_slice([&b""[..], b" ", b"\t", b" \t "][usize::from(b % 4)]);
}

fn line(w: &mut Vec<u8>, l: &Line, size: usize) {
    w.resize(w.len() + usize::from(l.zeros % 4), b'0');
    let hex = match (size, l.upper) {
        (0, _) => String::new(),
        (n, true) => format!("{n:X}"),
        (n, false) => format!("{n:x}"),
    };
    w.extend_from_slice(hex.as_bytes());
    if size == 0 && l.zeros % 4 == 0 {
        w.push(b'0');
    }
    for e in &l.exts {
        ws(w, e.ws[0]);
        w.push(b';');
        ws(w, e.ws[1]);
        token(w, &e.name);
        if let Some((s, v)) = &e.value {
            ws(w, s[0]);
            w.push(b'=');
            ws(w, s[1]);
            match v {
                Value::Token(t) => token(w, t),
                Value::Quoted(q) => {
                    w.push(b'"');
                    for &b in q {
                        match b {
                            b'"' | b'\\' => w.extend_from_slice(&[b'\\', b]),
                            b if is_text(b) => w.push(b),
                            _ => w.extend_from_slice(b"\\\t"),
                        }
                    }
                    w.push(b'"');
                }
            }
        }
    }
    w.extend_from_slice(b"\r\n");
}

fn encode(input: &Input) -> (Vec<u8>, Vec<u8>) {
    let (mut w, mut body) = (Vec::new(), Vec::new());
    for c in input.chunks.iter().filter(|c| !c.data.is_empty()) {
        line(&mut w, &c.line, c.data.len());
        w.extend_from_slice(&c.data);
        w.extend_from_slice(b"\r\n");
        body.extend_from_slice(&c.data);
    }
    line(&mut w, &input.last, 0);
    for f in &input.trailers {
        token(&mut w, &f.name);
        w.push(b':');
        ws(&mut w, f.ws[0]);
        w.extend(f.value.iter().map(|&b| if is_text(b) { b } else { b'v' }));
        ws(&mut w, f.ws[1]);
        w.extend_from_slice(b"\r\n");
    }
    w.extend_from_slice(b"\r\n");
    (w, body)
}

/// What the reference made of the bytes.
#[derive(Debug)]
enum Verdict {
    /// A whole chunked body, and where it ends.
    Body(usize),
    /// A valid start: more is needed.
    Partial,
    Invalid,
    /// Valid, but beyond the decoder's own bounds (more than 15 hex digits in a size,
    /// extensions over 16 KiB on one line, trailers near 64 KiB).
    Beyond,
}

/// A strict reading of RFC 9112 7.1, the data bytes met so far kept in `body`.
struct Reference<'a> {
    w: &'a [u8],
    i: usize,
    body: Vec<u8>,
}

impl Reference<'_> {
    fn peek(&self) -> Result<u8, Verdict> {
        self.w.get(self.i).copied().ok_or(Verdict::Partial)
    }

    fn eat(&mut self, b: u8) -> Result<(), Verdict> {
        if self.peek()? != b {
            return Err(Verdict::Invalid);
        }
        self.i += 1;
        Ok(())
    }

    fn many(&mut self, f: fn(u8) -> bool) -> Result<usize, Verdict> {
        let start = self.i;
        while f(self.peek()?) {
            self.i += 1;
        }
        Ok(self.i - start)
    }

    fn chunked_body(&mut self) -> Result<usize, Verdict> {
        loop {
            let start = self.i;
            let digits = self.many(|b| b.is_ascii_hexdigit());
            if self.i - start > 15 {
                return Err(Verdict::Beyond);
            }
            if digits? == 0 {
                return Err(Verdict::Invalid);
            }
            let hex = std::str::from_utf8(&self.w[start..self.i]).map_err(|_| Verdict::Invalid)?;
            let size = u64::from_str_radix(hex, 16).map_err(|_| Verdict::Invalid)?;
            // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
            let ext_start = self.i;
            loop {
                let bws = self.many(is_ws)?;
                match self.peek()? {
                    b'\r' if bws == 0 => break,
                    b';' => self.i += 1,
                    _ => return Err(Verdict::Invalid),
                }
                self.many(is_ws)?;
                if self.many(is_tchar)? == 0 {
                    return Err(Verdict::Invalid);
                }
                let before = self.i;
                self.many(is_ws)?;
                if self.peek()? != b'=' {
                    self.i = before;
                    continue;
                }
                self.i += 1;
                self.many(is_ws)?;
                if self.peek()? == b'"' {
                    self.i += 1;
                    loop {
                        match self.peek()? {
                            b'"' => break,
                            b'\\' => {
                                self.i += 1;
                                if !is_text(self.peek()?) {
                                    return Err(Verdict::Invalid);
                                }
                            }
                            b if is_text(b) => {}
                            _ => return Err(Verdict::Invalid),
                        }
                        self.i += 1;
                    }
                    self.i += 1;
                } else if self.many(is_tchar)? == 0 {
                    return Err(Verdict::Invalid);
                }
            }
            if self.i - ext_start > MAX_EXTENSION {
                return Err(Verdict::Beyond);
            }
            self.eat(b'\r')?;
            self.eat(b'\n')?;
            if size == 0 {
                break;
            }
            let have = self.w.len() - self.i;
            if (have as u64) < size {
                self.body.extend_from_slice(&self.w[self.i..]);
                self.i = self.w.len();
                return Err(Verdict::Partial);
            }
            let end = self.i + size as usize;
            self.body.extend_from_slice(&self.w[self.i..end]);
            self.i = end;
            self.eat(b'\r')?;
            self.eat(b'\n')?;
        }
        // trailer-section = *( field-line CRLF ), then CRLF
        let start = self.i;
        loop {
            if self.i - start > MAX_HEAD - 4 {
                return Err(Verdict::Beyond);
            }
            if self.peek()? == b'\r' {
                self.i += 1;
                self.eat(b'\n')?;
                return Ok(self.i);
            }
            if self.many(is_tchar)? == 0 {
                return Err(Verdict::Invalid);
            }
            self.eat(b':')?;
            self.many(is_text)?;
            self.eat(b'\r')?;
            self.eat(b'\n')?;
        }
    }
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let (mut wire, want) = encode(&input);
    wire.extend_from_slice(&input.after);
    for edit in &input.edits {
        let at = |i: u16, extra: usize| usize::from(i) % (wire.len() + extra);
        match *edit {
            Edit::Set(i, b) if !wire.is_empty() => {
                let i = at(i, 0);
                wire[i] = b;
            }
            Edit::Insert(i, b) => wire.insert(at(i, 1), b),
            Edit::Remove(i) if !wire.is_empty() => {
                wire.remove(at(i, 0));
            }
            _ => {}
        }
    }
    let mut reference = Reference {
        w: &wire,
        i: 0,
        body: Vec::new(),
    };
    let verdict = reference.chunked_body().map_or_else(|e| e, Verdict::Body);
    if input.edits.is_empty() {
        assert!(matches!(verdict, Verdict::Body(_)), "{verdict:?}");
        assert_eq!(reference.body, want);
    }
    for mut reads in [Reads::whole(&wire), Reads::new(&wire, input.seed)] {
        let (body, end) = read_body(&mut Decoder::chunked(), &mut BytesMut::new(), &mut reads);
        match verdict {
            Verdict::Body(n) => {
                assert_eq!(body, reference.body, "the body differs");
                let rest = wire[n..].to_vec();
                let done = End::Done {
                    rest,
                    keep_alive: true,
                };
                assert_eq!(end, done, "the body ends elsewhere");
            }
            Verdict::Partial => {
                assert_eq!(body, reference.body, "the body differs");
                assert!(matches!(end, End::Eof(Err(_))), "{end:?}");
            }
            Verdict::Beyond => assert!(matches!(end, End::Error(_)), "{end:?}"),
            Verdict::Invalid => {}
        }
    }
});
