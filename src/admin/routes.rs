//! Which route a request names, and what each route answers.
//!
//! Routing is split from answering so that the server can check the
//! method, the credentials and the body's size before it reads a byte of
//! the body: `Route::parse` names the route (or 404), `Route::allows`
//! the methods (or 405 with `Allow`), and `Route::answer` runs it.

use std::time::Duration;

use serde_json::{Value, json};

use super::registry::{AdminPool, Registry};
use super::reply::{ApiError, CSV, PROMETHEUS, Reply};
use super::views;
use crate::pool::{ConnectionState, Killed, PartitionLimits, PartitionType, PoolError, PoolStatistics};

/// A route of the admin API, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/api/v1/pools`
    Pools,
    /// `/api/v1/pools/{pool_id}/stats`
    PoolStats(String),
    /// `/api/v1/pools/{pool_id}/partitions`
    Partitions(String),
    /// `/api/v1/pools/{pool_id}/leaks`
    Leaks(String),
    /// `/api/v1/pools/{pool_id}/histograms`
    Histograms(String),
    /// `/api/v1/pools/{pool_id}/metrics`
    PoolMetrics(String),
    /// `/api/v1/connections`
    Connections,
    /// `/api/v1/connections/{connection_id}`
    Connection(String),
    /// `/metrics`
    Metrics,
    /// `/health`
    Health,
    /// `/dashboard`: the page, which needs no token (its data calls do).
    Dashboard,
}

/// A parsed request, as a route sees it.
pub(crate) struct Call<'a> {
    pub(crate) method: &'a str,
    pub(crate) query: &'a [(String, String)],
    pub(crate) body: &'a [u8],
}

impl Call<'_> {
    /// The last value of query parameter `name`.
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl Route {
    /// The route `path` (already split from its query) names.
    pub(crate) fn parse(path: &str) -> Result<Route, ApiError> {
        let not_found = || ApiError::new(404, "not_found", format!("no route {path:?}: see docs/openapi.yaml"));
        let trimmed = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
        let segments: Vec<String> = match trimmed.strip_prefix('/') {
            Some(rest) => rest.split('/').map(percent_decode).collect::<Option<_>>().ok_or_else(not_found)?,
            None => return Err(not_found()),
        };
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let route = match segments.as_slice() {
            ["metrics"] => Route::Metrics,
            ["health"] => Route::Health,
            ["dashboard"] => Route::Dashboard,
            ["api", "v1", "pools"] => Route::Pools,
            ["api", "v1", "pools", id, "stats"] => Route::PoolStats(id.to_string()),
            ["api", "v1", "pools", id, "partitions"] => Route::Partitions(id.to_string()),
            ["api", "v1", "pools", id, "leaks"] => Route::Leaks(id.to_string()),
            ["api", "v1", "pools", id, "histograms"] => Route::Histograms(id.to_string()),
            ["api", "v1", "pools", id, "metrics"] => Route::PoolMetrics(id.to_string()),
            ["api", "v1", "connections"] => Route::Connections,
            ["api", "v1", "connections", id] => Route::Connection(id.to_string()),
            _ => return Err(not_found()),
        };
        Ok(route)
    }

    /// The methods the route answers, for `Allow`.
    pub(crate) fn allows(&self) -> &'static [&'static str] {
        match self {
            Route::Partitions(_) => &["GET", "POST"],
            Route::Connection(_) => &["DELETE"],
            _ => &["GET"],
        }
    }

    /// 405 with `Allow` unless the route answers `method`.
    pub(crate) fn check_method(&self, method: &str) -> Result<(), ApiError> {
        let allowed = self.allows();
        if allowed.contains(&method) {
            return Ok(());
        }
        let allow = allowed.join(", ");
        Err(ApiError::new(405, "method_not_allowed", format!("{method} is not allowed here; use {allow}"))
            .with_header("Allow", allow))
    }

    /// Whether the route takes a request body.
    pub(crate) fn takes_body(&self, method: &str) -> bool {
        matches!(self, Route::Partitions(_)) && method == "POST"
    }

    /// Answers the call.
    pub(crate) fn answer(&self, registry: &Registry, call: &Call<'_>) -> Result<Reply, ApiError> {
        match self {
            Route::Pools => {
                let pools: Vec<Value> = registry.open().iter().map(|(id, p)| views::pool_summary(id, &**p)).collect();
                Ok(Reply::ok(Value::Array(pools)))
            }
            Route::PoolStats(id) => Ok(Reply::ok(pool(registry, id)?.statistics().to_json())),
            Route::Partitions(id) => partitions(registry, id, call),
            Route::Leaks(id) => {
                let pool = pool(registry, id)?;
                Ok(Reply::ok(views::leaks(&pool.leaks(), &pool.connections())))
            }
            Route::Histograms(id) => Ok(Reply::ok(views::histograms(&pool(registry, id)?.statistics()))),
            Route::PoolMetrics(id) => pool_metrics(&*pool(registry, id)?, id, call),
            Route::Connections => connections(registry, call),
            Route::Connection(name) => kill(registry, name, call),
            Route::Metrics => {
                let pools: Vec<(String, PoolStatistics)> =
                    registry.open().iter().map(|(_, p)| (p.config().name.clone(), p.statistics())).collect();
                let text = PoolStatistics::prometheus_exposition(pools.iter().map(|(n, s)| (n.as_str(), s)));
                Ok(Reply::text(PROMETHEUS, text))
            }
            Route::Health => Ok(Reply::ok(json!({ "status": "ok", "pools": registry.ids().len() }))),
            Route::Dashboard => Ok(Reply::dashboard()),
        }
    }
}

/// The registered pool `id`, or 404.
fn pool(registry: &Registry, id: &str) -> Result<Box<dyn AdminPool>, ApiError> {
    registry.get(id).ok_or_else(|| ApiError::pool_not_found(id))
}

/// `GET /connections?status=&pool_id=`.
fn connections(registry: &Registry, call: &Call<'_>) -> Result<Reply, ApiError> {
    let status = match call.param("status") {
        None => None,
        Some("active") => Some(ConnectionState::Active),
        Some("idle") => Some(ConnectionState::Idle),
        Some(other) => return Err(ApiError::invalid_parameter("status", other, "active, idle")),
    };
    let pools = match call.param("pool_id") {
        Some(id) => vec![(id.to_string(), pool(registry, id)?)],
        None => registry.open(),
    };
    let mut listed = Vec::new();
    for (id, pool) in &pools {
        for info in pool.connections() {
            if status.is_none_or(|s| s == info.state) {
                listed.push(views::connection(id, &info));
            }
        }
    }
    Ok(Reply::ok(Value::Array(listed)))
}

/// `DELETE /connections/{conn_<n>}?force=`.
fn kill(registry: &Registry, name: &str, call: &Call<'_>) -> Result<Reply, ApiError> {
    let force = match call.param("force") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::invalid_parameter("force", other, "true, false")),
    };
    let id = views::parse_connection_name(name).ok_or_else(|| ApiError::connection_not_found(name))?;
    for (_, pool) in registry.open() {
        match pool.kill(id, force) {
            Ok(killed) => {
                return Ok(Reply::ok(json!({
                    "connection_id": name,
                    "killed": true,
                    "closed": killed == Killed::Closed,
                })));
            }
            Err(PoolError::ConnectionInUse(_)) => {
                return Err(ApiError::new(
                    409,
                    "connection_in_use",
                    format!("{name} is borrowed: add ?force=true to close it when it is returned"),
                ));
            }
            Err(_) => continue,
        }
    }
    Err(ApiError::connection_not_found(name))
}

/// `GET /pools/{id}/metrics?format=`.
fn pool_metrics(pool: &dyn AdminPool, id: &str, call: &Call<'_>) -> Result<Reply, ApiError> {
    let stats = pool.statistics();
    let name = &pool.config().name;
    match call.param("format").unwrap_or("prometheus") {
        "prometheus" => Ok(Reply::text(PROMETHEUS, stats.to_prometheus(name))),
        "json" => {
            let mut data = stats.to_json();
            if let Value::Object(fields) = &mut data {
                fields.insert("pool".to_string(), Value::from(id));
            }
            Ok(Reply::ok(data))
        }
        "csv" => Ok(Reply::text(CSV, format!("{}\n{}\n", PoolStatistics::csv_header(), stats.to_csv_row(name)))),
        other => Err(ApiError::invalid_parameter("format", other, "prometheus, json, csv")),
    }
}

/// `GET` and `POST /pools/{id}/partitions`. A POST's body is checked in
/// full first (400, 422), then the pool is looked up (404
/// `pool_not_found`), then its partition manager (404
/// `partitioning_not_enabled`), and the pool creates the partition (422
/// for limits that do not fit in it, 409 for a name taken, else 201).
fn partitions(registry: &Registry, id: &str, call: &Call<'_>) -> Result<Reply, ApiError> {
    if call.method == "POST" {
        let new = check_partition(call.body)?;
        let pool = pool(registry, id)?;
        return match pool.create_partition(new).ok_or_else(|| not_partitioned(id))? {
            Ok(created) => Ok(Reply::data(201, created)),
            Err(PoolError::InvalidConfig(message)) => Err(ApiError::new(422, "invalid_partition_limits", message)),
            Err(PoolError::PartitionExists(name)) => Err(ApiError::new(
                409,
                "partition_exists",
                format!("pool {id:?} has a partition named {name:?} already: pick another name"),
            )),
            // create_partition fails in no other way.
            Err(other) => Err(ApiError::new(500, "internal_error", other.to_string())),
        };
    }
    let listed = pool(registry, id)?.partitions().ok_or_else(|| not_partitioned(id))?;
    Ok(Reply::ok(Value::Array(listed)))
}

/// 404 `partitioning_not_enabled` for the pool `id`.
fn not_partitioned(id: &str) -> ApiError {
    ApiError::new(
        404,
        "partitioning_not_enabled",
        format!(
            "pool {id:?} is not partitioned: build it with enable_partitioning(true) and attach a PartitionManager \
             with set_partition_manager"
        ),
    )
}

/// A create-partition body, checked: what the pool is asked to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewPartition {
    pub(crate) name: String,
    pub(crate) partition_type: PartitionType,
    pub(crate) limits: PartitionLimits,
}

/// The partition kinds a body may name, as `PartitionType::kind` names them.
const PARTITION_TYPES: [&str; 4] = ["TENANT", "USER", "APPLICATION", "RESOURCE_GROUP"];

/// The longest `name` and `value`, in characters.
const MAX_NAME_CHARS: usize = 128;

/// Checks a create-partition body: 400 if it is not the documented shape,
/// 422 if its limits cannot work whatever the pool (the pool itself checks
/// that they fit in its `max_size`).
fn check_partition(body: &[u8]) -> Result<NewPartition, ApiError> {
    let malformed = |what: String| ApiError::new(400, "malformed_json", what);
    let value: Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("the body is not valid JSON: {e}")))?;
    let object = value.as_object().ok_or_else(|| malformed("the body must be a JSON object".into()))?;
    let text = |key: &str, required: bool| -> Result<Option<String>, ApiError> {
        match object.get(key) {
            None if !required => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_NAME_CHARS => Ok(Some(s.clone())),
            _ => Err(malformed(format!("{key:?} must be a string of 1 to {MAX_NAME_CHARS} characters"))),
        }
    };
    let name = text("name", true)?.unwrap_or_default();
    let kind = match object.get("type").and_then(Value::as_str) {
        Some(kind) if PARTITION_TYPES.contains(&kind) => kind,
        _ => return Err(malformed(format!("\"type\" must be one of {}", PARTITION_TYPES.join(", ")))),
    };
    let served = text("value", false)?.unwrap_or_else(|| name.clone());
    let partition_type = match kind {
        "TENANT" => PartitionType::Tenant(served),
        "USER" => PartitionType::User(served),
        "APPLICATION" => PartitionType::Application(served),
        _ => PartitionType::ResourceGroup(served),
    };
    let limits = object
        .get("limits")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("\"limits\" must be an object".into()))?;
    let integer = |key: &str| -> Result<Option<u64>, ApiError> {
        match limits.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| malformed(format!("limits.{key} must be an integer >= 0"))),
        }
    };
    let count = |key: &str| -> Result<Option<usize>, ApiError> {
        // Counts past usize::MAX cannot fit any pool: saturate, and let
        // the pool refuse them.
        Ok(integer(key)?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
    };
    let defaults = PartitionLimits::default();
    let max_connections =
        count("max_connections")?.ok_or_else(|| malformed("limits.max_connections is required".into()))?;
    let min_connections = count("min_connections")?.unwrap_or(defaults.min_connections);
    let max_wait_queue = count("max_wait_queue")?.unwrap_or(defaults.max_wait_queue);
    let cpu_seconds = match limits.get("cpu_limit_seconds") {
        None => None,
        Some(v) => match v.as_f64() {
            Some(secs) if secs >= 0.0 => Some(secs),
            _ => return Err(malformed("limits.cpu_limit_seconds must be a number of seconds, more than 0".into())),
        },
    };
    let memory_limit = integer("memory_limit_bytes")?;
    let io_limit = integer("io_limit_iops")?;

    let invalid = |what: String| ApiError::new(422, "invalid_partition_limits", what);
    if max_connections == 0 {
        return Err(invalid("limits.max_connections must be at least 1".into()));
    }
    if min_connections > max_connections {
        return Err(invalid(format!(
            "limits.min_connections ({min_connections}) exceeds limits.max_connections ({max_connections})"
        )));
    }
    let cpu_limit = match cpu_seconds {
        None => None,
        Some(secs) => match Duration::try_from_secs_f64(secs) {
            Ok(d) if !d.is_zero() => Some(d),
            Err(_) if secs > 0.0 => return Err(invalid(format!("limits.cpu_limit_seconds ({secs}) is too large"))),
            _ => {
                return Err(invalid("limits.cpu_limit_seconds must be more than 0 (leave it out for no limit)".into()));
            }
        },
    };
    for (key, limit) in [("memory_limit_bytes", memory_limit), ("io_limit_iops", io_limit)] {
        if limit == Some(0) {
            return Err(invalid(format!("limits.{key} must be at least 1 (leave it out for no limit)")));
        }
    }
    let limits =
        PartitionLimits { max_connections, min_connections, max_wait_queue, cpu_limit, memory_limit, io_limit };
    Ok(NewPartition { name, partition_type, limits })
}

/// Decodes `%XX` escapes (and leaves `+` alone, as in a path); `None` for
/// a bad escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Splits a query string into decoded pairs (`+` is a space there);
/// `None` if an escape is bad.
pub(crate) fn parse_query(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(&key.replace('+', " "))?, percent_decode(&value.replace('+', " "))?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_routes() {
        assert_eq!(Route::parse("/api/v1/pools"), Ok(Route::Pools));
        assert_eq!(Route::parse("/api/v1/pools/"), Ok(Route::Pools));
        assert_eq!(Route::parse("/api/v1/pools/pool_a%20b/stats"), Ok(Route::PoolStats("pool_a b".into())));
        assert_eq!(Route::parse("/api/v1/connections/conn_7"), Ok(Route::Connection("conn_7".into())));
        for bad in ["", "/", "//", "/api/v1", "/api/v1/pools/x", "/api/v1/pools/x/stats/y", "/api/v1/pools/%zz/stats"] {
            assert_eq!(Route::parse(bad).map_err(|e| e.status), Err(404), "{bad:?}");
        }
    }

    #[test]
    fn a_wrong_method_gets_405_naming_the_right_ones() {
        let e = Route::Partitions("p".into()).check_method("DELETE").unwrap_err();
        assert_eq!((e.status, e.headers.clone()), (405, vec![("Allow", "GET, POST".to_string())]));
        assert!(Route::Connection("c".into()).check_method("DELETE").is_ok());
    }

    #[test]
    fn partition_bodies_are_checked_in_full() {
        let reference = br#"{"name":"tenant_acme","type":"TENANT","limits":{"max_connections":50,"min_connections":5,
            "max_wait_queue":100,"cpu_limit_seconds":60,"memory_limit_bytes":1073741824,"io_limit_iops":1000}}"#;
        let limits = PartitionLimits {
            max_connections: 50,
            min_connections: 5,
            max_wait_queue: 100,
            cpu_limit: Some(Duration::from_secs(60)),
            memory_limit: Some(1_073_741_824),
            io_limit: Some(1000),
        };
        assert_eq!(
            check_partition(reference),
            Ok(NewPartition {
                name: "tenant_acme".into(),
                partition_type: PartitionType::Tenant("tenant_acme".into()),
                limits
            })
        );
        // The value served, when given; the defaults for what is left out.
        let checked = |body: &str| check_partition(body.as_bytes()).unwrap();
        let group =
            checked(r#"{"name":"gold","type":"RESOURCE_GROUP","value":"Enterprise","limits":{"max_connections":3}}"#);
        assert_eq!(group.partition_type, PartitionType::ResourceGroup("Enterprise".into()));
        assert_eq!(group.limits, PartitionLimits { max_connections: 3, ..Default::default() });
        assert_eq!(
            checked(r#"{"name":"u","type":"USER","limits":{"max_connections":1,"cpu_limit_seconds":0.25}}"#)
                .limits
                .cpu_limit,
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            checked(r#"{"name":"a","type":"APPLICATION","limits":{"max_connections":1}}"#).partition_type,
            PartitionType::Application("a".into())
        );

        let status = |body: &str| check_partition(body.as_bytes()).map(|_| ()).map_err(|e| (e.status, e.code));
        let limits = |limits: &str| status(&format!(r#"{{"name":"a","type":"USER","limits":{limits}}}"#));
        for bad in [
            "{",
            "[]",
            r#"{"type":"TENANT","limits":{"max_connections":1}}"#,
            r#"{"name":"","type":"TENANT","limits":{"max_connections":1}}"#,
            r#"{"name":"a","type":"X","limits":{"max_connections":1}}"#,
            r#"{"name":"a","type":"CUSTOM","limits":{"max_connections":1}}"#,
            r#"{"name":"a","type":"TENANT","value":7,"limits":{"max_connections":1}}"#,
            r#"{"name":"a","type":"TENANT","value":"","limits":{"max_connections":1}}"#,
            r#"{"name":"a","type":"TENANT","value":null,"limits":{"max_connections":1}}"#,
            r#"{"name":"a","type":"TENANT"}"#,
        ] {
            assert_eq!(status(bad), Err((400, "malformed_json")), "{bad}");
        }
        for bad in [
            "{}",
            r#"{"max_connections":-1}"#,
            r#"{"max_connections":1.5}"#,
            r#"{"max_connections":"1"}"#,
            r#"{"max_connections":1,"max_wait_queue":-1}"#,
            r#"{"max_connections":1,"cpu_limit_seconds":-1}"#,
            r#"{"max_connections":1,"cpu_limit_seconds":"60"}"#,
            r#"{"max_connections":1,"memory_limit_bytes":1.5}"#,
            r#"{"max_connections":1,"io_limit_iops":-5}"#,
        ] {
            assert_eq!(limits(bad), Err((400, "malformed_json")), "{bad}");
        }
        for bad in [
            r#"{"max_connections":0}"#,
            r#"{"max_connections":2,"min_connections":3}"#,
            r#"{"max_connections":1,"cpu_limit_seconds":0}"#,
            r#"{"max_connections":1,"cpu_limit_seconds":-0.0}"#,
            r#"{"max_connections":1,"cpu_limit_seconds":1e-12}"#,
            r#"{"max_connections":1,"cpu_limit_seconds":1e300}"#,
            r#"{"max_connections":1,"memory_limit_bytes":0}"#,
            r#"{"max_connections":1,"io_limit_iops":0}"#,
        ] {
            assert_eq!(limits(bad), Err((422, "invalid_partition_limits")), "{bad}");
        }
        assert_eq!(limits(r#"{"max_connections":1,"max_wait_queue":0}"#), Ok(()));
    }

    #[test]
    fn queries_decode_and_bad_escapes_are_refused() {
        assert_eq!(
            parse_query("status=active&pool_id=pool_a%2Bb&x"),
            Some(vec![
                ("status".into(), "active".into()),
                ("pool_id".into(), "pool_a+b".into()),
                ("x".into(), "".into())
            ])
        );
        assert_eq!(parse_query("a=%4"), None);
        assert_eq!(parse_query("a=%ff"), None);
    }
}
