//! The verified-session cache.
//!
//! A browser sends the same session JWT on every request for its whole lifetime, so
//! the layer remembers what a verification concluded instead of checking the
//! signature again.
//!
//! # Why this is safe
//!
//! - An entry is found by a 64-bit hash of the token (foldhash, seeded at random
//!   per process and per cache, so nobody outside can predict which tokens share a
//!   hash), and a hit is only a hit when the presented token also has the cached
//!   token's **length and its last 24 bytes**. Only verified JWTs are ever cached,
//!   and the last 24 bytes of a JWS are the end of its signature (at least 140 bits
//!   of it for every algorithm accepted: the shortest signatures, ES256 and EdDSA,
//!   have 86 characters, the last of which carries 4 bits). Nobody can present them without having seen that very
//!   token: so even a 64-bit collision, found by chance or by effort, can never
//!   admit another person's token, or a forged one. A token that collides *and*
//!   ends with the same 24 bytes was made by someone holding the cached token, who
//!   could present that token itself: it admits nothing they did not have. A
//!   collision can only cost a re-verification (one token's entry replaces the
//!   other's). So no hit needs a SHA-256 of a kilobyte, and the cache does not keep
//!   the kilobyte either.
//! - A hit still checks `exp`, `nbf`, the maximum token age and the session's own
//!   times (its end, Stytch `expires_at`) against the current clock with the same
//!   [`TimeRules`] as a fresh verification. An entry past the token's `exp` or the
//!   session's end (plus leeway) can never hit again, and is the first evicted.
//! - Each layer owns its own cache, so a token accepted under one configuration
//!   (issuer, audience, profile) is never accepted from the cache of another.
//! - Key rotation does not revive anything: entries only ever hold tokens that
//!   verified. A key removed from the set does not evict tokens already verified
//!   with it; they live at most until their `exp` (5 minutes for Stytch).
//! - Sessions the issuer reports revoked are evicted (see `SessionLayer` revocation).
//!
//! # Memory
//!
//! An entry holds the compact [`Session`] (one `Arc`), the token's times, length
//! and last 24 bytes, and, only for a session whose revocation would be remembered
//! by token (no session id, or an RFC 7662 authority), the token's SHA-256. It weighs its real heap:
//! the session's ([`Session::heap_size`]) and the hash; the [`table`] adds its own
//! slot and index bytes, so the budget bounds the whole cache.

mod table;

use std::hash::BuildHasher as _;
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::session::Session;
use crate::verify::{now_secs, TimeRules, TokenTimes, Verified};

/// Default weight budget: 64 MiB of heap, bookkeeping included (measured in
/// BENCHMARKS.md).
pub(crate) const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The SHA-256 of a token: how deny lists remember tokens (not the cache key).
pub(crate) type TokenHash = [u8; 32];

pub(crate) fn token_hash(token: &str) -> TokenHash {
    token_bytes_hash(token.as_bytes())
}

pub(crate) fn token_bytes_hash(token: &[u8]) -> TokenHash {
    Sha256::digest(token).into()
}

/// How many bytes of the token's end a hit must match.
const TAIL: usize = 24;

/// What a hit must match beside the 64-bit key: the token's length and its last
/// [`TAIL`] bytes (the whole token, zero-padded, when shorter).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    tail: [u8; TAIL],
    len: u32,
}

impl Fingerprint {
    fn of(token: &[u8]) -> Self {
        let mut tail = [0; TAIL];
        let end = &token[token.len().saturating_sub(TAIL)..];
        tail[..end.len()].copy_from_slice(end);
        Self { tail, len: u32::try_from(token.len()).unwrap_or(u32::MAX) }
    }

    fn matches(&self, token: &[u8]) -> bool {
        // The length first: cheap, and it makes the tail comparison exact.
        u32::try_from(token.len()).is_ok_and(|len| len == self.len) && *self == Self::of(token)
    }
}

/// The token's times in 12 bytes (`TokenTimes` takes 40): seconds since
/// [`Times::BASE`], [`Times::ABSENT`] for "absent".
#[derive(Clone, Copy)]
struct Times {
    exp: u32,
    nbf: u32,
    iat: u32,
}

impl Times {
    /// 2020-01-01T00:00:00Z: no token verified today was issued before it.
    const BASE: u64 = 1_577_836_800;
    const ABSENT: u32 = u32::MAX;

    /// `None` for times that do not fit, and are not worth caching: an `exp` before
    /// the base (long expired), an `nbf` or `iat` before the base or beyond 2156. An
    /// `exp` beyond 2156 is kept as the latest that fits: the entry only lapses
    /// sooner, which costs a re-verification, never a longer life.
    fn new(times: &TokenTimes) -> Option<Self> {
        let since =
            |at: u64| at.checked_sub(Self::BASE).and_then(|s| u32::try_from(s).ok()).filter(|&s| s != Self::ABSENT);
        let exp = match since(times.exp) {
            Some(exp) => exp,
            None if times.exp >= Self::BASE => Self::ABSENT - 1,
            None => return None,
        };
        let optional = |at: Option<u64>| at.map_or(Some(Self::ABSENT), since);
        Some(Self { exp, nbf: optional(times.nbf)?, iat: optional(times.iat)? })
    }

    fn get(self) -> TokenTimes {
        let at = |since: u32| Self::BASE + u64::from(since);
        let present = |since: u32| (since != Self::ABSENT).then(|| at(since));
        TokenTimes { exp: at(self.exp), nbf: present(self.nbf), iat: present(self.iat) }
    }
}

#[derive(Clone)]
pub(crate) struct CachedSession {
    pub(crate) session: Session,
    times: Times,
    fingerprint: Fingerprint,
    /// The token's SHA-256, for sessions without a session id only (`tokens_of`).
    token_hash: Option<Box<TokenHash>>,
}

impl CachedSession {
    /// The entry's heap beyond its slot, in bytes (see the module's "Memory").
    fn weight(&self) -> u32 {
        let hash = self.token_hash.as_ref().map_or(0, |_| std::mem::size_of::<TokenHash>());
        u32::try_from(self.session.heap_size() + hash).unwrap_or(u32::MAX)
    }
}

impl table::Expiring for CachedSession {
    /// The token's `exp`, or the session's end when sooner.
    fn end(&self) -> u64 {
        let session_end = self.session.session_expires_at().and_then(|end| end.duration_since(UNIX_EPOCH).ok());
        let exp = self.times.get().exp;
        session_end.map_or(exp, |end| end.as_secs().min(exp))
    }
}

/// How a token becomes its 64-bit key: seeded at random once per cache.
enum KeyHasher {
    Seeded(foldhash::quality::RandomState),
    /// Every token the same key: collisions on demand, for tests.
    #[cfg(test)]
    Degenerate,
}

impl KeyHasher {
    #[inline]
    fn key(&self, token: &[u8]) -> u64 {
        match self {
            Self::Seeded(state) => state.hash_one(token),
            #[cfg(test)]
            Self::Degenerate => 7,
        }
    }
}

/// Which entries keep their token's SHA-256: those whose revocation the layer
/// remembers by token (see `LayerState::forget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenHashes {
    /// No authority: a logout is remembered from the request's own token.
    Never,
    /// An authority that answers about whole sessions (Stytch): sessions with an
    /// id are remembered by it, the others by their tokens.
    WithoutSessionId,
    /// An authority that answers about one token (RFC 7662): every session is
    /// remembered by its tokens.
    Always,
}

impl TokenHashes {
    fn keeps(self, session: &Session) -> bool {
        match self {
            Self::Never => false,
            Self::WithoutSessionId => session.session_id().is_none(),
            Self::Always => true,
        }
    }
}

pub(crate) struct SessionCache {
    keys: KeyHasher,
    token_hashes: TokenHashes,
    /// Seconds past an entry's end before it counts as dead (the time rules' leeway).
    leeway: u64,
    entries: table::Table<CachedSession>,
}

impl SessionCache {
    pub(crate) fn new(max_bytes: u64, leeway: u64, token_hashes: TokenHashes) -> Self {
        Self::with_keys(max_bytes, leeway, token_hashes, KeyHasher::Seeded(foldhash::quality::RandomState::default()))
    }

    fn with_keys(max_bytes: u64, leeway: u64, token_hashes: TokenHashes, keys: KeyHasher) -> Self {
        Self { keys, token_hashes, leeway, entries: table::Table::new(max_bytes) }
    }

    /// A cached verification of exactly `token` that still passes the time rules.
    #[inline]
    pub(crate) fn get(&self, token: &[u8], rules: &TimeRules) -> Option<Session> {
        self.entries.get_with(self.keys.key(token), |cached| {
            if !cached.fingerprint.matches(token) {
                return None;
            }
            let now = now_secs();
            rules.check(&cached.times.get(), now).ok()?;
            // The session may end before its token does (Stytch `expires_at`).
            rules.check_session(&cached.session, now).ok()?;
            Some(cached.session.clone())
        })
    }

    /// Remembers a verification of `token`.
    pub(crate) fn insert(&self, token: &[u8], verified: &Verified) {
        let Some(times) = Times::new(&verified.times) else { return };
        let session = verified.session.clone();
        // Deny lists know some sessions by their tokens: computed here, on the cold
        // path, and only for those sessions.
        let token_hash = self.token_hashes.keeps(&session).then(|| Box::new(token_bytes_hash(token)));
        let cached = CachedSession { session, times, fingerprint: Fingerprint::of(token), token_hash };
        let weight = cached.weight();
        self.entries.insert(self.keys.key(token), cached, weight, now_secs().saturating_sub(self.leeway));
    }

    /// `(entries, heap bytes counted against the budget)` (benchmarks only).
    #[cfg(feature = "__bench")]
    pub(crate) fn stats(&self) -> (u64, u64) {
        self.entries.stats()
    }

    /// The tokens whose cached verification produced this very `Session` (a
    /// session without an id is known by its tokens only). A scan, like
    /// `evict_session`: only on revocations.
    pub(crate) fn tokens_of(&self, session: &Session) -> Vec<TokenHash> {
        let mut hashes = Vec::new();
        self.entries.for_each(|value| {
            if value.session.ptr_eq(session) {
                hashes.extend(value.token_hash.as_deref().copied());
            }
        });
        hashes
    }

    /// Forgets every cached verification of one session (it was revoked).
    pub(crate) fn evict_session(&self, session_id: &str) {
        // Revocations are rare; a scan is acceptable and keeps the hot path free of
        // a second index.
        self.entries.remove_where(|value| value.session.session_id() == Some(session_id));
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::session::Session;
    use crate::verify::TokenTimes;

    fn verified(session: Session) -> Verified {
        let now = now_secs();
        Verified { session, times: TokenTimes { exp: now + 300, nbf: None, iat: Some(now) } }
    }

    const STRICT: TimeRules = TimeRules { leeway: 0, max_age: None };

    #[test]
    fn a_hit_rechecks_the_sessions_own_end() {
        // A generous eviction leeway keeps the entry in the cache: only `get` can refuse it.
        let cache = SessionCache::new(DEFAULT_CACHE_BYTES, 3600, TokenHashes::Never);
        let ended = Session::builder("u", "i").session_expires_at(SystemTime::now() - Duration::from_secs(10)).build();
        cache.insert(b"a.b.c", &verified(ended));
        let lenient = TimeRules { leeway: 60, max_age: None };
        assert!(cache.get(b"a.b.c", &lenient).is_some());
        assert!(cache.get(b"a.b.c", &STRICT).is_none());
    }

    /// Only the very token hits: not a prefix, an extension, one flipped byte, or
    /// another token in the same bucket.
    #[test]
    fn only_the_exact_token_hits() {
        let cache = SessionCache::new(DEFAULT_CACHE_BYTES, 0, TokenHashes::Never);
        let token = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl";
        cache.insert(token, &verified(Session::builder("u", "i").build()));
        let rules = STRICT;
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

    /// An ES256-sized token: 86 signature characters, the last 24 of which a hit
    /// must match.
    fn jwt(body: &str, signature_tail: &str) -> Vec<u8> {
        let signature = format!("{}{signature_tail}", "S".repeat(86 - signature_tail.len()));
        format!("eyJhbGciOiJFUzI1NiJ9.{body}.{signature}").into_bytes()
    }

    /// A token of the same length with the same last 24 bytes (the end of the
    /// signature) but another body is another token: a miss, under the real hasher.
    #[test]
    fn same_length_and_tail_with_another_body_misses() {
        let cache = SessionCache::new(DEFAULT_CACHE_BYTES, 0, TokenHashes::Never);
        let tail = "0123456789abcdefghijklmnopqrstuv";
        let cached = jwt("eyJzdWIiOiJhbGljZSJ9", tail);
        let other = jwt("eyJzdWIiOiJtYWxsZSJ9", tail);
        assert_eq!(cached.len(), other.len());
        assert_eq!(cached[cached.len() - TAIL..], other[other.len() - TAIL..]);
        cache.insert(&cached, &verified(Session::builder("alice", "i").build()));
        assert_eq!(cache.get(&cached, &STRICT).map(|s| s.subject().to_owned()).as_deref(), Some("alice"));
        assert!(cache.get(&other, &STRICT).is_none());
    }

    /// Every token under one 64-bit key (a degenerate hasher): a token that is not
    /// the cached one never hits, however it collides, and the two can replace each
    /// other's entry (a re-verification) but never be taken for each other.
    #[test]
    fn colliding_keys_never_admit_another_token() {
        let cache = SessionCache::with_keys(DEFAULT_CACHE_BYTES, 0, TokenHashes::Never, KeyHasher::Degenerate);
        let alice = jwt("eyJzdWIiOiJhbGljZSJ9", "aliceALICEaliceALICEaliceALICE01");
        let mallory = jwt("eyJzdWIiOiJtYWxsZSJ9", "malloryMALLORYmalloryMALLORYmall");
        assert_eq!(cache.keys.key(&alice), cache.keys.key(&mallory));
        cache.insert(&alice, &verified(Session::builder("alice", "i").build()));
        assert!(cache.get(&mallory, &STRICT).is_none(), "same key, another signature");
        // Other lengths, the same tail, a prefix of the same tail: all misses.
        let mut longer = alice.clone();
        longer.insert(30, b'x');
        assert!(cache.get(&longer, &STRICT).is_none());
        assert!(cache.get(&alice[alice.len() - TAIL..], &STRICT).is_none(), "the tail alone");
        assert_eq!(cache.get(&alice, &STRICT).map(|s| s.subject().to_owned()).as_deref(), Some("alice"));
        // Mallory's own verified token takes the key: Alice's becomes a miss (she is
        // verified again), and neither is ever the other.
        cache.insert(&mallory, &verified(Session::builder("mallory", "i").build()));
        assert!(cache.get(&alice, &STRICT).is_none());
        assert_eq!(cache.get(&mallory, &STRICT).map(|s| s.subject().to_owned()).as_deref(), Some("mallory"));
    }

    /// Times round-trip exactly where they fit; an `exp` beyond 2156 only shortens
    /// the entry's life; what cannot be kept is not cached.
    #[test]
    fn times_fit_in_twelve_bytes_without_ever_lengthening_a_life() {
        let now = now_secs();
        let exact = TokenTimes { exp: now + 300, nbf: Some(now - 5), iat: None };
        let kept = Times::new(&exact).unwrap().get();
        assert_eq!((kept.exp, kept.nbf, kept.iat), (exact.exp, exact.nbf, exact.iat));
        let far = TokenTimes { exp: crate::verify::MAX_NUMERIC_DATE, nbf: None, iat: Some(now) };
        let kept = Times::new(&far).unwrap().get();
        assert!(kept.exp < far.exp && kept.exp > now + 100 * 365 * 86_400);
        assert_eq!(kept.iat, Some(now));
        for unfit in [
            TokenTimes { exp: Times::BASE - 1, nbf: None, iat: None },
            TokenTimes { exp: now + 300, nbf: Some(0), iat: None },
            TokenTimes { exp: now + 300, nbf: None, iat: Some(Times::BASE - 1) },
            TokenTimes { exp: now + 300, nbf: None, iat: Some(crate::verify::MAX_NUMERIC_DATE) },
        ] {
            assert!(Times::new(&unfit).is_none());
        }
        let cache = SessionCache::new(DEFAULT_CACHE_BYTES, 0, TokenHashes::Never);
        let old = Verified {
            session: Session::builder("u", "i").build(),
            times: TokenTimes { exp: now + 300, nbf: None, iat: Some(1) },
        };
        cache.insert(b"a.b.c", &old);
        assert!(cache.get(b"a.b.c", &STRICT).is_none(), "not cached");
    }

    /// The SHA-256 is kept only for sessions remembered by token.
    #[test]
    fn token_hashes_only_where_revocations_need_them() {
        let with_id = Session::builder("u", "i").session_id("s-1").build();
        let without_id = Session::builder("u", "i").build();
        for (policy, keeps_with_id, keeps_without_id) in [
            (TokenHashes::Never, false, false),
            (TokenHashes::WithoutSessionId, false, true),
            (TokenHashes::Always, true, true),
        ] {
            let cache = SessionCache::new(DEFAULT_CACHE_BYTES, 0, policy);
            cache.insert(b"t.with.id", &verified(with_id.clone()));
            cache.insert(b"t.without.id", &verified(without_id.clone()));
            let expect = |keeps: bool, token: &[u8]| if keeps { vec![token_bytes_hash(token)] } else { vec![] };
            assert_eq!(cache.tokens_of(&with_id), expect(keeps_with_id, b"t.with.id"), "{policy:?}");
            assert_eq!(cache.tokens_of(&without_id), expect(keeps_without_id, b"t.without.id"), "{policy:?}");
        }
    }

    /// A slot is one cache line: the session pointer, times, fingerprint and hash
    /// pointer (56 bytes), the folded key and the weight with the reference bit.
    #[test]
    fn a_slot_is_sixty_four_bytes() {
        assert_eq!(std::mem::size_of::<CachedSession>(), 56);
        assert_eq!(table::slot_size::<CachedSession>(), 64);
    }

    /// The weight is the entry's heap beyond its slot: the session, and the hash.
    #[test]
    fn the_weight_follows_the_session() {
        let small = CachedSession {
            session: Session::builder("u", "i").build(),
            times: Times::new(&verified(Session::builder("u", "i").build()).times).unwrap(),
            fingerprint: Fingerprint::of(b"t"),
            token_hash: None,
        };
        let bigger = CachedSession { session: Session::builder("u".repeat(1000), "i").build(), ..small.clone() };
        assert_eq!(small.weight() as usize, small.session.heap_size());
        assert_eq!(bigger.weight() - small.weight(), 999);
        let hashed = CachedSession { token_hash: Some(Box::new([0; 32])), ..small.clone() };
        assert_eq!(hashed.weight() - small.weight(), 32, "the hash");
    }
}
