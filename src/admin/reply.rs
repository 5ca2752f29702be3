//! Responses: the JSON envelope, typed API errors, and text bodies.

use serde_json::{Value, json};

use super::exchange::Response;

/// The content type of JSON replies.
pub(crate) const JSON: &str = "application/json";
/// The content type of the Prometheus text exposition format.
pub(crate) const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of CSV exports.
pub(crate) const CSV: &str = "text/csv; charset=utf-8";
/// The content type of the dashboard page.
pub(crate) const HTML: &str = "text/html; charset=utf-8";

/// The dashboard: one page, its script and style inline.
const DASHBOARD: &str = include_str!("dashboard.html");

/// What the dashboard page may do: run its own inline script and style,
/// call this server, and nothing else (no other origin, no frame around
/// it, no form posted anywhere).
const DASHBOARD_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                                connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                                frame-ancestors 'none'";

/// A response, before it is written.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    /// Extra headers (`Allow`, `WWW-Authenticate`).
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// `{"success": true, "data": data}` with `status`.
    pub(crate) fn data(status: u16, data: Value) -> Reply {
        Reply::json(status, &json!({ "success": true, "data": data }))
    }

    /// 200 with `{"success": true, "data": data}`.
    pub(crate) fn ok(data: Value) -> Reply {
        Reply::data(200, data)
    }

    /// A text body of `content_type`.
    pub(crate) fn text(content_type: &'static str, body: String) -> Reply {
        Reply { status: 200, content_type, body: body.into_bytes(), headers: Vec::new() }
    }

    /// The dashboard page, with a content security policy that keeps it to
    /// this server, and headers that keep it out of frames and referrers.
    pub(crate) fn dashboard() -> Reply {
        Reply {
            headers: vec![
                ("Content-Security-Policy", DASHBOARD_POLICY.to_string()),
                ("X-Frame-Options", "DENY".to_string()),
                ("X-Content-Type-Options", "nosniff".to_string()),
                ("Referrer-Policy", "no-referrer".to_string()),
            ],
            ..Reply::text(HTML, DASHBOARD.to_string())
        }
    }

    fn json(status: u16, value: &Value) -> Reply {
        Reply { status, content_type: JSON, body: value.to_string().into_bytes(), headers: Vec::new() }
    }

    /// The response to write: the body with its status, its content type,
    /// `Cache-Control: no-store` and the extra headers.
    pub(crate) fn into_response(self) -> Response {
        let mut response = tiny_http::Response::from_data(self.body).with_status_code(self.status);
        let mut add = |name: &str, value: &str| {
            if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                response.add_header(header);
            }
        };
        add("Content-Type", self.content_type);
        add("Cache-Control", "no-store");
        for (name, value) in &self.headers {
            add(name, value);
        }
        response
    }
}

/// A request the API turns down: its status, a stable snake_case code a
/// client can match on, and a message saying what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), headers: Vec::new() }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn invalid_parameter(name: &str, value: &str, allowed: &str) -> ApiError {
        ApiError::new(400, "invalid_parameter", format!("query parameter {name}={value:?} is not one of {allowed}"))
    }

    pub(crate) fn pool_not_found(id: &str) -> ApiError {
        ApiError::new(404, "pool_not_found", format!("no pool has id {id:?}: GET /api/v1/pools lists them"))
    }

    pub(crate) fn connection_not_found(id: &str) -> ApiError {
        ApiError::new(
            404,
            "connection_not_found",
            format!("no open connection is named {id:?}: GET /api/v1/connections lists them"),
        )
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        let body = json!({ "success": false, "error": { "code": e.code, "message": e.message } });
        Reply { headers: e.headers, ..Reply::json(e.status, &body) }
    }
}
