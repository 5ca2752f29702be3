//! HTTPS: tiny_http's listeners over our socket, since tiny_http does the
//! TLS handshake and then reads the requests itself.
//!
//! So over TLS a malformed request head gets tiny_http's answer, not the
//! envelope (see `docs/openapi.yaml`). tiny_http's accept thread ends when
//! `accept` times out (the socket's read timeout bounds it); a fresh
//! listener then takes over the socket, and the old one is kept, and asked
//! for requests, until its connections go quiet.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::error::AdminError;

/// tiny_http's listeners over our socket: the current one, and those
/// whose accept thread ended, kept until their connections go quiet.
pub(crate) struct Acceptor {
    listener: TcpListener,
    ssl: tiny_http::SslConfig,
    current: tiny_http::Server,
    retired: Vec<(tiny_http::Server, Instant)>,
    quiet_after: Duration,
}

impl Acceptor {
    /// Serves HTTPS with `ssl` on `listener`; a retired listener is
    /// dropped once no request came from it for `quiet_after`.
    pub(crate) fn start(
        listener: TcpListener,
        ssl: tiny_http::SslConfig,
        quiet_after: Duration,
    ) -> Result<Acceptor, AdminError> {
        let current = listen(&listener, &ssl)?;
        Ok(Acceptor { listener, ssl, current, retired: Vec::new(), quiet_after })
    }

    /// The next request, waiting up to `wait`.
    pub(crate) fn next(&mut self, wait: Duration) -> Option<tiny_http::Request> {
        let now = Instant::now();
        for (server, last) in &mut self.retired {
            if let Ok(Some(request)) = server.try_recv() {
                *last = now;
                return Some(request);
            }
        }
        let quiet_after = self.quiet_after;
        self.retired.retain(|(_, last)| now.duration_since(*last) < quiet_after);
        match self.current.recv_timeout(wait) {
            Ok(request) => request,
            Err(e) => {
                // The accept thread ended: idle past the socket timeout
                // (which bounds accept too), or an error such as EMFILE.
                if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                    log::warn!("admin server: accepting failed ({e}); listening again");
                    std::thread::sleep(Duration::from_millis(50));
                }
                match listen(&self.listener, &self.ssl) {
                    Ok(fresh) => {
                        let old = std::mem::replace(&mut self.current, fresh);
                        self.retired.push((old, now));
                    }
                    Err(e) => log::warn!("admin server: cannot listen again ({e}); retrying"),
                }
                None
            }
        }
    }
}

fn listen(listener: &TcpListener, ssl: &tiny_http::SslConfig) -> Result<tiny_http::Server, AdminError> {
    let copy = listener.try_clone().map_err(|e| AdminError::Start(e.to_string()))?;
    tiny_http::Server::from_listener(copy, Some(ssl.clone())).map_err(|e| AdminError::Start(e.to_string()))
}
