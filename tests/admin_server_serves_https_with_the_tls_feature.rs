//! With the `admin-tls` feature the admin server serves HTTPS (tiny_http's
//! rustls support), and may then listen beyond loopback without the
//! plaintext opt-in. The certificate comes from the `openssl` command and
//! the client is `curl`; without them the test says so and skips.
#![cfg(feature = "admin-tls")]

use std::process::Command;

use rusty_db::admin::{AdminServer, Registry};

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
        || Command::new(tool).arg("version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn https_is_served_with_a_pem_certificate_and_plain_http_is_not() {
    if !have("openssl") || !have("curl") {
        eprintln!("skipped: needs the openssl and curl commands");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let server = AdminServer::builder()
        .token("tls-token-123")
        .tls(std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap())
        .start(Registry::new())
        .unwrap();
    let port = server.local_addr().port();
    let curl = |url: String, token: Option<&str>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sk", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"]);
        if let Some(token) = token {
            cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
        }
        let out = cmd.arg(url).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let health = curl(format!("https://localhost:{port}/health"), None);
    assert!(health.ends_with("\n200") && health.contains("\"status\":\"ok\""), "{health}");
    let pools = curl(format!("https://localhost:{port}/api/v1/pools"), Some("tls-token-123"));
    assert!(pools.ends_with("\n200"), "{pools}");
    assert!(curl(format!("https://localhost:{port}/api/v1/pools"), None).ends_with("\n401"));
    let plain = curl(format!("http://localhost:{port}/health"), None);
    assert!(!plain.ends_with("\n200"), "plain HTTP is not served: {plain}");
    server.shutdown();

    // With TLS, a non-loopback address needs no plaintext opt-in.
    let remote = AdminServer::builder()
        .token("tls-token-123")
        .bind("0.0.0.0:0".parse().unwrap())
        .tls(std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap())
        .start(Registry::new())
        .unwrap();
    remote.shutdown();
}
