//! A request the HTTP layer cannot parse still gets the API's error
//! envelope, `{"success": false, "error": {"code", "message"}}` with
//! `Content-Type: application/json`, a message that says what to fix, and
//! the connection closed after it (where the next request would start is
//! unknown). That holds for the first request on a connection and for one
//! that follows a good request on a kept-alive connection, sent after its
//! answer or pipelined behind it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::http::read_response;
use rusty_db::admin::{AdminServer, AdminServerBuilder, Registry};
use serde_json::Value;

const TOKEN: &str = "malformed-token-0123";
const GOOD: &[u8] = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n";

/// How a malformed request reaches the server.
#[derive(Debug, Clone, Copy)]
enum Sent {
    /// First on a new connection.
    Alone,
    /// After a good request on the same connection, once it is answered.
    AfterAnAnswer,
    /// Right behind a good request, in the same write.
    Pipelined,
}

const EVERY_WAY: [Sent; 3] = [Sent::Alone, Sent::AfterAnAnswer, Sent::Pipelined];

/// The answer to a malformed request: its status line, headers and body.
#[derive(Debug)]
struct Answer {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Checks the status line, the content type and the envelope; returns
    /// the error's message.
    fn assert_envelope(&self, status: u16, code: &str) -> String {
        let reason = self.status_line.splitn(3, ' ').nth(2).unwrap_or_default();
        assert!(
            self.status_line.starts_with(&format!("HTTP/1.1 {status} ")) && !reason.is_empty(),
            "status line {:?}, expected {status} with a reason phrase",
            self.status_line
        );
        assert_eq!(self.header("Content-Type"), Some("application/json"), "{self:?}");
        assert_eq!(self.header("Content-Length"), Some(self.body.len().to_string().as_str()), "{self:?}");
        assert_eq!(self.header("Connection"), Some("close"), "{self:?}");
        let json: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)));
        assert_eq!(json["success"], false, "{json}");
        assert_eq!(json["error"]["code"], code, "{json}");
        let message = json["error"]["message"].as_str().unwrap_or_else(|| panic!("a message: {json}"));
        assert!(!message.is_empty(), "{json}");
        assert_eq!(json.as_object().map(|o| o.len()), Some(2), "only success and error: {json}");
        assert_eq!(json["error"].as_object().map(|o| o.len()), Some(2), "only code and message: {json}");
        message.to_string()
    }
}

fn server(build: impl FnOnce(AdminServerBuilder) -> AdminServerBuilder) -> AdminServer {
    build(AdminServer::builder().token(TOKEN).read_timeout(Duration::from_secs(2))).start(Registry::new()).unwrap()
}

/// Sends `malformed` the way `sent` says and returns the server's answer
/// to it, read until the server closes the connection.
fn answer(addr: SocketAddr, malformed: &[u8], sent: Sent) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match sent {
        Sent::Alone => stream.write_all(malformed).unwrap(),
        Sent::AfterAnAnswer => {
            stream.write_all(GOOD).unwrap();
            let good = read_response(&mut stream).unwrap();
            assert_eq!(good.status, 200, "the good request first: {}", good.text());
            stream.write_all(malformed).unwrap();
        }
        Sent::Pipelined => stream.write_all(&[GOOD, malformed].concat()).unwrap(),
    }
    let started = Instant::now();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap_or_else(|e| panic!("{sent:?}: the server closes after its answer: {e}"));
    assert!(started.elapsed() < Duration::from_secs(5), "{sent:?}: closed only after {:?}", started.elapsed());
    if let Sent::Pipelined = sent {
        // The good request's answer comes first, whole.
        let (head, _) = split_head(&bytes);
        let length: usize = header_value(head, "Content-Length").and_then(|v| v.parse().ok()).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 "), "the good request first: {head:?}");
        bytes.drain(..head.len() + 4 + length);
    }
    let (head, body) = split_head(&bytes);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    Answer { status_line, headers, body: body.to_vec() }
}

fn split_head(bytes: &[u8]) -> (&str, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head in {:?}", String::from_utf8_lossy(bytes)));
    (std::str::from_utf8(&bytes[..end]).expect("an ASCII head"), &bytes[end + 4..])
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

#[test]
fn a_raw_space_in_the_path_gets_400_saying_to_percent_encode_it() {
    let server = server(|b| b);
    let raw = format!("GET /api/v1/pools/my pool/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    for sent in EVERY_WAY {
        let message = answer(server.local_addr(), raw.as_bytes(), sent).assert_envelope(400, "bad_request");
        assert!(message.contains("%20"), "{sent:?}: {message}");
    }
    server.shutdown();
}

#[test]
fn an_http_version_other_than_1_0_or_1_1_gets_505() {
    let server = server(|b| b);
    for version in ["HTTP/7.0", "HTTP/2.0", "HTTP/3.0"] {
        let raw = format!("GET /health {version}\r\nHost: x\r\n\r\n");
        for sent in EVERY_WAY {
            let answer = answer(server.local_addr(), raw.as_bytes(), sent);
            let message = answer.assert_envelope(505, "http_version_not_supported");
            assert!(message.contains("HTTP/1.1") && message.contains(version), "{version} {sent:?}: {message}");
        }
    }
    server.shutdown();
}

#[test]
fn a_request_line_that_is_not_method_path_version_gets_400() {
    let server = server(|b| b);
    for line in
        ["GET /health", "GET /health HTTP/1.1 extra", "GET  /health HTTP/1.1", "/health HTTP/1.1", "G\x01T / HTTP/1.1"]
    {
        let raw = format!("{line}\r\nHost: x\r\n\r\n");
        for sent in EVERY_WAY {
            answer(server.local_addr(), raw.as_bytes(), sent).assert_envelope(400, "bad_request");
        }
    }
    server.shutdown();
}

#[test]
fn a_header_line_without_a_colon_gets_400_naming_the_line() {
    let server = server(|b| b);
    let raw = b"GET /health HTTP/1.1\r\nHost: x\r\nBroken header line without colon\r\n\r\n";
    for sent in EVERY_WAY {
        let message = answer(server.local_addr(), raw, sent).assert_envelope(400, "bad_request");
        assert!(message.contains("Broken header line") && message.contains("colon"), "{sent:?}: {message}");
    }
    server.shutdown();
}

#[test]
fn raw_non_ascii_bytes_in_the_request_line_get_400_saying_to_percent_encode_them() {
    let server = server(|b| b);
    let raw = [&b"GET /api/v1/pools/\xff\xfe/stats HTTP/1.1\r\nHost: x\r\n"[..], b"\r\n"].concat();
    for sent in EVERY_WAY {
        let message = answer(server.local_addr(), &raw, sent).assert_envelope(400, "bad_request");
        assert!(message.contains("%FF"), "{sent:?}: {message}");
    }
    // In a header value too.
    let raw = [&b"GET /health HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9\r\n"[..], b"\r\n"].concat();
    for sent in EVERY_WAY {
        answer(server.local_addr(), &raw, sent).assert_envelope(400, "bad_request");
    }
    server.shutdown();
}

#[test]
fn a_request_head_over_the_limit_gets_431_an_overlong_path_414_and_endless_empty_lines_400() {
    let server = server(|b| b);
    let big_header = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(100_000));
    for sent in EVERY_WAY {
        answer(server.local_addr(), big_header.as_bytes(), sent)
            .assert_envelope(431, "request_header_fields_too_large");
    }
    let long_path = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000));
    for sent in EVERY_WAY {
        answer(server.local_addr(), long_path.as_bytes(), sent).assert_envelope(414, "uri_too_long");
    }
    // Empty lines before a request line are skipped, but not without end.
    let empty_lines = "\r\n".repeat(50_000);
    for sent in EVERY_WAY {
        answer(server.local_addr(), empty_lines.as_bytes(), sent).assert_envelope(400, "bad_request");
    }
    server.shutdown();
}

#[test]
fn a_head_that_stops_half_way_gets_408_within_the_read_timeout() {
    let server = server(|b| b.read_timeout(Duration::from_millis(300)));
    for sent in EVERY_WAY {
        let started = Instant::now();
        let answer = answer(server.local_addr(), b"GET /health HTTP/1.1\r\nHost: x\r\n", sent);
        answer.assert_envelope(408, "request_timeout");
        assert!(started.elapsed() < Duration::from_secs(2), "{sent:?}: {:?}", started.elapsed());
    }
    server.shutdown();
}

#[test]
fn good_requests_on_the_same_server_are_answered_as_ever() {
    let server = server(|b| b);
    // Malformed requests first, then a kept-alive connection answers many good ones, pipelined too.
    for malformed in [&b"GET /a b HTTP/1.1\r\n\r\n"[..], b"GET / HTTP/7.0\r\n\r\n", b"\xff\r\n\r\n"] {
        let mut stream = TcpStream::connect(server.local_addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(malformed).unwrap();
        let _ = stream.read_to_end(&mut Vec::new());
    }
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..5 {
        stream.write_all(GOOD).unwrap();
        let r = read_response(&mut stream).unwrap();
        assert_eq!((r.status, r.header("Content-Type")), (200, Some("application/json")), "{}", r.text());
    }
    // Pipelined, the last one closing the connection: three answers, in order.
    let last = b"GET /api/v1/pools HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    stream.write_all(&[GOOD, GOOD, last].concat()).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
    assert!(text.contains("HTTP/1.1 401 Unauthorized\r\n") && text.ends_with("\"}}"), "{text}");
    // HTTP/1.0 asking to keep the connection is told it is kept.
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..2 {
        stream.write_all(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        let r = read_response(&mut stream).unwrap();
        assert_eq!((r.status, r.header("Connection")), (200, Some("keep-alive")), "{}", r.text());
    }
    server.shutdown();
}
