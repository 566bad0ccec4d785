//! The verified-session cache.
//!
//! A browser sends the same session JWT on every request for its whole lifetime, so
//! the layer remembers what a verification concluded instead of checking the
//! signature again.
//!
//! # Why this is safe
//!
//! - The key is the SHA-256 of the whole token. A hit means the exact token was
//!   verified before (finding another token with the same hash is a second-preimage
//!   attack on SHA-256); no part of the token and no weak hash is used, so a token
//!   that differs in one byte of its signature never hits.
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

pub(crate) type TokenHash = [u8; 32];

pub(crate) fn token_hash(token: &str) -> TokenHash {
    token_bytes_hash(token.as_bytes())
}

pub(crate) fn token_bytes_hash(token: &[u8]) -> TokenHash {
    Sha256::digest(token).into()
}

#[derive(Clone)]
pub(crate) struct CachedSession {
    pub(crate) verified: Arc<Verified>,
    weight: u32,
}

pub(crate) struct SessionCache {
    entries: moka::sync::Cache<TokenHash, CachedSession>,
}

struct UntilExpiry {
    leeway: u64,
}

impl moka::Expiry<TokenHash, CachedSession> for UntilExpiry {
    fn expire_after_create(&self, _key: &TokenHash, value: &CachedSession, _created_at: Instant) -> Option<Duration> {
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
            .weigher(|_key: &TokenHash, value: &CachedSession| value.weight)
            .expire_after(UntilExpiry { leeway })
            .build();
        Self { entries }
    }

    /// A cached verification that still passes the time rules.
    pub(crate) fn get(&self, hash: &TokenHash, rules: &TimeRules) -> Option<Arc<Verified>> {
        let cached = self.entries.get(hash)?;
        let now = now_secs();
        rules.check(&cached.verified.times, now).ok()?;
        // The session may end before its token does (Stytch `expires_at`).
        rules.check_session(&cached.verified.session, now).ok()?;
        Some(cached.verified)
    }

    /// Remembers a verification. `token_len` sizes the entry: the decoded claims
    /// take roughly three times the token's length once parsed.
    pub(crate) fn insert(&self, hash: TokenHash, verified: Arc<Verified>, token_len: usize) {
        let weight = u32::try_from(token_len.saturating_mul(3).saturating_add(256)).unwrap_or(u32::MAX);
        self.entries.insert(hash, CachedSession { verified, weight });
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
                hashes.push(*key);
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
        cache.insert([1; 32], Arc::new(Verified { session: ended, times }), 100);
        let lenient = TimeRules { leeway: 60, max_age: None };
        let strict = TimeRules { leeway: 0, max_age: None };
        assert!(cache.get(&[1; 32], &lenient).is_some());
        assert!(cache.get(&[1; 32], &strict).is_none());
    }
}
