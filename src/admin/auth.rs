//! Bearer-token checks, in constant time, and random tokens.

use std::hash::{BuildHasher, Hasher};
use std::io::Read;

/// Who may call the protected routes.
pub(crate) enum Auth {
    /// Holders of this token.
    Token(Vec<u8>),
    /// Anyone (the builder's `without_auth`).
    Open,
}

impl Auth {
    /// Whether one of the request's `Authorization` header values carries
    /// the token.
    pub(crate) fn allows<'a>(&self, authorizations: impl IntoIterator<Item = &'a str>) -> bool {
        let Auth::Token(token) = self else { return true };
        authorizations.into_iter().filter_map(bearer).any(|presented| constant_time_eq(presented.as_bytes(), token))
    }
}

/// The credentials of `Bearer <credentials>` (the scheme is case-blind).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

/// Compares in time that depends only on the lengths, never on where the
/// first difference is, so the token cannot be guessed byte by byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// 128 random bits as 32 hex digits: from the OS (`/dev/urandom`), else
/// from the standard library's randomly keyed hasher.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok();
    if !from_os {
        for (n, chunk) in bytes.chunks_mut(8).enumerate() {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_usize(n);
            hasher.write_u128(std::time::SystemTime::now().elapsed().map_or(0, |d| d.as_nanos()));
            chunk.copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_passes() {
        let auth = Auth::Token(b"s3cret".to_vec());
        assert!(auth.allows(["Bearer s3cret"]));
        assert!(auth.allows(["bearer  s3cret "]));
        assert!(auth.allows(["Basic x", "Bearer s3cret"]), "any of several");
        for wrong in ["Bearer s3cre", "Bearer s3crett", "Basic s3cret", "s3cret", "Bearer", "Bearer S3CRET"] {
            assert!(!auth.allows([wrong]), "{wrong:?}");
        }
        assert!(!auth.allows([]));
        assert!(Auth::Open.allows([]));
    }

    #[test]
    fn random_tokens_are_32_hex_digits_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
