//! Request heads over plain HTTP: read off the connection (bounded in
//! size and time) and checked by us, so that every request, however
//! malformed, gets an answer in the API's envelope.
//!
//! tiny_http answered a request line or header it could not parse with an
//! empty 400, an HTTP/2 request line with a text 505 (keeping the
//! connection), and closed on a byte that is not ASCII without a word.
//! Here each of those is an [`ApiError`] whose message says what to fix.

use std::io::{self, BufRead, ErrorKind};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::reply::ApiError;

/// The most bytes a request head (request line, headers and the empty
/// line) may take; a longer one gets 431 (414 when the request line alone
/// is longer). tiny_http had no limit; browsers send a few KiB.
pub(crate) const HEAD_LIMIT: usize = 64 * 1024;

/// The most characters of an offending line quoted back in a message.
const QUOTED: usize = 60;

/// The HTTP version of a request; any other gets 505.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    Http10,
    Http11,
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes (saturated at `u64::MAX`, which is over any limit).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A checked request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) method: String,
    /// The request target as sent: path and query.
    pub(crate) target: String,
    pub(crate) version: Version,
    /// Names and values (trimmed), in the order sent.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) framing: Framing,
    /// `Expect: 100-continue`: the client waits for `100 Continue` before the body.
    pub(crate) expects_continue: bool,
    /// Whether the client will send another request on the connection.
    pub(crate) keep_alive: bool,
}

impl Head {
    /// The values of the headers named `name` (case-blind).
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why no request came off a connection.
#[derive(Debug)]
pub(crate) enum NoRequest {
    /// The client closed, went idle past the read timeout or failed before
    /// sending a byte of a request: the connection just closes.
    Quiet,
    /// A request began and cannot be served: answer this, then close.
    Refused(ApiError),
}

/// Reads the next request head off `reader` and checks it. Waiting for its
/// first byte is bounded by the socket's read timeout (`timeout`); from
/// then on, the whole head (and any empty lines before it) must arrive
/// within `timeout`.
pub(crate) fn read(reader: &mut io::BufReader<TcpStream>, timeout: Duration) -> Result<Head, NoRequest> {
    let mut raw = Vec::new();
    // Bytes taken, the empty lines skipped before a request line included.
    let mut taken = 0;
    let mut deadline: Option<Instant> = None;
    let result = loop {
        if let Some(deadline) = deadline {
            // Only a head that spans reads gets here (most come in one).
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || reader.get_ref().set_read_timeout(Some(left)).is_err() {
                break Err(if raw.is_empty() { NoRequest::Quiet } else { NoRequest::Refused(too_slow()) });
            }
        }
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) && !raw.is_empty() => {
                break Err(NoRequest::Refused(too_slow()));
            }
            Err(_) => break Err(NoRequest::Quiet),
        };
        if available.is_empty() {
            // The client stopped sending; it may still read an answer.
            break Err(if raw.is_empty() { NoRequest::Quiet } else { NoRequest::Refused(cut_short()) });
        }
        let (used, end) = scan(&mut raw, available);
        reader.consume(used);
        taken += used;
        match end {
            Some(Ok(())) => break parse(&raw).map_err(NoRequest::Refused),
            Some(Err(e)) => break Err(NoRequest::Refused(e)),
            None if taken > HEAD_LIMIT => {
                break Err(NoRequest::Refused(bad_request(format!(
                    "over {HEAD_LIMIT} bytes of empty lines and no request line: send METHOD /path HTTP/1.1"
                ))));
            }
            None => deadline = deadline.or_else(|| Some(Instant::now() + timeout)),
        }
    };
    if deadline.is_some() {
        // Back to the timeout the body and the next request are read with.
        let _ = reader.get_ref().set_read_timeout(Some(timeout));
    }
    result
}

/// Appends bytes of `available` to `raw` up to the end of the head: how
/// many it took, and whether the head ended (or is refused). Empty lines
/// before a request line are skipped (RFC 9112, 2.2); a first byte that
/// cannot start a method is refused at once, rather than after a head that
/// may never end (a TLS handshake, say).
fn scan(raw: &mut Vec<u8>, available: &[u8]) -> (usize, Option<Result<(), ApiError>>) {
    for (at, &byte) in available.iter().enumerate() {
        if raw.is_empty() && (byte == b'\r' || byte == b'\n') {
            continue;
        }
        if raw.is_empty() && !is_token(byte) {
            return (at + 1, Some(Err(not_a_method(byte))));
        }
        raw.push(byte);
        if byte == b'\n' && (raw.ends_with(b"\n\n") || raw.ends_with(b"\n\r\n")) {
            return (at + 1, Some(Ok(())));
        }
        if raw.len() > HEAD_LIMIT {
            return (at + 1, Some(Err(too_large(raw))));
        }
    }
    (available.len(), None)
}

/// Checks a whole head (its lines end in CRLF or LF; the last is empty).
pub(crate) fn parse(raw: &[u8]) -> Result<Head, ApiError> {
    let mut lines = raw.split(|&b| b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let request_line = text(lines.next().unwrap_or_default(), "the request line")?;
    let (method, target, version) = request_line_parts(request_line)?;
    let mut headers = Vec::new();
    for (n, line) in lines.take_while(|line| !line.is_empty()).enumerate() {
        let line = text(line, &format!("header line {}", n + 1))?;
        headers.push(header(line)?);
    }
    let mut head = Head {
        method: method.to_string(),
        target: target.to_string(),
        version,
        headers,
        framing: Framing::Empty,
        expects_continue: false,
        keep_alive: false,
    };
    head.framing = framing(&head)?;
    head.expects_continue = match head.values("Expect").last() {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("100-continue") => true,
        Some(v) => {
            return Err(ApiError::new(
                417,
                "expectation_failed",
                format!("Expect: {} is not supported: send Expect: 100-continue or none", quoted(v)),
            ));
        }
    };
    let connection = |token: &str| {
        head.values("Connection").flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    head.keep_alive = match version {
        Version::Http11 => !connection("close") && !connection("upgrade"),
        Version::Http10 => connection("keep-alive"),
    };
    Ok(head)
}

/// `line` as text, if every byte is visible ASCII, a space or a tab.
fn text<'a>(line: &'a [u8], what: &str) -> Result<&'a str, ApiError> {
    let Some(at) = line.iter().position(|&b| !(b == b'\t' || (b' '..=b'~').contains(&b))) else {
        // Checked above: every byte is ASCII.
        return Ok(std::str::from_utf8(line).unwrap_or_default());
    };
    let byte = line[at];
    let fix = if what == "the request line" {
        format!("percent-encode it in the path (%{byte:02X})")
    } else {
        "send headers as visible ASCII".to_string()
    };
    let kind = if byte.is_ascii() { "a control byte" } else { "a byte that is not ASCII" };
    Err(bad_request(format!("{what} has {kind} (0x{byte:02X} at byte {}): {fix}", at + 1)))
}

fn request_line_parts(line: &str) -> Result<(&str, &str, Version), ApiError> {
    let parts: Vec<&str> = line.split(' ').collect();
    let form = "the request line must be METHOD /path HTTP/1.1, with single spaces";
    let version = match parts.as_slice() {
        [.., version] if parts.len() >= 3 && parts.iter().all(|p| !p.is_empty()) => *version,
        _ => return Err(bad_request(format!("{form}: got {}", quoted(line)))),
    };
    let version = match version {
        "HTTP/1.1" => Version::Http11,
        "HTTP/1.0" => Version::Http10,
        v if v
            .strip_prefix("HTTP/")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit() || b == b'.')) =>
        {
            return Err(ApiError::new(
                505,
                "http_version_not_supported",
                format!("this server speaks HTTP/1.1 and HTTP/1.0, not {}: send HTTP/1.1", quoted(v)),
            ));
        }
        _ => return Err(bad_request(format!("{form}: got {}", quoted(line)))),
    };
    if parts.len() > 3 {
        return Err(bad_request(format!(
            "the path has a raw space (got {}): percent-encode spaces in the path as %20",
            quoted(line)
        )));
    }
    let method = parts[0];
    if !method.bytes().all(is_token) {
        return Err(bad_request(format!(
            "the method {} is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)",
            quoted(method)
        )));
    }
    Ok((method, parts[1], version))
}

fn header(line: &str) -> Result<(String, String), ApiError> {
    let Some((name, value)) = line.split_once(':') else {
        return Err(bad_request(format!("header line {} has no colon: send headers as Name: value", quoted(line))));
    };
    if name.is_empty() || !name.bytes().all(is_token) {
        return Err(bad_request(format!(
            "header name {} is not an HTTP token (no spaces, and none before the colon): send headers as Name: value",
            quoted(name)
        )));
    }
    Ok((name.to_string(), value.trim_matches([' ', '\t']).to_string()))
}

fn framing(head: &Head) -> Result<Framing, ApiError> {
    let lengths: Vec<&str> = head.values("Content-Length").collect();
    let encodings: Vec<&str> = head.values("Transfer-Encoding").collect();
    match (lengths.as_slice(), encodings.as_slice()) {
        ([], []) => Ok(Framing::Empty),
        ([], [coding]) if coding.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
        ([], _) => Err(ApiError::new(
            501,
            "not_implemented",
            format!(
                "Transfer-Encoding {} is not supported: send chunked or a Content-Length",
                quoted(&encodings.join(", "))
            ),
        )),
        ([first, rest @ ..], [])
            if rest.iter().all(|v| v == first) && !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(Framing::Length(first.parse().unwrap_or(u64::MAX)))
        }
        (_, []) => Err(bad_request(format!(
            "Content-Length {} is not one number of bytes: send one decimal Content-Length",
            quoted(&lengths.join(", "))
        ))),
        _ => Err(bad_request("send either Content-Length or Transfer-Encoding: chunked, not both")),
    }
}

/// `tchar` of RFC 9110: the bytes of a method or a header name.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `s` in quotes, cut to a few dozen characters.
fn quoted(s: &str) -> String {
    match s.char_indices().nth(QUOTED) {
        Some((end, _)) => format!("{:?}...", &s[..end]),
        None => format!("{s:?}"),
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "bad_request", message)
}

fn not_a_method(byte: u8) -> ApiError {
    if byte == 0x16 {
        return bad_request("this is a TLS handshake, and this server speaks plain HTTP: use http://, not https://");
    }
    bad_request(format!("a request starts with its method, not the byte 0x{byte:02X}: send METHOD /path HTTP/1.1"))
}

fn too_slow() -> ApiError {
    ApiError::new(408, "request_timeout", "the request head took too long to arrive: send it whole, at once")
}

fn cut_short() -> ApiError {
    bad_request("the connection ended inside the request head: end it with an empty line (CRLF CRLF)")
}

fn too_large(raw: &[u8]) -> ApiError {
    if raw.contains(&b'\n') {
        ApiError::new(
            431,
            "request_header_fields_too_large",
            format!("the request head is over {HEAD_LIMIT} bytes: send fewer or shorter headers"),
        )
    } else {
        ApiError::new(414, "uri_too_long", format!("the request line is over {HEAD_LIMIT} bytes: send a shorter path"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> (u16, &'static str, String) {
        let e = parse(raw.as_bytes()).expect_err(raw);
        (e.status, e.code, e.message)
    }

    #[test]
    fn a_good_head_is_parsed_with_its_framing_and_keep_alive() {
        let head =
            parse(b"POST /api/v1/x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nX-E:  b c \t\r\n\r\n").unwrap();
        assert_eq!(
            (head.method.as_str(), head.target.as_str(), head.version),
            ("POST", "/api/v1/x?y=1", Version::Http11)
        );
        assert_eq!(head.headers[2], ("X-E".to_string(), "b c".to_string()));
        assert_eq!((head.framing, head.expects_continue, head.keep_alive), (Framing::Length(12), false, true));
        let head = parse(b"GET / HTTP/1.0\nConnection: Keep-Alive\n\n").unwrap();
        assert_eq!((head.version, head.keep_alive, head.framing), (Version::Http10, true, Framing::Empty));
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(!parse(b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n").unwrap().keep_alive);
        let head = parse(b"PUT / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nExpect: 100-Continue\r\n\r\n").unwrap();
        assert_eq!((head.framing, head.expects_continue), (Framing::Chunked, true));
        let huge = parse(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n").unwrap();
        assert_eq!(huge.framing, Framing::Length(u64::MAX), "over any limit: 413 after the auth check");
    }

    #[test]
    fn each_malformed_head_is_refused_saying_what_to_fix() {
        let (status, code, message) = refused("GET /pools/my pool/stats HTTP/1.1\r\n\r\n");
        assert_eq!((status, code), (400, "bad_request"));
        assert!(message.contains("%20"), "{message}");
        let (status, code, message) = refused("GET / HTTP/7.0\r\n\r\n");
        assert_eq!((status, code), (505, "http_version_not_supported"));
        assert!(message.contains("\"HTTP/7.0\""), "{message}");
        assert_eq!(refused("GET / HTTP/2\r\n\r\n").0, 505);
        let (status, _, message) = refused("GET / HTTP/1.1\r\nno colon here\r\n\r\n");
        assert_eq!(status, 400);
        assert!(message.contains("\"no colon here\"") && message.contains("colon"), "{message}");
        let (_, _, message) = refused("GET /\u{ff} HTTP/1.1\r\n\r\n");
        assert!(message.contains("%C3") && message.contains("byte 6"), "{message}");
        for raw in [
            "GET /\r\n\r\n",
            "GET / HTTP/1.1 x\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET / HTTPS/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "G\u{1}T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\n: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET / HTTP/1.1\r\nA: x\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nA: x\ry\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(refused(raw).0, 400, "{raw:?}");
        }
        assert_eq!(refused("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n").0, 501);
        assert_eq!(refused("GET / HTTP/1.1\r\nExpect: x\r\n\r\n").0, 417);
        let long = format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "x".repeat(200));
        let (_, _, message) = refused(&long.replace("A:", "A"));
        assert!(message.len() < 200, "an offending line is quoted cut short: {message}");
    }

    #[test]
    fn scanning_stops_at_the_empty_line_or_the_limit() {
        let mut raw = Vec::new();
        let (used, end) = scan(&mut raw, b"\r\n\r\nGET / HTTP/1.1\r\nA: b\r");
        assert_eq!((used, end.is_none()), (25, true), "leading empty lines are skipped");
        let (used, end) = scan(&mut raw, b"\n\r\nGET /next");
        assert_eq!((used, raw.as_slice()), (3, &b"GET / HTTP/1.1\r\nA: b\r\n\r\n"[..]));
        assert!(matches!(end, Some(Ok(()))));
        let mut raw = Vec::new();
        let (_, end) = scan(&mut raw, &vec![b'a'; HEAD_LIMIT + 10]);
        assert_eq!(end.and_then(Result::err).map(|e| e.status), Some(414));
        let mut raw = Vec::new();
        let (used, end) = scan(&mut raw, &[b"GET / HTTP/1.1\r\n".as_slice(), &vec![b'a'; HEAD_LIMIT]].concat());
        assert_eq!(end.and_then(Result::err).map(|e| e.status), Some(431));
        assert_eq!(used, HEAD_LIMIT + 1, "not a byte past the limit is taken");
        let (used, end) = scan(&mut Vec::new(), b"\r\n\x16\x03\x01\x02\x00");
        let message = end.and_then(Result::err).map(|e| e.message).unwrap_or_default();
        assert_eq!(used, 3);
        assert!(message.contains("use http://"), "{message}");
    }
}
