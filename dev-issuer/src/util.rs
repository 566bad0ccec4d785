//! Small helpers shared by the dev issuer: randomness, ids, time formatting, base64.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Base64url without padding, as used by JWS and JWK.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; `None` on malformed input.
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// `N` random bytes from the system generator.
///
/// The system generator does not fail in practice; should it ever, the bytes are derived
/// from a process-wide counter and the clock so that ids stay unique (they are test ids).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut buf = [0u8; N];
    if aws_lc_rs::rand::fill(&mut buf).is_err() {
        let mut filled = 0;
        while filled < N {
            let mut hasher = Sha256::new();
            hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
            hasher.update(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos().to_le_bytes());
            let digest = hasher.finalize();
            let take = (N - filled).min(digest.len());
            buf[filled..filled + take].copy_from_slice(&digest[..take]);
            filled += take;
        }
    }
    buf
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Formats 16 bytes as a version-4 style UUID string.
fn uuid_from(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex(&bytes);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A fresh random UUID string.
pub(crate) fn random_uuid() -> String {
    uuid_from(random_bytes::<16>())
}

/// A UUID string derived deterministically from `parts` (stable ids per user).
pub(crate) fn stable_uuid(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid_from(bytes)
}

/// An opaque random token: `N` random bytes in base64url.
pub(crate) fn random_token<const N: usize>() -> String {
    b64url(&random_bytes::<N>())
}

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// RFC 3339 in UTC with whole seconds, as Stytch writes it (`2024-01-02T03:04:05Z`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from_unix_timestamp(unix_secs(t))
        .ok()
        .and_then(|dt| dt.format(&Rfc3339).ok())
        .unwrap_or_else(|| String::from("1970-01-01T00:00:00Z"))
}

/// `t - d`, saturating at the Unix epoch.
pub(crate) fn time_sub(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_sub(d).unwrap_or(UNIX_EPOCH)
}

/// `t + d`, saturating at `t` on overflow.
pub(crate) fn time_add(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(86_400)), "1970-01-02T00:00:00Z");
        assert_eq!(random_uuid().len(), 36);
        assert_eq!(stable_uuid(&["a", "b"]), stable_uuid(&["a", "b"]));
        assert_ne!(stable_uuid(&["ab", ""]), stable_uuid(&["a", "b"]));
        assert_eq!(random_token::<33>().len(), 44);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }
}
