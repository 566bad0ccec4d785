//! The verified-session cache.
//!
//! A browser sends the same session JWT on every request for its whole lifetime, so
//! the layer remembers what a verification concluded instead of checking the
//! signature again.
//!
//! # Why this is safe
//!
//! - The key is the whole token, compared byte for byte on every hit: a hit means
//!   the exact token was verified before. The table hashes it with foldhash, a fast
//!   hash seeded at random per process; a collision only puts two tokens in one
//!   bucket, it can never admit one for the other. So no hit needs a SHA-256 of a
//!   kilobyte (half the cost of a hit before), and a token that differs in one byte
//!   of its signature never hits.
//! - A hit still checks `exp`, `nbf`, the maximum token age and the session's own
//!   times (its end, Stytch `expires_at`) against the current clock with the same
//!   [`TimeRules`] as a fresh verification, and an entry is evicted no later than
//!   the token's `exp` or the session's end (plus leeway).
//! - Each layer owns its own cache, so a token accepted under one configuration
//!   (issuer, audience, profile) is never accepted from the cache of another.
//! - Key rotation does not revive anything: entries only ever hold tokens that
//!   verified. A key removed from the set does not evict tokens already verified
//!   with it; they live at most until their `exp` (5 minutes for Stytch).
//! - Sessions the issuer reports revoked are evicted (see `SessionLayer` revocation).

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::verify::{now_secs, TimeRules, Verified};

/// Default weight budget: about 48 MiB of estimated session size.
pub(crate) const DEFAULT_CACHE_BYTES: u64 = 48 * 1024 * 1024;

/// The SHA-256 of a token: how deny lists remember tokens (not the cache key).
pub(crate) type TokenHash = [u8; 32];

pub(crate) fn token_hash(token: &str) -> TokenHash {
    token_bytes_hash(token.as_bytes())
}

pub(crate) fn token_bytes_hash(token: &[u8]) -> TokenHash {
    Sha256::digest(token).into()
}

/// The cache key: the token itself.
type TokenKey = Box<[u8]>;

/// Seeded at random once per process (and per cache), so that nobody outside can
/// predict which tokens share a bucket.
type KeyHasher = foldhash::quality::RandomState;

#[derive(Clone)]
pub(crate) struct CachedSession {
    pub(crate) verified: Arc<Verified>,
    weight: u32,
}

pub(crate) struct SessionCache {
    entries: moka::sync::Cache<TokenKey, CachedSession, KeyHasher>,
}

struct UntilExpiry {
    leeway: u64,
}

impl moka::Expiry<TokenKey, CachedSession> for UntilExpiry {
    fn expire_after_create(&self, _key: &TokenKey, value: &CachedSession, _created_at: Instant) -> Option<Duration> {
        let session_end =
            value.verified.session.session_expires_at().and_then(|end| end.duration_since(UNIX_EPOCH).ok());
        let end = session_end.map_or(value.verified.times.exp, |end| end.as_secs().min(value.verified.times.exp));
        let until = end.saturating_add(self.leeway).saturating_sub(now_secs());
        Some(Duration::from_secs(until))
    }
}

impl SessionCache {
    pub(crate) fn new(max_bytes: u64, leeway: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &TokenKey, value: &CachedSession| value.weight)
            .expire_after(UntilExpiry { leeway })
            .build_with_hasher(KeyHasher::default());
        Self { entries }
    }

    /// A cached verification of exactly `token` that still passes the time rules.
    pub(crate) fn get(&self, token: &[u8], rules: &TimeRules) -> Option<Arc<Verified>> {
        let cached = self.entries.get(token)?;
        let now = now_secs();
        rules.check(&cached.verified.times, now).ok()?;
        // The session may end before its token does (Stytch `expires_at`).
        rules.check_session(&cached.verified.session, now).ok()?;
        Some(cached.verified)
    }

    /// Remembers a verification of `token`. The weight estimates the entry's heap:
    /// the token itself (the key) plus the decoded claims, which take roughly three
    /// times the token's length once parsed.
    pub(crate) fn insert(&self, token: &[u8], verified: Arc<Verified>) {
        let weight = u32::try_from(token.len().saturating_mul(4).saturating_add(256)).unwrap_or(u32::MAX);
        self.entries.insert(Box::from(token), CachedSession { verified, weight });
    }

    /// `(entries, weighted size)`, after pending maintenance (benchmarks only).
    #[cfg(feature = "__bench")]
    pub(crate) fn stats(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    /// The tokens whose cached verification produced this very `Session` (a
    /// session without an id is known by its tokens only). A scan, like
    /// `evict_session`: only on revocations.
    pub(crate) fn tokens_of(&self, session: &crate::session::Session) -> Vec<TokenHash> {
        let mut hashes = Vec::new();
        for (key, value) in &self.entries {
            if value.verified.session.ptr_eq(session) {
                hashes.push(token_bytes_hash(&key));
            }
        }
        hashes
    }

    /// Forgets every cached verification of one session (it was revoked).
    pub(crate) fn evict_session(&self, session_id: &str) {
        let session_id = session_id.to_owned();
        // Revocations are rare; a scan is acceptable and keeps the hot path free of
        // a second index.
        for (key, value) in &self.entries {
            if value.verified.session.session_id() == Some(session_id.as_str()) {
                self.entries.invalidate(&*key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::session::Session;
    use crate::verify::TokenTimes;

    #[test]
    fn a_hit_rechecks_the_sessions_own_end() {
        // A generous eviction leeway keeps the entry in the cache: only `get` can refuse it.
        let cache = SessionCache::new(DEFAULT_CACHE_BYTES, 3600);
        let now = now_secs();
        let ended = Session::builder("u", "i").session_expires_at(SystemTime::now() - Duration::from_secs(10)).build();
        let times = TokenTimes { exp: now + 300, nbf: None, iat: Some(now) };
        cache.insert(b"a.b.c", Arc::new(Verified { session: ended, times }));
        let lenient = TimeRules { leeway: 60, max_age: None };
        let strict = TimeRules { leeway: 0, max_age: None };
        assert!(cache.get(b"a.b.c", &lenient).is_some());
        assert!(cache.get(b"a.b.c", &strict).is_none());
    }

    /// Only the very token hits: not a prefix, an extension, one flipped byte, or
    /// another token in the same bucket.
    #[test]
    fn only_the_exact_token_hits() {
        let cache = SessionCache::new(DEFAULT_CACHE_BYTES, 0);
        let now = now_secs();
        let times = TokenTimes { exp: now + 300, nbf: None, iat: Some(now) };
        let token = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl";
        let session = Session::builder("u", "i").build();
        cache.insert(token, Arc::new(Verified { session, times }));
        let rules = TimeRules { leeway: 0, max_age: None };
        assert!(cache.get(token, &rules).is_some());
        assert!(cache.get(&token[..token.len() - 1], &rules).is_none());
        assert!(cache.get(&[&token[..], b"A"].concat(), &rules).is_none());
        for at in 0..token.len() {
            let mut flipped = token.to_vec();
            flipped[at] ^= 1;
            assert!(cache.get(&flipped, &rules).is_none(), "byte {at} flipped");
        }
        assert!(cache.get(b"", &rules).is_none());
    }
}
