//! The admin REST API and metrics endpoint, on a tiny_http thread.
//!
//! An [`AdminServer`] serves the pools of a [`Registry`] over HTTP: the API
//! reference's routes under `/api/v1` (pools, their statistics, leaks,
//! metrics and wait- and acquire-time histograms, the connections, killing
//! one, a partitioned pool's partitions: listing and creating them),
//! `GET /metrics` (Prometheus text for every pool), `GET /health`, and
//! `GET /dashboard`: a live page for a browser, which asks for the token and
//! polls those routes with it. It runs on threads of its own beside
//! a blocking application, takes no pool lock across I/O, and holds the
//! pools weakly, so it never keeps one open. `docs/openapi.yaml` describes
//! every route, parameter and error.
//!
//! ```no_run
//! use rusty_db::admin::{AdminServer, Registry};
//! use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, Result};
//! use std::sync::Arc;
//!
//! struct F;
//! impl ConnectionFactory<u8> for F { fn create(&self) -> Result<u8> { Ok(0) } }
//!
//! let pool = ConnectionPool::new(PoolConfig::default(), Arc::new(F))?;
//! let registry = Registry::new();
//! registry.register(&pool)?; // as "pool_default"
//! let server = AdminServer::builder().random_token().start(registry)?;
//! println!("curl -H 'Authorization: Bearer {}' http://{}/api/v1/pools",
//!          server.token().unwrap_or_default(), server.local_addr());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every reply is JSON in an envelope, `{"success": true, "data": ...}`, or
//! `{"success": false, "error": {"code": "...", "message": "..."}}` with
//! 400 (bad JSON or query parameter, or a malformed request line or
//! header), 401 (no or wrong token, with `WWW-Authenticate: Bearer`), 404
//! (unknown route, pool or connection, or a pool without partitioning on
//! the partition routes), 405 (with `Allow`), 408 (a request head or body
//! too slow), 409 (killing a borrowed connection without `force`, or a
//! partition name taken), 413 (a body over the limit), 414 or 431 (a
//! request line or head over 64 KiB), 417 (an unknown `Expect`), 422
//! (partition limits that cannot hold, or do not fit in the pool), 501 (a
//! transfer coding other than chunked) or 505 (an HTTP version other than
//! 1.1 and 1.0); the metrics formats are text. Creating a partition
//! answers 201. Over HTTPS tiny_http reads the requests and answers a
//! malformed one itself, without the envelope (`docs/openapi.yaml` says
//! how).

mod auth;
mod body;
mod error;
mod exchange;
mod head;
mod plain;
mod registry;
mod reply;
mod routes;
mod server;
mod socket;
mod spare;
#[cfg(feature = "admin-tls")]
mod tls;
mod views;

pub use error::AdminError;
pub use registry::{Registry, pool_id};
pub use server::{AdminServer, AdminServerBuilder, DEFAULT_BODY_LIMIT, DEFAULT_IO_TIMEOUT};
