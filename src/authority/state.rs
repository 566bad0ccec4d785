//! The layer's side of talking to the issuer: coalesced, cached confirmations,
//! the opaque-token cache, the issuer-call budget, and the deny lists of sessions
//! and tokens the issuer said are gone.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::budget::{Budget, IssuerBudget};
use super::{Authority, AuthorityCredential, Confirmation};
use crate::cache::{token_hash, TokenHash};
use crate::error::{AuthError, AuthErrorKind};
use crate::issuers::IssuerTable;
use crate::rbac::AuthorizationCheck;
use crate::session::Session;

/// What turns an issuer's answer into the layer's session: the layer's claim
/// profile (see `LayerState::shape`). Applied once per issuer call, before the
/// answer is cached and held to the layer's rules.
pub(crate) trait Shaper: Send + Sync {
    fn shape<'a>(
        &'a self,
        confirmation: Confirmation,
    ) -> Pin<Box<dyn Future<Output = Result<Confirmation, AuthError>> + Send + 'a>>;
}

/// One answer of the issuer, and when the call that produced it started.
pub(crate) struct Answer {
    started: Instant,
    /// Wall-clock twin of `started`, to compare with the session's times.
    asked_at: SystemTime,
    pub(crate) outcome: Result<Confirmation, AuthError>,
}

impl Answer {
    fn refused(error: AuthError) -> Arc<Self> {
        Arc::new(Self { started: Instant::now(), asked_at: SystemTime::now(), outcome: Err(error) })
    }

    /// How long the opaque-token cache may serve this answer: the TTL, and never
    /// past the moment the session or its credential ends.
    fn keep_for(&self, ttl: Duration) -> Duration {
        let Ok(confirmation) = &self.outcome else { return ttl };
        let session = &confirmation.session;
        let ends = match (session.expires_at(), session.session_expires_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // An introspection answer without `exp` carries the time of the answer
        // (whole seconds) as its expiry: it is trusted for the cache window only.
        // Any real `exp` lies at least a second past the start of the call in whole
        // seconds (the authority refuses expired tokens), so the two never mix up.
        let asked = floor_secs(self.asked_at);
        match ends {
            Some(end) if end > asked => ttl.min(end.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)),
            _ => ttl,
        }
    }
}

fn floor_secs(at: SystemTime) -> SystemTime {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// What a confirmation (cached, or in flight) is keyed by: the token asked about.
/// Only where the authority answers about whole sessions
/// ([`Authority::confirms_whole_session`], Stytch) is it the session id of the
/// locally verified session, so every token of that session shares one answer;
/// never for per-token answers (RFC 7662), where tokens of one `sid` differ in
/// scope and `acr` and one token's answer must not judge another.
/// An answer given with an authorization check is about that check too, and
/// serves only callers with the same check.
#[derive(Clone, PartialEq, Eq, Hash)]
enum ConfirmKey {
    Session(Arc<str>),
    Token(TokenHash),
    Checked(Box<ConfirmKey>, Arc<AuthorizationCheck>),
}

impl ConfirmKey {
    fn new(
        shared_by_session: bool,
        session: &Session,
        credential: AuthorityCredential<'_>,
        check: Option<&AuthorizationCheck>,
    ) -> Self {
        let key = match session.session_id() {
            Some(id) if shared_by_session => Self::Session(Arc::from(id)),
            _ => Self::Token(token_hash(credential.token())),
        };
        match check {
            Some(check) => Self::Checked(Box::new(key), Arc::new(check.clone())),
            None => key,
        }
    }

    /// Whether a live answer may be kept under this key: one shared by a session
    /// must be about that very session (else a later token of the session would
    /// be judged on another session's answer).
    fn holds(&self, confirmation: &Confirmation) -> bool {
        match self {
            Self::Session(id) => confirmation.session.session_id() == Some(&**id),
            Self::Token(_) => true,
            Self::Checked(key, _) => key.holds(confirmation),
        }
    }
}

/// What the layer tells its authority state about itself.
pub(crate) struct AuthoritySettings {
    pub(crate) opaque_ttl: Duration,
    pub(crate) budget: IssuerBudget,
    /// The layer's issuers, each with its audiences: every answer must name one
    /// of them (or one the authority vouches for) and match that issuer's rules.
    pub(crate) issuers: Arc<IssuerTable>,
    /// Accept answers without any `aud` (see `with_authority_audience_optional`).
    pub(crate) audience_optional: bool,
    pub(crate) leeway: Duration,
}

pub(crate) struct AuthorityState {
    authority: Arc<dyn Authority>,
    confirmations: moka::future::Cache<ConfirmKey, Arc<Answer>>,
    opaque: moka::future::Cache<TokenHash, Arc<Answer>>,
    /// Sessions the issuer ended, by session id.
    denied_sessions: DenyList<Arc<str>>,
    /// Credentials of known sessions without a session id (a verified JWT, an
    /// opaque token the issuer once vouched for) whose session ended.
    denied_tokens: DenyList<TokenHash>,
    /// Opaque tokens the issuer refused without ever naming a session. Kept apart
    /// so that garbage, however much of it, never pushes a real revocation out.
    refused_tokens: DenyList<TokenHash>,
    budget: Budget,
    issuers: Arc<IssuerTable>,
    audience_optional: bool,
    /// Longest `exp - iat` of a JWT verified by this layer, in seconds.
    longest_jwt: AtomicU64,
    leeway: Duration,
    opaque_ttl: Duration,
}

/// A bounded list of things the issuer said are gone, each kept until its own time.
///
/// LRU eviction, not moka's default TinyLFU: TinyLFU may refuse a new entry when
/// the list is full, and a revocation must always be recorded. When full, the
/// entry least recently presented goes first.
pub(crate) struct DenyList<K> {
    entries: moka::sync::Cache<K, SystemTime>,
    /// The hot path pays one atomic load while nothing was ever denied.
    any: AtomicBool,
}

struct Until;

impl<K> moka::Expiry<K, SystemTime> for Until {
    fn expire_after_create(&self, _key: &K, until: &SystemTime, _created_at: Instant) -> Option<Duration> {
        Some(until.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
    }
    fn expire_after_update(
        &self,
        _key: &K,
        until: &SystemTime,
        _updated_at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(until.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
    }
}

impl<K: std::hash::Hash + Eq + Send + Sync + 'static> DenyList<K> {
    pub(crate) fn new(capacity: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .expire_after(Until)
            .build();
        Self { entries, any: AtomicBool::new(false) }
    }

    /// Records `key` until `until`, or longer if it already was.
    pub(crate) fn insert(&self, key: K, until: SystemTime) {
        let until = self.entries.get(&key).map_or(until, |known| known.max(until));
        self.entries.insert(key, until);
        self.any.store(true, Ordering::Release);
    }

    pub(crate) fn contains<Q>(&self, key: &Q) -> bool
    where
        Q: moka::Equivalent<K> + std::hash::Hash + ?Sized,
    {
        // `get` rather than `contains_key`: a read keeps a presented entry recent.
        self.any.load(Ordering::Acquire) && self.entries.get(key).is_some()
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }
}

struct OpaqueExpiry {
    ttl: Duration,
}

impl moka::Expiry<TokenHash, Arc<Answer>> for OpaqueExpiry {
    fn expire_after_create(&self, _key: &TokenHash, answer: &Arc<Answer>, _created_at: Instant) -> Option<Duration> {
        Some(answer.keep_for(self.ttl))
    }
    fn expire_after_update(
        &self,
        _key: &TokenHash,
        answer: &Arc<Answer>,
        _updated_at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(answer.keep_for(self.ttl))
    }
}

/// Longest time a confirmation is kept, whatever a route's window.
const MAX_CONFIRMATION_AGE: Duration = Duration::from_secs(3600);
/// Sessions remembered at once: bounds memory under a flood of distinct sessions.
const MAX_ENTRIES: u64 = 100_000;

impl AuthorityState {
    pub(crate) fn new(authority: Arc<dyn Authority>, settings: AuthoritySettings) -> Self {
        let opaque_ttl = settings.opaque_ttl;
        Self {
            authority,
            confirmations: moka::future::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(MAX_CONFIRMATION_AGE)
                .build(),
            opaque: moka::future::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .expire_after(OpaqueExpiry { ttl: opaque_ttl.max(Duration::from_millis(1)) })
                .build(),
            denied_sessions: DenyList::new(MAX_ENTRIES),
            denied_tokens: DenyList::new(MAX_ENTRIES),
            refused_tokens: DenyList::new(MAX_ENTRIES),
            budget: Budget::new(settings.budget),
            issuers: settings.issuers,
            audience_optional: settings.audience_optional,
            longest_jwt: AtomicU64::new(0),
            leeway: settings.leeway,
            opaque_ttl,
        }
    }

    /// Confirms `credential`, the credential that produced the locally verified
    /// `session`, with the issuer, unless a confirmation started no earlier than
    /// `window` before `arrival` exists. Concurrent callers share one call (a caller
    /// that joins a call already in flight accepts it, so its answer may be one
    /// issuer round trip older than the request).
    ///
    /// Answers are shared only by callers with the same token, or, where the
    /// authority confirms whole sessions, by callers whose local session has the
    /// same id (see [`ConfirmKey`]). The caller must still check that the answer is
    /// about its own session.
    pub(crate) async fn confirm(
        &self,
        session: &Session,
        credential: AuthorityCredential<'_>,
        window: Duration,
        arrival: Instant,
        check: Option<&AuthorizationCheck>,
        shaper: &dyn Shaper,
    ) -> Arc<Answer> {
        let key = ConfirmKey::new(self.authority.confirms_whole_session(), session, credential, check);
        if let Some(answer) = self.confirmations.get(&key).await {
            let fresh_enough = answer.started + window >= arrival;
            if fresh_enough && answer.outcome.is_ok() {
                return answer;
            }
            self.confirmations.invalidate(&key).await;
        }
        let answer = self.confirmations.get_with(key.clone(), self.ask(credential, check, shaper)).await;
        match &answer.outcome {
            Ok(confirmation) if !key.holds(confirmation) => {
                tracing::warn!("the issuer confirmed another session than the one asked about");
                self.confirmations.invalidate(&key).await;
            }
            Ok(_) => {}
            Err(error) => {
                // Failures are not reused by later requests: they ask again.
                self.confirmations.invalidate(&key).await;
                // An opaque token the issuer just refused must not stay "alive" in the
                // opaque-token cache (routes without a fresh guard read that one).
                if let (AuthorityCredential::Opaque(token), AuthErrorKind::SessionRevoked) = (credential, error.kind())
                {
                    self.opaque.insert(token_hash(token), answer.clone()).await;
                }
            }
        }
        answer
    }

    /// Authenticates a credential that cannot be verified locally (an opaque
    /// token), or a JWT that only lapsed locally (see `Verifier::verify_lapsed`),
    /// cached by the credential until the earlier of the opaque-token window and the
    /// session's own end. Answers about the credential (revoked, wrong audience, …)
    /// are cached too, so a bad token repeated does not become an issuer call each
    /// time; the issuer's own faults are not. A cache miss spends the issuer-call
    /// budget: over it, no call and an `IssuerBusy` answer.
    pub(crate) async fn remote(&self, credential: AuthorityCredential<'_>, shaper: &dyn Shaper) -> Arc<Answer> {
        let hash = token_hash(credential.token());
        if self.refused_tokens.contains(&hash) || self.denied_tokens.contains(&hash) {
            return Answer::refused(AuthError::with_detail(AuthErrorKind::SessionRevoked, "remembered revocation"));
        }
        if let Some(answer) = self.opaque.get(&hash).await {
            return answer;
        }
        let answer = self
            .opaque
            .get_with(hash, async {
                match self.budget.try_acquire() {
                    Ok(_permit) => self.ask(credential, None, shaper).await,
                    Err(busy) => Answer::refused(busy),
                }
            })
            .await;
        if let Err(error) = &answer.outcome {
            if error.kind().is_server_fault() {
                self.opaque.invalidate(&hash).await;
            } else if error.kind() == AuthErrorKind::SessionRevoked {
                self.refused_tokens.insert(hash, self.deny_until(None));
            }
        }
        answer
    }

    /// Whether the issuer says the session of this (expired, locally verified) JWT
    /// is gone: to learn a revocation without trusting an answer about another
    /// credential. Within the issuer-call budget; over it, "not known to be gone".
    pub(crate) async fn is_gone(&self, jwt: &str) -> bool {
        let Ok(_permit) = self.budget.try_acquire() else { return false };
        let outcome = self.authority.authenticate(AuthorityCredential::Jwt(jwt)).await;
        outcome.is_err_and(|error| error.kind() == AuthErrorKind::SessionRevoked)
    }

    /// Asks the issuer (with the guard's authorization check, if any), has the
    /// layer's claim profile shape the answer (`shaper`), and holds it to the layer's
    /// issuer and audience rules: an authority vouching for a session is not enough,
    /// the session must be one this layer accepts (the same rules as for JWTs).
    async fn ask(
        &self,
        credential: AuthorityCredential<'_>,
        check: Option<&AuthorizationCheck>,
        shaper: &dyn Shaper,
    ) -> Arc<Answer> {
        let started = Instant::now();
        let asked_at = SystemTime::now();
        let asked = match check {
            Some(check) => self.authority.authenticate_authorized(credential, check).await,
            None => self.authority.authenticate(credential).await,
        };
        let outcome = match asked {
            Ok(confirmation) => shaper.shape(confirmation).await.and_then(|confirmation| {
                self.accepts(&confirmation.session)?;
                // An authorization asked about is granted only by a verdict saying so.
                if check.is_some() && !confirmation.verdict.as_ref().is_some_and(|verdict| verdict.authorized) {
                    return Err(AuthError::with_detail(AuthErrorKind::PermissionDenied, "no authorizing verdict"));
                }
                Ok(confirmation)
            }),
            Err(error) => Err(error),
        };
        match &outcome {
            // The issuer's own trouble is the operator's to see; a refused credential
            // is the client's business and routine.
            Err(error) if error.kind().is_server_fault() => {
                tracing::warn!(%error, "the issuer could not confirm a session");
            }
            Err(error) => tracing::debug!(%error, "the issuer did not confirm the session"),
            Ok(_) => {}
        }
        Arc::new(Answer { started, asked_at, outcome })
    }

    /// The layer's rules for any session, applied to the issuer's answer: the
    /// issuer it names must be one of the layer's (or one the authority vouches
    /// for), and the answer is held to *that* issuer's audiences and tenant; and
    /// the session's own times (no authentication in the future, not past its
    /// own end).
    fn accepts(&self, session: &Session) -> Result<(), AuthError> {
        session.check_times(SystemTime::now(), self.leeway)?;
        let Some(issuer) = self.issuers.select(session.issuer()) else {
            return Err(AuthError::with_detail(AuthErrorKind::WrongIssuer, "the issuer's answer names another issuer"));
        };
        if session.audience().is_empty() && !self.audience_optional {
            return Err(AuthError::with_detail(AuthErrorKind::MissingClaim, "aud"));
        }
        issuer.check_session(session)
    }

    /// Notes the lifetime of a JWT this layer verified. One load per new
    /// verification (cache hits skip it); a write only when a longer one shows up.
    pub(crate) fn observe_jwt_lifetime(&self, seconds: u64) {
        if seconds > self.longest_jwt.load(Ordering::Relaxed) {
            self.longest_jwt.fetch_max(seconds, Ordering::Relaxed);
        }
    }

    /// Until when a revocation must be remembered: until the session would have
    /// ended (its own expiry when known), and at least until any JWT of it this
    /// layer could still accept has expired (the longest JWT lifetime seen, counted
    /// from now: a session may have been extended since the presented token), and
    /// at least as long as a cached answer about an opaque token may live.
    fn deny_until(&self, session: Option<&Session>) -> SystemTime {
        let now = SystemTime::now();
        let longest = Duration::from_secs(self.longest_jwt.load(Ordering::Relaxed)).max(self.opaque_ttl);
        let mut until = now + longest;
        if let Some(session) = session {
            for end in [session.session_expires_at(), session.expires_at()].into_iter().flatten() {
                until = until.max(end);
            }
        }
        // Deny entries beyond a year are pointless: no issuer hands out such tokens.
        until.min(now + Duration::from_secs(366 * 24 * 3600)) + self.leeway
    }

    /// Remembers that the issuer ended this session (see `deny_until`). A session
    /// without an id is remembered by its credentials: see [`deny_token`](Self::deny_token).
    pub(crate) fn deny(&self, session: &Session) {
        if let Some(id) = self.session_key(session) {
            self.denied_sessions.insert(Arc::from(id), self.deny_until(Some(session)));
            return;
        }
        // Opaque tokens that produced this very session (a session known by its
        // token only). Revocations are rare: a scan is fine.
        // `opaque` looks here before its cache, so the cached answer is dead.
        for (hash, answer) in &self.opaque {
            if answer.outcome.as_ref().is_ok_and(|c| c.session.ptr_eq(session)) {
                self.deny_token(*hash, Some(session));
            }
        }
    }

    /// The session id a revocation of `session` is remembered by, where the
    /// authority answers about whole sessions (Stytch). An RFC 7662 answer is about
    /// one token: an inactive access token says nothing of the other tokens that
    /// carry the same `sid`, so those revocations are remembered by token.
    pub(crate) fn session_key<'s>(&self, session: &'s Session) -> Option<&'s str> {
        session.session_id().filter(|_| self.authority.confirms_whole_session())
    }

    /// Remembers that the session of this credential ended.
    pub(crate) fn deny_token(&self, hash: TokenHash, session: Option<&Session>) {
        self.denied_tokens.insert(hash, self.deny_until(session));
    }

    /// The authority itself, for calls that bypass the cache and the budget (a
    /// revocation: rare, and never on behalf of an unverified client).
    pub(crate) fn authority(&self) -> &dyn Authority {
        &*self.authority
    }

    /// Forgets what the issuer said about `session` and about `token` (a step-up
    /// changed the session): the next fresh route and the next request with
    /// `token` ask again instead of judging the session as it was.
    pub(crate) async fn forget_answers(&self, session: &Session, token: Option<&str>) {
        if let Some(id) = self.session_key(session) {
            self.confirmations.invalidate(&ConfirmKey::Session(Arc::from(id))).await;
        }
        if let Some(token) = token {
            let hash = token_hash(token);
            self.confirmations.invalidate(&ConfirmKey::Token(hash)).await;
            self.opaque.invalidate(&hash).await;
        }
    }

    /// Whether the issuer ended this session. One atomic load while nothing was
    /// ever revoked.
    pub(crate) fn is_denied(&self, session: &Session) -> bool {
        self.session_key(session).is_some_and(|id| self.denied_sessions.contains(id))
    }

    /// Whether the credential that produced `session` was revoked: by session id
    /// (see [`session_key`](Self::session_key)), else by token hash (computed only
    /// when some token was ever denied).
    pub(crate) fn is_credential_denied(&self, session: &Session, hash: impl FnOnce() -> TokenHash) -> bool {
        match self.session_key(session) {
            Some(id) => self.denied_sessions.contains(id),
            None => !self.denied_tokens.is_empty() && self.denied_tokens.contains(&hash()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 8 item 5: moka's default admission (TinyLFU) may refuse a new entry
    /// once the cache is full of popular ones; a deny list must always keep the
    /// newest revocation.
    #[test]
    fn a_full_deny_list_still_admits_the_newest_revocation() {
        let list: DenyList<Arc<str>> = DenyList::new(1_000);
        let until = SystemTime::now() + Duration::from_secs(300);
        for i in 0..5_000 {
            let key: Arc<str> = Arc::from(format!("attacker-{i}"));
            list.insert(key, until);
            // Popular keys: TinyLFU would now refuse an unseen one.
            assert!(list.contains(format!("attacker-{i}").as_str()));
        }
        list.entries.run_pending_tasks();
        list.insert(Arc::from("victim-session"), until);
        list.entries.run_pending_tasks();
        assert!(list.contains("victim-session"), "the newest revocation was dropped");
        assert!(list.entries.entry_count() <= 1_000, "bounded: {}", list.entries.entry_count());
    }

    #[test]
    fn deny_entries_never_shrink_and_expire_on_their_own_time() {
        let list: DenyList<TokenHash> = DenyList::new(10);
        assert!(list.is_empty());
        let later = SystemTime::now() + Duration::from_secs(300);
        list.insert([1; 32], later);
        // A second, earlier bound for the same key does not shorten the first.
        list.insert([1; 32], SystemTime::now());
        assert!(list.contains(&[1; 32]));
        list.insert([2; 32], SystemTime::now());
        assert!(!list.contains(&[2; 32]), "an entry whose time has passed is gone");
        assert!(!list.is_empty());
    }
}
