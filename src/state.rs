//! The per-layer state shared by a [`SessionLayer`](crate::SessionLayer), its
//! services, the guards and the extractors behind it, with the small API they all
//! call: [`resolve`](LayerState::resolve) a request's credential (and finish it on
//! the network with [`settle`](LayerState::settle)), [`confirm`](LayerState::confirm)
//! a session with the issuer, [`refuse`](LayerState::refuse) a request, and
//! [`write_cookies`](LayerState::write_cookies).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Extensions, HeaderMap, Response, StatusCode, Uri};

use crate::authority::state::{AuthorityState, DenyList, Shaper};
use crate::authority::{AuthorityCredential, Confirmation, RenewedTokens};
use crate::cache::{token_bytes_hash, token_hash, SessionCache, TokenHash};
use crate::challenge::{safe_return_to, ChallengeContext};
use crate::cookies::CookieAttributes;
use crate::credential::{Credential, CredentialConfig, CredentialSource};
use crate::error::{AuthError, AuthErrorKind};
use crate::guard::{Dialect, GuardConfig};
use crate::jwks::KeyStore;
use crate::metadata::ResourceMetadata;
use crate::rbac::AuthorizationCheck;
use crate::rejection::Rejection;
use crate::session::{AuthState, Session, TokenKind};
use crate::verify::{Verified, Verifier};

/// The state shared by a layer, its services and the guards behind it.
pub(crate) struct LayerState {
    pub(crate) credentials: CredentialConfig,
    pub(crate) verifier: Verifier,
    pub(crate) cache: Option<SessionCache>,
    pub(crate) guards: GuardConfig,
    /// The kind of sessions this layer makes, for build-time requirement checks.
    pub(crate) dialect: Dialect,
    pub(crate) authority: Option<AuthorityState>,
    /// Local check of opaque tokens before they may become issuer calls.
    pub(crate) opaque_shape: fn(&str) -> bool,
    pub(crate) cookies: CookieAttributes,
    /// Sessions ended by a logout on a layer without an authority (with one, its
    /// deny lists remember them): by session id, else by token.
    pub(crate) logged_out: LocalRevocations,
    /// The RFC 9728 metadata named in challenges (`resource_metadata`).
    pub(crate) resource_metadata: Option<ResourceMetadata>,
}

/// Logouts remembered by a layer that has no authority to ask.
pub(crate) struct LocalRevocations {
    sessions: DenyList<Arc<str>>,
    tokens: DenyList<TokenHash>,
}

impl LocalRevocations {
    /// Bounds memory like the authority's deny lists.
    const CAPACITY: u64 = 100_000;

    pub(crate) fn new() -> Self {
        Self { sessions: DenyList::new(Self::CAPACITY), tokens: DenyList::new(Self::CAPACITY) }
    }

    /// Remembers the logout until the session (else its token) would have ended.
    fn insert(&self, session: &Session, token: &str, leeway: Duration) {
        let fallback = SystemTime::now() + Duration::from_secs(3600);
        let until = session.session_expires_at().or(session.expires_at()).unwrap_or(fallback) + leeway;
        match session.session_id() {
            Some(id) => self.sessions.insert(Arc::from(id), until),
            None => self.tokens.insert(token_hash(token), until),
        }
    }

    /// One atomic load per list while nobody ever logged out.
    fn contains(&self, session: &Session, hash: impl FnOnce() -> TokenHash) -> bool {
        match session.session_id() {
            Some(id) => self.sessions.contains(id),
            None => !self.tokens.is_empty() && self.tokens.contains(&hash()),
        }
    }
}

/// Lets guards and extractors reach the layer that authenticated the request, and
/// know where its credential came from. One extension, not two: every insert is an
/// allocation on the hot path.
#[derive(Clone)]
pub(crate) struct LayerHandle {
    pub(crate) layer: Arc<LayerState>,
    pub(crate) source: Option<CredentialSource>,
}

/// The outcome of the synchronous part of authentication.
pub(crate) enum Resolution {
    Done(AuthState),
    /// The token names a key we do not have: refresh the key set, then verify again.
    NeedsKeys(KeyRetry),
    /// Only the issuer can tell: ask it.
    NeedsAuthority(Remote),
}

/// A JWT whose key the layer does not hold yet, with what the request sent beside it.
pub(crate) struct KeyRetry {
    /// The key set of the JWT's issuer.
    keys: Arc<KeyStore>,
    jwt: String,
    /// A session token sent next to the JWT in the cookies.
    token: Option<String>,
    source: CredentialSource,
}

/// What to ask the issuer about.
pub(crate) enum Remote {
    /// An opaque token, on its own.
    Opaque(String),
    /// A session token sent next to a JWT that only lapsed (in the cookies): the
    /// token is asked about, and must name the JWT's session.
    Pair { token: String, jwt: LapsedJwt },
    /// A JWT that only lapsed, on its own: confirmed with the JWT itself.
    Jwt(LapsedJwt),
}

/// A JWT that failed locally only because it lapsed (expired, too old, or issued
/// under a name only the authority vouches for; see `Verifier::verify_lapsed`),
/// with the session it names: everything else about it verified.
pub(crate) struct LapsedJwt {
    pub(crate) session: Session,
    pub(crate) jwt: String,
}

/// What to do to the client's cookies on the way out.
#[derive(Debug)]
pub(crate) enum CookieUpdate {
    Renew(RenewedTokens),
    Clear,
}

impl LayerState {
    /// Authenticates without the network when possible: a cache hit, or a
    /// signature check with a key we already hold.
    pub(crate) fn resolve(&self, credential: Result<Option<Credential<'_>>, AuthError>) -> Resolution {
        let credential = match credential {
            Ok(Some(credential)) => credential,
            Ok(None) => return Resolution::Done(AuthState::Anonymous),
            Err(error) => return Resolution::Done(AuthState::Invalid(error)),
        };
        let Some(jwt) = credential.jwt else {
            return match (credential.opaque, &self.authority) {
                (Some(token), Some(_)) => self.ask_about(token, None),
                _ => Resolution::Done(AuthState::Invalid(AuthErrorKind::OpaqueTokenUnsupported.into())),
            };
        };
        if let Some(cache) = &self.cache {
            if let Some(session) = cache.get(jwt.as_bytes(), &self.verifier.time) {
                return Resolution::Done(self.admit(&session, jwt.as_bytes()));
            }
        }
        let token = credential.opaque.filter(|_| credential.source == CredentialSource::Cookie);
        match self.verifier.verify(jwt) {
            Err(error) if error.kind() == AuthErrorKind::UnknownKey => match self.verifier.keys_for(jwt) {
                Ok(keys) if keys.is_remote() => Resolution::NeedsKeys(KeyRetry {
                    keys: Arc::clone(keys),
                    jwt: jwt.to_owned(),
                    token: token.map(str::to_owned),
                    source: credential.source,
                }),
                Ok(_) => self.judge(Err(error), jwt, token),
                // An issuer nobody configured: refused without a fetch.
                Err(error) => Resolution::Done(AuthState::Invalid(error)),
            },
            verified => self.judge(verified, jwt, token),
        }
    }

    /// What a verification of `jwt` means for the request: admitted, refused, or
    /// (with an authority) a lapsed JWT for the issuer to confirm. `token`: the
    /// session token a cookie client sent next to the JWT.
    fn judge(&self, verified: Result<Verified, AuthError>, jwt: &str, token: Option<&str>) -> Resolution {
        let error = match verified {
            Ok(verified) => {
                let session = self.remember(verified, jwt.as_bytes());
                return Resolution::Done(self.admit(&session, jwt.as_bytes()));
            }
            Err(error) => error,
        };
        let lapsed = match error.kind() {
            AuthErrorKind::Expired | AuthErrorKind::TooOld => true,
            // Only an issuer the authority vouches for can be a lapse.
            AuthErrorKind::WrongIssuer => self.verifier.issuers.has_remote(),
            _ => false,
        };
        let Some(authority) = self.authority.as_ref().filter(|_| lapsed) else {
            return Resolution::Done(AuthState::Invalid(error));
        };
        // Did it *only* lapse? A second verification, on this path only (once per
        // JWT lifetime per client for cookie clients, who get a renewed JWT; bearer
        // clients' answers are cached).
        let session = match self.verifier.verify_lapsed(jwt) {
            Ok((verified, Some(_lapse))) => verified.session,
            // Valid after all (the clock moved on, e.g. `nbf`): a second look.
            Ok((verified, None)) => {
                let session = self.remember(verified, jwt.as_bytes());
                return Resolution::Done(self.admit(&session, jwt.as_bytes()));
            }
            // Bad beyond a lapse: no issuer call, and the real reason.
            Err(error) => return Resolution::Done(AuthState::Invalid(error)),
        };
        // Known to be ended: no issuer call.
        if authority.is_credential_denied(&session, || token_hash(jwt)) {
            return Resolution::Done(AuthState::Invalid(AuthErrorKind::SessionRevoked.into()));
        }
        let lapsed = LapsedJwt { session, jwt: jwt.to_owned() };
        match token {
            // The session token renews it (and must be of the same session).
            Some(token) => self.ask_about(token, Some(lapsed)),
            None => Resolution::NeedsAuthority(Remote::Jwt(lapsed)),
        }
    }

    /// The hot path for API clients: a bearer token seen before is found in the
    /// cache from its raw header bytes, before any parsing or validation (only
    /// validated tokens are ever cached, so a hit proves these bytes were validated).
    pub(crate) fn cached_bearer(&self, headers: &http::HeaderMap) -> Option<AuthState> {
        let cache = self.cache.as_ref()?;
        let token = self.credentials.unvalidated_bearer(headers)?;
        let session = cache.get(token, &self.verifier.time)?;
        Some(self.admit(&session, token))
    }

    /// Where the request's credential is, and what the synchronous part of
    /// authentication makes of it (the bearer cache first).
    pub(crate) fn locate(&self, headers: &HeaderMap) -> (Option<CredentialSource>, Resolution) {
        match self.cached_bearer(headers) {
            Some(state) => (Some(CredentialSource::Bearer), Resolution::Done(state)),
            None => {
                let (source, credential) = self.credentials.locate(headers);
                (source, self.resolve(credential))
            }
        }
    }

    /// Finishes a [`Resolution`] on the network when it needs to: the session, and
    /// what to do to the client's cookies.
    pub(crate) async fn settle(
        &self,
        resolution: Resolution,
        source: Option<CredentialSource>,
    ) -> (AuthState, Option<CookieUpdate>) {
        let resolution = match resolution {
            Resolution::NeedsKeys(retry) => self.resolve_with_refresh(retry).await,
            other => other,
        };
        match resolution {
            Resolution::NeedsAuthority(remote) => self.resolve_with_authority(remote, source).await,
            Resolution::Done(auth) => (auth, None),
            // `resolve_with_refresh` never asks for keys twice.
            Resolution::NeedsKeys(_) => (AuthState::Invalid(AuthErrorKind::UnknownKey.into()), None),
        }
    }

    /// Sends an opaque token to the issuer, unless it fails the local shape check.
    fn ask_about(&self, token: &str, lapsed: Option<LapsedJwt>) -> Resolution {
        if (self.opaque_shape)(token) {
            let token = token.to_owned();
            Resolution::NeedsAuthority(match lapsed {
                Some(jwt) => Remote::Pair { token, jwt },
                None => Remote::Opaque(token),
            })
        } else {
            Resolution::Done(AuthState::Invalid(AuthError::with_detail(
                AuthErrorKind::Malformed,
                "not a session token of this issuer",
            )))
        }
    }

    /// A verified session, unless the issuer told us it ended: by its session id,
    /// or (a session without one) by the hash of `token`, computed only when some
    /// token was ever revoked. Nothing but an atomic load while nothing was ever
    /// revoked.
    fn admit(&self, session: &Session, token: &[u8]) -> AuthState {
        match &self.authority {
            Some(authority) if authority.is_credential_denied(session, || token_bytes_hash(token)) => {
                AuthState::Invalid(AuthErrorKind::SessionRevoked.into())
            }
            None if self.logged_out.contains(session, || token_bytes_hash(token)) => {
                AuthState::Invalid(AuthError::with_detail(AuthErrorKind::SessionRevoked, "logged out"))
            }
            _ => AuthState::Authenticated(session.clone()),
        }
    }

    /// The slow path: refresh the key set (coalesced, on a budget), verify again.
    async fn resolve_with_refresh(&self, retry: KeyRetry) -> Resolution {
        let arrived = std::time::Instant::now();
        if let Err(error) = retry.keys.refresh_for_unknown_key(arrived).await {
            // No fresh look at the key set was possible (issuer down, budget spent): we
            // cannot tell whether the token is good, so it is the server's fault (503
            // with Retry-After), never `UnknownKey`, which would tell the client to
            // throw away a token that may be good.
            tracing::debug!(%error, "key refresh for an unknown kid failed");
            return Resolution::Done(AuthState::Invalid(error));
        }
        let verified = self.verifier.verify(&retry.jwt);
        let token = retry.token.as_deref().filter(|_| retry.source == CredentialSource::Cookie);
        self.judge(verified, &retry.jwt, token)
    }

    /// The slow path for what only the issuer can tell (cached, coalesced, within
    /// the issuer-call budget, shaped by the layer's profile): an opaque token, a
    /// lapsed JWT, or a session token next to a lapsed JWT. When the issuer says a
    /// lapsed JWT's session is gone, that session is remembered as revoked, so its
    /// other credentials are refused too.
    async fn resolve_with_authority(
        &self,
        remote: Remote,
        source: Option<CredentialSource>,
    ) -> (AuthState, Option<CookieUpdate>) {
        let Some(authority) = &self.authority else {
            return (AuthState::Invalid(AuthErrorKind::OpaqueTokenUnsupported.into()), None);
        };
        let (credential, lapsed) = match &remote {
            Remote::Opaque(token) => (AuthorityCredential::Opaque(token), None),
            Remote::Pair { token, jwt } => (AuthorityCredential::Opaque(token), Some(jwt)),
            Remote::Jwt(jwt) => (AuthorityCredential::Jwt(&jwt.jwt), Some(jwt)),
        };
        let answer = authority.remote(credential, self).await;
        let from_cookie = source == Some(CredentialSource::Cookie);
        match &answer.outcome {
            // The answer must be about the lapsed JWT's session: for a pair, two
            // credentials that disagree are refused; for a JWT, an issuer answering
            // about another session is not believed. No cookies written either way.
            Ok(confirmation) if lapsed.is_some_and(|jwt| !jwt.session.is_same_session(&confirmation.session)) => {
                let detail = match remote {
                    Remote::Pair { .. } => "the session token and the session JWT belong to different sessions",
                    _ => "the issuer confirmed another session than the JWT's",
                };
                tracing::warn!(detail, "refused an issuer answer about another session");
                (AuthState::Invalid(AuthError::with_detail(AuthErrorKind::InvalidClaim, detail)), None)
            }
            Ok(confirmation) => {
                let state = self.admit(&confirmation.session, credential.token().as_bytes());
                let renewed = match (&state, &remote) {
                    (AuthState::Authenticated(_), _) if !from_cookie => None,
                    (AuthState::Authenticated(_), Remote::Jwt(_)) => {
                        // A client that holds only the JWT gets only the JWT renewed: a
                        // long-lived session token is not handed out by this layer.
                        confirmation.renewed.clone().map(|renewed| RenewedTokens { session_token: None, ..renewed })
                    }
                    (AuthState::Authenticated(_), _) => confirmation.renewed.clone(),
                    _ => None,
                };
                self.cache_renewed(confirmation, renewed.as_ref());
                (state, renewed.map(CookieUpdate::Renew))
            }
            Err(error) => {
                if error.kind() == AuthErrorKind::SessionRevoked {
                    match &remote {
                        // The answer is about the JWT itself: its session ended.
                        Remote::Jwt(jwt) => self.forget(&jwt.session, &jwt.jwt),
                        // The answer is about the session token, which need not belong
                        // to the JWT's session (a token planted next to someone's
                        // expired JWT): only the issuer's answer about the JWT itself
                        // may end its session here. One more budgeted call, only when
                        // a session ends.
                        Remote::Pair { jwt, .. } => {
                            if authority.is_gone(&jwt.jwt).await {
                                self.forget(&jwt.session, &jwt.jwt);
                            }
                        }
                        Remote::Opaque(_) => {}
                    }
                }
                let update =
                    (from_cookie && error.kind() == AuthErrorKind::SessionRevoked).then_some(CookieUpdate::Clear);
                (AuthState::Invalid(error.clone()), update)
            }
        }
    }

    /// The issuer said the session that `token` produced ended: refuse it everywhere
    /// from now on, until the session itself would have ended. Remembered by
    /// session id where the authority answers about whole sessions, else by `token`
    /// and by every cached credential that produced this very `Session`.
    fn forget(&self, session: &Session, token: &str) {
        let Some(authority) = &self.authority else { return };
        authority.deny(session);
        if authority.session_key(session).is_some() {
            if let (Some(cache), Some(id)) = (&self.cache, session.session_id()) {
                cache.evict_session(id);
            }
            return;
        }
        authority.deny_token(token_hash(token), Some(session));
        for hash in self.cache.iter().flat_map(|cache| cache.tokens_of(session)) {
            authority.deny_token(hash, Some(session));
        }
    }

    /// Ends `session`, the verified session of a request with `headers` (a logout):
    /// refused by this layer from the next request on, then revoked at the issuer.
    ///
    /// Local first, so that an issuer failure (returned, for the app to answer
    /// `503`) still leaves the session refused here (fail safe). Without an
    /// authority there is no deny list to remember a self-contained JWT in: an error,
    /// so that the app does not believe a bearer JWT dead before it expires.
    pub(crate) async fn revoke(&self, session: &Session, headers: &HeaderMap) -> Result<(), AuthError> {
        let found = self.credentials.find(headers).ok().flatten();
        let Some(credential) = found.as_ref().and_then(|found| producing_credential(session, found)) else {
            return Err(AuthError::with_detail(AuthErrorKind::MissingClaim, "no credential of this session"));
        };
        let Some(authority) = &self.authority else {
            // Nobody to tell: this layer refuses the session until it would have ended.
            self.logged_out.insert(session, credential.token(), Duration::from_secs(self.verifier.time.leeway));
            if let (Some(cache), Some(id)) = (&self.cache, session.session_id()) {
                cache.evict_session(id);
            }
            return Ok(());
        };
        self.forget(session, credential.token());
        authority.authority().revoke(session, credential).await.inspect_err(|error| {
            tracing::warn!(%error, "the issuer did not revoke the session; it is refused locally");
        })
    }

    /// Writes (renews or clears) the session cookies into response `headers`.
    pub(crate) fn write_cookies(&self, headers: &mut HeaderMap, update: &CookieUpdate) {
        match update {
            CookieUpdate::Renew(renewed) => self.cookies.set_renewed(headers, &self.credentials, renewed),
            CookieUpdate::Clear => self.cookies.clear(headers, &self.credentials),
        }
    }

    /// Writes the cookies of an earlier answer, unless the response already set
    /// them: a guard, extractor or handler that wrote the session cookies itself
    /// (cleared after a revocation, renewed from a newer confirmation, a logout)
    /// knows better.
    pub(crate) fn write_cookies_unless_set(&self, headers: &mut HeaderMap, update: &CookieUpdate) {
        if !self.sets_session_cookie(headers) {
            self.write_cookies(headers, update);
        }
    }

    /// Whether `headers` already set one of the session cookies.
    fn sets_session_cookie(&self, headers: &http::HeaderMap) -> bool {
        let names = [&self.credentials.jwt_cookie, &self.credentials.token_cookie];
        headers.get_all(http::header::SET_COOKIE).iter().any(|value| {
            let value = value.as_bytes();
            names.into_iter().flatten().any(|name| {
                value.strip_prefix(name.as_bytes()).is_some_and(|rest| rest.trim_ascii_start().starts_with(b"="))
            })
        })
    }

    fn remember(&self, verified: Verified, jwt: &[u8]) -> Session {
        self.observe(&verified);
        if let Some(cache) = &self.cache {
            cache.insert(jwt, &verified);
        }
        verified.session
    }

    /// How long a revocation must be remembered depends on how long this layer's
    /// JWTs live.
    fn observe(&self, verified: &Verified) {
        if let (Some(authority), Some(iat)) = (&self.authority, verified.times.iat) {
            authority.observe_jwt_lifetime(verified.times.exp.saturating_sub(iat));
        }
    }

    /// Caches the issuer's renewed session JWT once it is handed to a cookie
    /// client: its next request then is a cache hit.
    fn cache_renewed(&self, confirmation: &Confirmation, renewed: Option<&RenewedTokens>) {
        let (Some(cache), Some(verified)) = (&self.cache, &confirmation.renewed_verified) else { return };
        if let Some(jwt) = renewed.and_then(RenewedTokens::session_jwt) {
            cache.insert(jwt.as_bytes(), verified);
        }
    }
}

impl Shaper for LayerState {
    fn shape<'a>(
        &'a self,
        confirmation: Confirmation,
    ) -> Pin<Box<dyn Future<Output = Result<Confirmation, AuthError>> + Send + 'a>> {
        Box::pin(self.shape_answer(confirmation))
    }
}

impl LayerState {
    /// Shapes the issuer's answer with the layer's claim profile, so that a session
    /// reads the same whether it came from a token or from the issuer: the claims
    /// the authority handed over go through [`ClaimProfile::introspected`]; else a
    /// renewed session JWT is verified like any JWT (signature, issuer, audience,
    /// profile) and its session, which must be the one the issuer described,
    /// replaces the authority's reading. Keeps the kind of credential asked about.
    ///
    /// [`ClaimProfile::introspected`]: crate::ClaimProfile::introspected
    async fn shape_answer(&self, mut confirmation: Confirmation) -> Result<Confirmation, AuthError> {
        let kind = confirmation.session.token_kind();
        if let Some(claims) = confirmation.claims.take() {
            // The profile (and tenant rule) of the issuer the answer names; the
            // authority state holds the session to that issuer's audiences next.
            let Some(selected) = self.verifier.issuers.select(&claims.issuer) else {
                return Err(AuthError::with_detail(
                    AuthErrorKind::WrongIssuer,
                    "the issuer's answer names another issuer",
                ));
            };
            selected.check_tenant(|claim| claims.other.get(claim))?;
            let session = selected.rules.profile.introspected(claims)?;
            confirmation.session = session.with_token_kind(kind);
            return Ok(confirmation);
        }
        let Some(jwt) = confirmation.renewed.as_ref().and_then(RenewedTokens::session_jwt) else {
            return Ok(confirmation);
        };
        let (verified, cacheable) = self.verify_renewed(jwt).await?;
        let session = verified.session.clone();
        // The JWT's session as the profile reads it (its id, where the profile keeps
        // one) must be the one the issuer described.
        if !session.is_same_session(&confirmation.session) {
            return Err(AuthError::with_detail(
                AuthErrorKind::InvalidClaim,
                "the issuer's new session JWT names another session than its answer",
            ));
        }
        confirmation.session = session.with_token_kind(kind);
        // Only a verification that passed every rule, age included, may be cached.
        confirmation.renewed_verified = cacheable.then_some(verified);
        Ok(confirmation)
    }

    /// The session of a JWT the issuer just issued, verified by this layer's rules
    /// (once more after a key refresh when its key is new). It was confirmed a
    /// moment ago, so only its age does not count (a maximum token age of zero
    /// makes every JWT "too old"); an expired one, or one for another audience, is
    /// refused like any other.
    /// `true` with it: it passed every rule (its age too), so it may be cached.
    async fn verify_renewed(&self, jwt: &str) -> Result<(Verified, bool), AuthError> {
        let mut verified = self.verifier.verify_lapsed(jwt);
        if verified.as_ref().is_err_and(|error| error.kind() == AuthErrorKind::UnknownKey) {
            let keys = self.verifier.keys_for(jwt)?;
            if keys.is_remote() {
                keys.refresh_for_unknown_key(Instant::now()).await?;
                verified = self.verifier.verify_lapsed(jwt);
            }
        }
        match verified? {
            (verified, None) => {
                self.observe(&verified);
                Ok((verified, true))
            }
            (verified, Some(lapse)) if lapse.kind() != AuthErrorKind::Expired => Ok((verified, false)),
            (_, Some(lapse)) => Err(lapse),
        }
    }
}

/// A session the issuer confirmed for a fresh route.
pub(crate) struct Confirmed {
    /// The session as the issuer returned it (with factors added by a step-up).
    pub(crate) session: Session,
    /// Tokens to write to the cookies (only for cookie clients).
    pub(crate) renewed: Option<RenewedTokens>,
}

/// Why a session could not be confirmed.
pub(crate) enum Unconfirmed {
    /// The layer has no authority to ask: a server configuration error.
    NoAuthority,
    /// The request is refused for this reason.
    Refused(Rejection),
}

impl LayerState {
    /// The guard settings of this layer.
    pub(crate) fn guards(&self) -> &GuardConfig {
        &self.guards
    }

    /// Confirms `local` (the locally verified session of a request with `headers`,
    /// whose credential came from `source`) with the issuer, at most `window` old.
    ///
    /// What is confirmed is the credential that produced `local`; an answer about
    /// another session is refused and changes nothing; only `SessionRevoked` ends the
    /// session here (deny-listed from now on); `fail_open` applies to issuer faults
    /// only; renewed tokens are handed back only for cookie clients.
    pub(crate) async fn confirm(
        &self,
        local: Session,
        headers: &HeaderMap,
        source: Option<CredentialSource>,
        window: Duration,
        fail_open: bool,
        check: Option<&AuthorizationCheck>,
    ) -> Result<Confirmed, Unconfirmed> {
        let arrival = Instant::now();
        let Some(authority) = &self.authority else {
            return Err(Unconfirmed::NoAuthority);
        };
        let from_cookie = source == Some(CredentialSource::Cookie);
        let found = self.credentials.find(headers).ok().flatten();
        let Some(credential) = found.as_ref().and_then(|found| producing_credential(&local, found)) else {
            return Err(Unconfirmed::Refused(Rejection::Unauthenticated));
        };
        let answer = authority.confirm(&local, credential, window, arrival, check, self).await;
        match &answer.outcome {
            Ok(confirmation) if !local.is_same_session(&confirmation.session) => {
                // Not an answer about this request's session: judge nothing on it,
                // write none of its cookies, deny-list nothing.
                tracing::warn!("the issuer confirmed another session than the request's; refused");
                let error = AuthError::with_detail(AuthErrorKind::InvalidClaim, "the issuer confirmed another session");
                Err(Unconfirmed::Refused(Rejection::InvalidCredential(error)))
            }
            Ok(confirmation) => {
                let renewed = confirmation.renewed.clone().filter(|_| from_cookie);
                self.cache_renewed(confirmation, renewed.as_ref());
                Ok(Confirmed { session: confirmation.session.clone(), renewed })
            }
            Err(error) if error.kind() == AuthErrorKind::SessionRevoked => {
                // The credential asked about is the one that produced `local` (and a
                // shared answer came from a token of the same session id): the
                // session that ended is this one.
                self.forget(&local, credential.token());
                Err(Unconfirmed::Refused(Rejection::SessionEnded(error.clone())))
            }
            // The issuer refused the authorization check: the session lives on, it
            // just may not do this (no step-up can help, nothing to forget).
            Err(error) if matches!(error.kind(), AuthErrorKind::PermissionDenied | AuthErrorKind::TenancyMismatch) => {
                Err(Unconfirmed::Refused(Rejection::Forbidden(crate::rbac::refusal(error.kind(), check))))
            }
            Err(error) if error.kind().is_server_fault() => {
                // An authorization the issuer could not judge is never assumed.
                if fail_open && check.is_none() {
                    tracing::warn!(%error, "issuer unavailable; fail-open guard uses the local session");
                    return Ok(Confirmed { session: local, renewed: None });
                }
                if error.kind() == AuthErrorKind::BadServerCredentials {
                    tracing::error!(%error, "the issuer refused this server's credentials");
                }
                Err(Unconfirmed::Refused(Rejection::Unavailable(error.clone())))
            }
            // About the credential (expired, another audience, a bad claim in the
            // answer): the client's token is at fault, not the issuer; `fail_open`
            // does not apply.
            Err(error) => Err(Unconfirmed::Refused(Rejection::InvalidCredential(error.clone()))),
        }
    }

    /// Renders a refusal with the configured challenge, attaches the reason, and
    /// clears the session cookies (of cookie clients) when the issuer ended the
    /// session.
    pub(crate) fn refuse(
        &self,
        rejection: Rejection,
        extensions: &Extensions,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Response<Bytes> {
        let config = &self.guards;
        let source = extensions.get::<LayerHandle>().and_then(|h| h.source);
        // Inside `Router::nest` the URI lost its prefix; come back to the full path.
        #[cfg(feature = "axum")]
        let uri = extensions.get::<axum::extract::OriginalUri>().map_or(uri, |original| &original.0);
        let return_to =
            uri.path_and_query().map(http::uri::PathAndQuery::as_str).and_then(safe_return_to).unwrap_or("/");
        let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok());
        let context = ChallengeContext::new(&config.realm, return_to)
            .with_source(source)
            .with_accept(accept)
            .with_login_url(config.login_url.as_deref())
            .with_step_up_url(config.step_up_url.as_deref())
            .with_resource_metadata(self.resource_metadata.as_ref().map(ResourceMetadata::url))
            .with_diagnostics(config.diagnostics());
        let mut response = config.challenge.respond(&rejection, &context);
        tracing::debug!(?rejection, "guard refused the request");
        if config.diagnostics() {
            // Development only (GuardConfig::with_diagnostics): the exact reason.
            for reason in rejection.diagnostics() {
                tracing::info!(diagnostic = %reason, "tower-stepup refused the request");
            }
        }
        match &rejection {
            Rejection::SessionEnded(error) => {
                if source == Some(CredentialSource::Cookie) {
                    self.write_cookies(response.headers_mut(), &CookieUpdate::Clear);
                }
                response.extensions_mut().insert(error.clone());
            }
            Rejection::InvalidCredential(error) | Rejection::Unavailable(error) => {
                response.extensions_mut().insert(error.clone());
            }
            _ => {}
        }
        response.extensions_mut().insert(rejection);
        response
    }
}

/// The credential that produced `local`: the JWT when the session was verified
/// from one, else the opaque token the issuer answered about. A cookie pair can
/// hold a JWT and a session token of different sessions; confirming the other
/// one would judge (and renew, or deny-list) a session this request is not.
fn producing_credential<'a>(local: &Session, found: &Credential<'a>) -> Option<AuthorityCredential<'a>> {
    match local.token_kind() {
        TokenKind::Jwt => found.jwt.map(AuthorityCredential::Jwt),
        TokenKind::Opaque => found.opaque.map(AuthorityCredential::Opaque),
    }
}

/// The `500` for a guard or extractor with no [`SessionLayer`](crate::SessionLayer)
/// in front of it.
pub(crate) fn missing_layer() -> Response<Bytes> {
    tracing::error!("a tower-stepup guard ran without a SessionLayer in front of it");
    let mut response = Response::new(Bytes::from_static(
        b"tower-stepup: this route has a guard but no SessionLayer runs before it; add `.layer(session_layer)` to the Router",
    ));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.extensions_mut().insert(AuthError::new(AuthErrorKind::MissingLayer));
    response
}

/// Step-up completion and "sign out other devices": the layer learns a session
/// the app changed at the issuer, lists the user's sessions, and ends some of them.
impl LayerState {
    /// Learns `current`'s session after a step-up the app completed at the issuer:
    /// verifies the new tokens as belonging to that very session and caches the
    /// new JWT, so the next request with it is a cache hit. Returns the new session
    /// and the tokens that passed (only those may be written to cookies).
    ///
    /// The JWT is verified locally (a key set refresh for a new `kid`); the session
    /// token, which cannot be, is asked about at the authority (one budgeted call),
    /// and left out without an authority. Anything that does not verify, or names
    /// another user or session, is an error and nothing is learnt.
    pub(crate) async fn learn_step_up(
        &self,
        current: &Session,
        tokens: &RenewedTokens,
    ) -> Result<(Session, RenewedTokens), AuthError> {
        self.learn_tokens(Some(current), tokens).await
    }

    /// Learns a session the app just started at the issuer (a sign-in): as
    /// [`learn_step_up`](Self::learn_step_up) with no session to compare with, but
    /// the JWT and the session token must still be one session.
    pub(crate) async fn learn_sign_in(&self, tokens: &RenewedTokens) -> Result<(Session, RenewedTokens), AuthError> {
        self.learn_tokens(None, tokens).await
    }

    /// Verifies `tokens` (of `current`'s session when there is one) and caches them.
    async fn learn_tokens(
        &self,
        current: Option<&Session>,
        tokens: &RenewedTokens,
    ) -> Result<(Session, RenewedTokens), AuthError> {
        let mut learnt: Option<Session> = None;
        let mut accepted = RenewedTokens { expires_at: tokens.expires_at, ..RenewedTokens::default() };
        if let Some(jwt) = tokens.session_jwt() {
            let verified = self.verify_new_jwt(jwt).await?;
            if let Some(current) = current {
                same_session(current, &verified.session)?;
            }
            if let AuthState::Invalid(error) = self.admit(&verified.session, jwt.as_bytes()) {
                return Err(error);
            }
            learnt = Some(self.remember(verified, jwt.as_bytes()));
            accepted.session_jwt = tokens.session_jwt.clone();
        }
        if let (Some(token), Some(authority)) = (tokens.session_token(), &self.authority) {
            // An answer cached before the step-up would describe the old session.
            if let Some(known) = current.or(learnt.as_ref()) {
                authority.forget_answers(known, Some(token)).await;
            }
            let answer = authority.remote(AuthorityCredential::Opaque(token), self).await;
            let confirmed = match &answer.outcome {
                Ok(confirmation) => &confirmation.session,
                Err(error) => return Err(error.clone()),
            };
            if let Some(current) = current {
                same_session(current, confirmed)?;
            }
            if let Some(jwt_session) = &learnt {
                same_session(jwt_session, confirmed)?;
            }
            learnt.get_or_insert_with(|| confirmed.clone());
            accepted.session_token = tokens.session_token.clone();
        } else if tokens.session_token().is_some() {
            tracing::debug!("no authority to check the new session token: not written");
        }
        let Some(session) = learnt else {
            return Err(AuthError::with_detail(
                AuthErrorKind::MissingClaim,
                "no token to start or step up a session with",
            ));
        };
        if let Some(authority) = &self.authority {
            // Fresh routes judged the session before the step-up: ask again.
            authority.forget_answers(&session, None).await;
        }
        if accepted.expires_at.is_none() {
            accepted.expires_at = session.session_expires_at();
        }
        Ok((session, accepted))
    }

    /// Verifies a JWT the app received from the issuer, fetching the key set once
    /// when it names a key this layer does not hold yet.
    async fn verify_new_jwt(&self, jwt: &str) -> Result<Verified, AuthError> {
        if jwt.len() > self.credentials.max_token_len {
            return Err(AuthErrorKind::TokenTooLarge.into());
        }
        match self.verifier.verify(jwt) {
            Err(error) if error.kind() == AuthErrorKind::UnknownKey => {
                let keys = self.verifier.keys_for(jwt)?;
                if !keys.is_remote() {
                    return Err(error);
                }
                keys.refresh_for_unknown_key(Instant::now()).await?;
                self.verifier.verify(jwt)
            }
            other => other,
        }
    }

    /// The authority that can list and end a user's sessions by id: one that
    /// answers about whole sessions, so that a session ended by id is refused here
    /// whichever of its tokens comes next.
    fn session_manager(&self, current: &Session) -> Result<&AuthorityState, AuthError> {
        let Some(authority) = self.authority.as_ref().filter(|a| a.session_key(current).is_some()) else {
            return Err(AuthError::with_detail(
                AuthErrorKind::Unsupported,
                "listing sessions needs an authority that answers about whole sessions, and a session id",
            ));
        };
        Ok(authority)
    }

    /// The live sessions of `current`'s user, as the issuer lists them, less those
    /// this layer knows ended. A list naming another user (or organization) is
    /// refused whole.
    pub(crate) async fn sessions_of(&self, current: &Session) -> Result<Vec<Session>, AuthError> {
        let authority = self.session_manager(current)?;
        let listed = authority.authority().sessions(current).await?;
        let org = |s: &Session| s.organization().map(|o| o.id.clone());
        if let Some(stranger) = listed.iter().find(|s| s.subject() != current.subject() || org(s) != org(current)) {
            tracing::warn!(session_id = stranger.session_id(), "the issuer listed another user's session; refused");
            return Err(AuthError::with_detail(AuthErrorKind::AuthorityResponse, "a session of another user"));
        }
        Ok(listed.into_iter().filter(|s| s.session_id().is_some() && !authority.is_denied(s)).collect())
    }

    /// Ends the session `id` of `current`'s user. Only an id found in the user's own
    /// list is ended: another user's session id is [`UnknownSession`](AuthErrorKind::UnknownSession).
    pub(crate) async fn revoke_session_of(&self, current: &Session, id: &str) -> Result<(), AuthError> {
        let listed = self.sessions_of(current).await?;
        let Some(target) = listed.iter().find(|s| s.session_id() == Some(id)) else {
            return Err(AuthError::new(AuthErrorKind::UnknownSession));
        };
        self.end_listed(current, target).await
    }

    /// Ends every session of `current`'s user but `current`; how many there were.
    /// Every one is refused here at once; the first issuer failure is returned
    /// after all were tried.
    pub(crate) async fn revoke_other_sessions_of(&self, current: &Session) -> Result<usize, AuthError> {
        let listed = self.sessions_of(current).await?;
        let others: Vec<&Session> = listed.iter().filter(|s| s.session_id() != current.session_id()).collect();
        let mut first_error = None;
        for session in &others {
            if let Err(error) = self.end_listed(current, session).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(others.len()), Err)
    }

    /// Refuses `target` here from the next request on (local first: fail safe),
    /// then ends it at the issuer by id.
    async fn end_listed(&self, current: &Session, target: &Session) -> Result<(), AuthError> {
        let authority = self.session_manager(current)?;
        authority.deny(target);
        if let (Some(cache), Some(id)) = (&self.cache, target.session_id()) {
            cache.evict_session(id);
        }
        match authority.authority().revoke_by_id(target).await {
            Err(error) if error.kind() == AuthErrorKind::SessionRevoked => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "the issuer did not revoke the session; it is refused locally");
                Err(error)
            }
            Ok(()) => Ok(()),
        }
    }
}

/// Refuses a session that is not `current`'s: another user, or another session of
/// the same user.
fn same_session(current: &Session, other: &Session) -> Result<(), AuthError> {
    if current.is_same_session(other) && current.session_id() == other.session_id() {
        Ok(())
    } else {
        Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, "the new tokens belong to another session"))
    }
}
