//! Request bodies over plain HTTP: `Content-Length` bytes or chunked, read
//! off the connection only when a route asks for them, so that the token,
//! the route and the size are checked before a byte of the body is read.

use std::io::{self, BufRead, ErrorKind, Read};

use super::head::Framing;

/// The longest chunk-size or trailer line accepted.
const LINE_LIMIT: usize = 4 * 1024;
/// The most trailer lines accepted after the last chunk.
const TRAILERS_LIMIT: usize = 64;

/// Where reading a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// This many bytes of a `Content-Length` body are left.
    Length(u64),
    /// Before a chunk-size line.
    ChunkSize,
    /// This many bytes of a chunk are left, then its CRLF.
    Chunk(u64),
    /// The whole body is read: the connection is at the next request.
    Done,
    /// The body broke off or is malformed: the connection cannot go on.
    Broken,
}

impl Body {
    /// Ready to read a body delimited by `framing`.
    pub(crate) fn new(framing: Framing) -> Body {
        match framing {
            Framing::Empty | Framing::Length(0) => Body::Done,
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::ChunkSize,
        }
    }

    /// Reads body bytes from `from` into `buf`; 0 at the end of the body.
    pub(crate) fn read(&mut self, from: &mut impl BufRead, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.step(from, buf);
        if result.is_err() {
            *self = Body::Broken;
        }
        result
    }

    fn step(&mut self, from: &mut impl BufRead, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match *self {
                Body::Done => return Ok(0),
                Body::Broken => return Err(invalid("the body broke off earlier")),
                Body::Length(left) => {
                    let n = read_some(from, buf, left)?;
                    *self = if n as u64 == left { Body::Done } else { Body::Length(left - n as u64) };
                    return Ok(n);
                }
                Body::ChunkSize => {
                    let line = read_line(from)?;
                    let digits = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .filter(|d| !d.is_empty() && d.len() <= 16)
                        .and_then(|d| u64::from_str_radix(d, 16).ok())
                        .ok_or_else(|| invalid("a chunk size is not a hexadecimal number"))?;
                    if size == 0 {
                        skip_trailers(from)?;
                        *self = Body::Done;
                    } else {
                        *self = Body::Chunk(size);
                    }
                }
                Body::Chunk(0) => {
                    if !read_line(from)?.is_empty() {
                        return Err(invalid("a chunk is longer than its size"));
                    }
                    *self = Body::ChunkSize;
                }
                Body::Chunk(left) => {
                    let n = read_some(from, buf, left)?;
                    *self = Body::Chunk(left - n as u64);
                    return Ok(n);
                }
            }
        }
    }
}

/// Reads up to `left` bytes (and at least one, or fails).
fn read_some(from: &mut impl BufRead, buf: &mut [u8], left: u64) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
    let n = from.read(&mut buf[..want])?;
    if n == 0 {
        return Err(io::Error::new(ErrorKind::UnexpectedEof, "the connection ended inside the body"));
    }
    Ok(n)
}

/// One line, without its CRLF (or LF), of at most `LINE_LIMIT` bytes.
fn read_line(from: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let n = from.take(LINE_LIMIT as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 || line.last() != Some(&b'\n') {
        let why =
            if line.len() > LINE_LIMIT { "a chunk line is too long" } else { "the body ended inside a chunk line" };
        return Err(invalid(why));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

fn skip_trailers(from: &mut impl BufRead) -> io::Result<()> {
    for _ in 0..TRAILERS_LIMIT {
        if read_line(from)?.is_empty() {
            return Ok(());
        }
    }
    Err(invalid("too many trailer lines after the last chunk"))
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(framing: Framing, wire: &[u8]) -> (io::Result<Vec<u8>>, Body, usize) {
        let mut from = io::BufReader::with_capacity(7, wire);
        let mut body = Body::new(framing);
        let mut out = Vec::new();
        let mut buf = [0u8; 5];
        let result = loop {
            match body.read(&mut from, &mut buf) {
                Ok(0) => break Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        let rest = from.bytes().count();
        (result, body, rest)
    }

    #[test]
    fn bodies_end_where_their_framing_says_and_not_a_byte_later() {
        let (out, body, rest) = read_all(Framing::Length(12), b"hello, world!NEXT");
        assert_eq!((out.unwrap(), body, rest), (b"hello, world".to_vec(), Body::Done, 5));
        let wire = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let (out, body, rest) = read_all(Framing::Chunked, wire);
        assert_eq!((out.unwrap(), body, rest), (b"hello, world".to_vec(), Body::Done, 4));
        let (out, body, rest) = read_all(Framing::Empty, b"NEXT");
        assert_eq!((out.unwrap(), body, rest), (Vec::new(), Body::Done, 4));
    }

    #[test]
    fn a_broken_body_fails_and_stays_broken() {
        for (framing, wire) in [
            (Framing::Length(10), &b"short"[..]),
            (Framing::Chunked, b"zz\r\nhello\r\n0\r\n\r\n"),
            (Framing::Chunked, b"3\r\nhello\r\n0\r\n\r\n"),
            (Framing::Chunked, b"5\r\nhello\r\n"),
            (Framing::Chunked, b"fffffffffffffffff\r\n"),
        ] {
            let (out, body, _) = read_all(framing, wire);
            assert!(out.is_err(), "{:?}", String::from_utf8_lossy(wire));
            assert_eq!(body, Body::Broken);
        }
        let long = [&vec![b'1'; LINE_LIMIT + 1][..], b"\r\n"].concat();
        assert!(read_all(Framing::Chunked, &long).0.is_err());
    }
}
