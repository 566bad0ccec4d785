//! The layer's side of talking to the issuer: coalesced, cached confirmations,
//! the opaque-token cache, and the deny list of sessions the issuer revoked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Authority, AuthorityCredential, Confirmation};
use crate::cache::{token_hash, TokenHash};
use crate::error::{AuthError, AuthErrorKind};
use crate::session::Session;

/// One answer of the issuer, and when the call that produced it started.
pub(crate) struct Answer {
    started: Instant,
    pub(crate) outcome: Result<Confirmation, AuthError>,
}

/// What a confirmation (cached, or in flight) is keyed by: the token asked about.
/// Only where the authority answers about whole sessions
/// ([`Authority::confirms_whole_session`], Stytch) is it the session id of the
/// locally verified session, so every token of that session shares one answer;
/// never for per-token answers (RFC 7662), where tokens of one `sid` differ in
/// scope and `acr` and one token's answer must not judge another.
#[derive(Clone, PartialEq, Eq, Hash)]
enum ConfirmKey {
    Session(Arc<str>),
    Token(TokenHash),
}

impl ConfirmKey {
    fn new(shared_by_session: bool, session: &Session, credential: AuthorityCredential<'_>) -> Self {
        match session.session_id() {
            Some(id) if shared_by_session => Self::Session(Arc::from(id)),
            _ => Self::Token(token_hash(credential.token())),
        }
    }

    /// Whether a live answer may be kept under this key: one shared by a session
    /// must be about that very session (else a later token of the session would
    /// be judged on another session's answer).
    fn holds(&self, confirmation: &Confirmation) -> bool {
        match self {
            Self::Session(id) => confirmation.session.session_id() == Some(&**id),
            Self::Token(_) => true,
        }
    }
}

pub(crate) struct AuthorityState {
    authority: Arc<dyn Authority>,
    confirmations: moka::future::Cache<ConfirmKey, Arc<Answer>>,
    opaque: moka::future::Cache<TokenHash, Arc<Answer>>,
    denied: moka::sync::Cache<Arc<str>, SystemTime>,
    any_denied: AtomicBool,
    opaque_ttl: Duration,
}

struct UntilJwtExpiry;

impl moka::Expiry<Arc<str>, SystemTime> for UntilJwtExpiry {
    fn expire_after_create(&self, _key: &Arc<str>, until: &SystemTime, _created_at: Instant) -> Option<Duration> {
        Some(until.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
    }
}

/// Longest time a confirmation is kept, whatever a route's window.
const MAX_CONFIRMATION_AGE: Duration = Duration::from_secs(3600);
/// Sessions remembered at once: bounds memory under a flood of distinct sessions.
const MAX_ENTRIES: u64 = 100_000;

impl AuthorityState {
    pub(crate) fn new(authority: Arc<dyn Authority>, opaque_ttl: Duration) -> Self {
        Self {
            authority,
            confirmations: moka::future::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(MAX_CONFIRMATION_AGE)
                .build(),
            opaque: moka::future::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(opaque_ttl.max(Duration::from_millis(1)))
                .build(),
            denied: moka::sync::Cache::builder().max_capacity(MAX_ENTRIES).expire_after(UntilJwtExpiry).build(),
            any_denied: AtomicBool::new(false),
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
    ) -> Arc<Answer> {
        let key = ConfirmKey::new(self.authority.confirms_whole_session(), session, credential);
        if let Some(answer) = self.confirmations.get(&key).await {
            let fresh_enough = answer.started + window >= arrival;
            if fresh_enough && answer.outcome.is_ok() {
                return answer;
            }
            self.confirmations.invalidate(&key).await;
        }
        let answer = self.confirmations.get_with(key.clone(), self.ask(credential)).await;
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

    /// Authenticates an opaque token, cached for the opaque-token window. A "revoked"
    /// answer is cached too, so a bad token repeated does not become an issuer call
    /// each time; transient failures are not.
    pub(crate) async fn opaque(&self, token: &str) -> Arc<Answer> {
        let hash = token_hash(token);
        let answer = self.opaque.get_with(hash, self.ask(AuthorityCredential::Opaque(token))).await;
        if answer.outcome.as_ref().is_err_and(|e| e.kind() != AuthErrorKind::SessionRevoked) {
            self.opaque.invalidate(&hash).await;
        }
        answer
    }

    async fn ask(&self, credential: AuthorityCredential<'_>) -> Arc<Answer> {
        let started = Instant::now();
        let outcome = self.authority.authenticate(credential).await;
        if let Err(error) = &outcome {
            tracing::debug!(%error, "the issuer did not confirm the session");
        }
        Arc::new(Answer { started, outcome })
    }

    /// Remembers that the issuer ended this session, until its tokens would have
    /// expired anyway: its JWT's `exp`, and at least as long as a cached answer about
    /// its opaque token may live.
    pub(crate) fn deny(&self, session: &Session, leeway: Duration) {
        let Some(id) = session.session_id() else { return };
        let opaque_bound = SystemTime::now() + self.opaque_ttl;
        let until = session.expires_at().map_or(opaque_bound, |exp| exp.max(opaque_bound)) + leeway;
        self.denied.insert(Arc::from(id), until);
        self.any_denied.store(true, Ordering::Release);
    }

    /// Whether the issuer ended this session. One atomic load while nothing was
    /// ever revoked.
    pub(crate) fn is_denied(&self, session: &Session) -> bool {
        self.any_denied.load(Ordering::Acquire) && session.session_id().is_some_and(|id| self.denied.contains_key(id))
    }
}
