//! A request being answered, whichever HTTP layer read it: our own for
//! plain HTTP (`plain`), tiny_http's over TLS (`tls`). The handlers see
//! only this.

use std::io::{self, Cursor, Read};
use std::net::SocketAddr;

/// A response, as the handlers build it.
pub(crate) type Response = tiny_http::Response<Cursor<Vec<u8>>>;

/// One request and the way to answer it.
pub(crate) trait Exchange: Send {
    /// The method, as sent.
    fn method(&self) -> &str;
    /// The request target, as sent: path and query.
    fn url(&self) -> &str;
    /// The values of the headers named `name` (case-blind).
    fn header_values<'a>(&'a self, name: &'a str) -> Vec<&'a str>;
    /// The body's `Content-Length`, if it has one.
    fn body_length(&self) -> Option<usize>;
    /// The body, read off the connection as it is asked for.
    fn body(&mut self) -> &mut dyn Read;
    /// The client's address.
    fn remote_addr(&self) -> Option<SocketAddr>;
    /// Sends `response`: the end of the exchange.
    fn respond(self: Box<Self>, response: Response) -> io::Result<()>;
}

/// Over TLS, tiny_http reads the requests.
#[cfg(feature = "admin-tls")]
impl Exchange for tiny_http::Request {
    fn method(&self) -> &str {
        tiny_http::Request::method(self).as_str()
    }

    fn url(&self) -> &str {
        tiny_http::Request::url(self)
    }

    fn header_values<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.headers()
            .iter()
            .filter(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
            .collect()
    }

    fn body_length(&self) -> Option<usize> {
        tiny_http::Request::body_length(self)
    }

    fn body(&mut self) -> &mut dyn Read {
        self.as_reader()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        tiny_http::Request::remote_addr(self).copied()
    }

    fn respond(self: Box<Self>, response: Response) -> io::Result<()> {
        tiny_http::Request::respond(*self, response)
    }
}
