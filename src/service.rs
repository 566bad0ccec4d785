//! [`SessionService`]: authenticates each request, then calls the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::authority::state::AuthorityState;
use crate::authority::RenewedTokens;
use crate::cache::{token_bytes_hash, token_hash, SessionCache, TokenHash};
use crate::cookies::CookieAttributes;
use crate::credential::{Credential, CredentialConfig, CredentialSource};
use crate::error::{AuthError, AuthErrorKind};
use crate::future::ResponseFuture;
use crate::jwks::KeyStore;
use crate::session::{AuthState, Session};
use crate::verify::{Verified, Verifier};

/// The state shared by a layer, its services and the guards behind it.
pub(crate) struct LayerState {
    pub(crate) credentials: CredentialConfig,
    pub(crate) verifier: Verifier,
    pub(crate) keys: Arc<KeyStore>,
    pub(crate) cache: Option<SessionCache>,
    pub(crate) realm: String,
    pub(crate) guards: crate::guard::GuardConfig,
    pub(crate) authority: Option<AuthorityState>,
    /// Local check of opaque tokens before they may become issuer calls.
    pub(crate) opaque_shape: fn(&str) -> bool,
    pub(crate) cookies: CookieAttributes,
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
    NeedsKeys(String),
    /// An opaque token (or an expired Stytch JWT with its session token): ask the
    /// issuer.
    NeedsAuthority {
        token: String,
        expired: Option<ExpiredJwt>,
    },
}

/// An expired JWT sent next to the session token that renews it, with the session
/// it names (signature, issuer and audience verified; only `exp` failed).
pub(crate) struct ExpiredJwt {
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
        // Hashed only when there is a cache to look in (a kilobyte of SHA-256 per request).
        let hash = self.cache.as_ref().map(|_| token_hash(jwt));
        if let (Some(cache), Some(hash)) = (&self.cache, &hash) {
            if let Some(verified) = cache.get(hash, &self.verifier.time) {
                return Resolution::Done(self.admit(&verified.session, Some(hash), jwt.as_bytes()));
            }
        }
        match self.verifier.verify(jwt, &self.keys.snapshot()) {
            Ok(verified) => {
                let session = self.remember(hash, verified, jwt.len());
                Resolution::Done(self.admit(&session, hash.as_ref(), jwt.as_bytes()))
            }
            Err(error) if error.kind() == AuthErrorKind::UnknownKey && self.keys.is_remote() => {
                Resolution::NeedsKeys(jwt.to_owned())
            }
            // An expired session JWT next to its session token: the session may well
            // be alive; the issuer renews the JWT.
            Err(error) if error.kind() == AuthErrorKind::Expired && self.authority.is_some() => {
                match credential.opaque {
                    Some(token) if credential.source == CredentialSource::Cookie => {
                        // Which session the expired JWT names (signature, issuer and
                        // audience checked): a second verification, but only on this
                        // path, once per JWT lifetime per client.
                        let expired = self
                            .verifier
                            .verify_expired(jwt, &self.keys.snapshot())
                            .ok()
                            .map(|v| ExpiredJwt { session: v.session, jwt: jwt.to_owned() });
                        match (&expired, &self.authority) {
                            // Known revoked: no issuer call.
                            (Some(expired), Some(authority)) if authority.is_denied(&expired.session) => {
                                Resolution::Done(AuthState::Invalid(AuthErrorKind::SessionRevoked.into()))
                            }
                            _ => self.ask_about(token, expired),
                        }
                    }
                    _ => Resolution::Done(AuthState::Invalid(error)),
                }
            }
            Err(error) => Resolution::Done(AuthState::Invalid(error)),
        }
    }

    /// The hot path for API clients: a bearer token seen before is found in the
    /// cache from its raw header bytes, before any parsing or validation (only
    /// validated tokens are ever cached, so a hit proves these bytes were validated).
    pub(crate) fn cached_bearer(&self, headers: &http::HeaderMap) -> Option<AuthState> {
        let cache = self.cache.as_ref()?;
        let token = self.credentials.unvalidated_bearer(headers)?;
        let hash = token_bytes_hash(token);
        let verified = cache.get(&hash, &self.verifier.time)?;
        Some(self.admit(&verified.session, Some(&hash), token))
    }

    /// Sends an opaque token to the issuer, unless it fails the local shape check.
    fn ask_about(&self, token: &str, expired: Option<ExpiredJwt>) -> Resolution {
        if (self.opaque_shape)(token) {
            Resolution::NeedsAuthority { token: token.to_owned(), expired }
        } else {
            Resolution::Done(AuthState::Invalid(AuthError::with_detail(
                AuthErrorKind::Malformed,
                "not a session token of this issuer",
            )))
        }
    }

    /// A verified session, unless the issuer told us it ended: by its session id,
    /// or (a session without one) by the hash of `token`, reused when the caller
    /// already has it. Nothing but an atomic load while nothing was ever revoked.
    fn admit(&self, session: &Session, hash: Option<&TokenHash>, token: &[u8]) -> AuthState {
        match &self.authority {
            Some(authority)
                if authority
                    .is_credential_denied(session, || hash.copied().unwrap_or_else(|| token_bytes_hash(token))) =>
            {
                AuthState::Invalid(AuthErrorKind::SessionRevoked.into())
            }
            _ => AuthState::Authenticated(session.clone()),
        }
    }

    /// The slow path: refresh the key set (coalesced, on a budget), verify again.
    pub(crate) async fn resolve_with_refresh(&self, jwt: &str) -> AuthState {
        let arrived = std::time::Instant::now();
        if let Err(error) = self.keys.refresh_for_unknown_key(arrived).await {
            // No fresh look at the key set was possible (issuer down, budget spent): we
            // cannot tell whether the token is good, so it is the server's fault (503
            // with Retry-After), never `UnknownKey`, which would tell the client to
            // throw away a token that may be good.
            tracing::debug!(%error, "key refresh for an unknown kid failed");
            return AuthState::Invalid(error);
        }
        match self.verifier.verify(jwt, &self.keys.snapshot()) {
            Ok(verified) => {
                let hash = self.cache.as_ref().map(|_| token_hash(jwt));
                let session = self.remember(hash, verified, jwt.len());
                self.admit(&session, hash.as_ref(), jwt.as_bytes())
            }
            Err(error) => AuthState::Invalid(error),
        }
    }

    /// The slow path for opaque tokens: ask the issuer (cached, coalesced, within
    /// the issuer-call budget). `expired`: an expired JWT sent next to `token`
    /// (renewal); when the issuer says its session is gone, that session is
    /// remembered as revoked, so its other JWTs are refused too.
    pub(crate) async fn resolve_with_authority(
        &self,
        token: &str,
        expired: Option<&ExpiredJwt>,
        source: Option<CredentialSource>,
    ) -> (AuthState, Option<CookieUpdate>) {
        let Some(authority) = &self.authority else {
            return (AuthState::Invalid(AuthErrorKind::OpaqueTokenUnsupported.into()), None);
        };
        let answer = authority.opaque(token).await;
        let from_cookie = source == Some(CredentialSource::Cookie);
        match &answer.outcome {
            // The session token and the expired JWT beside it must be one session:
            // two credentials that disagree are refused, with no cookies written.
            Ok(confirmation) if expired.is_some_and(|jwt| !jwt.session.is_same_session(&confirmation.session)) => {
                let error = AuthError::with_detail(
                    AuthErrorKind::InvalidClaim,
                    "the session token and the session JWT belong to different sessions",
                );
                (AuthState::Invalid(error), None)
            }
            Ok(confirmation) => {
                let state = self.admit(&confirmation.session, None, token.as_bytes());
                let update = match &state {
                    AuthState::Authenticated(_) => {
                        confirmation.renewed.clone().filter(|_| from_cookie).map(CookieUpdate::Renew)
                    }
                    _ => None,
                };
                (state, update)
            }
            Err(error) => {
                if let (AuthErrorKind::SessionRevoked, Some(expired)) = (error.kind(), expired) {
                    // The answer is about the session token, which need not belong to
                    // the JWT's session (a token planted next to someone's expired
                    // JWT): only the issuer's answer about the JWT itself may end its
                    // session here. One more budgeted call, only when a session ends.
                    if authority.is_gone(&expired.jwt).await {
                        self.forget(&expired.session, &expired.jwt);
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
    pub(crate) fn forget(&self, session: &Session, token: &str) {
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

    pub(crate) fn apply_cookies(&self, headers: &mut http::HeaderMap, update: &CookieUpdate) {
        match update {
            CookieUpdate::Renew(renewed) => self.cookies.set_renewed(headers, &self.credentials, renewed),
            CookieUpdate::Clear => self.cookies.clear(headers, &self.credentials),
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

    fn remember(&self, hash: Option<TokenHash>, verified: Verified, token_len: usize) -> Session {
        let session = verified.session.clone();
        if let (Some(authority), Some(iat)) = (&self.authority, verified.times.iat) {
            // How long a revocation must be remembered depends on how long this
            // layer's JWTs live.
            authority.observe_jwt_lifetime(verified.times.exp.saturating_sub(iat));
        }
        if let (Some(cache), Some(hash)) = (&self.cache, hash) {
            cache.insert(hash, Arc::new(verified), token_len);
        }
        session
    }
}

/// The [`Service`] made by [`SessionLayer`](crate::SessionLayer).
///
/// Generic over any `http::Request<B>` service, so it works in plain tower stacks
/// as well as in axum.
pub struct SessionService<S> {
    inner: S,
    state: Arc<LayerState>,
}

impl<S: Clone> Clone for SessionService<S> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), state: self.state.clone() }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, state: Arc<LayerState>) -> Self {
        Self { inner, state }
    }
}

impl<S, B, ResBody> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let (source, resolution) = match self.state.cached_bearer(request.headers()) {
            Some(state) => (Some(CredentialSource::Bearer), Resolution::Done(state)),
            None => {
                let (source, credential) = self.state.credentials.locate(request.headers());
                (source, self.state.resolve(credential))
            }
        };
        let extensions = request.extensions_mut();
        extensions.insert(LayerHandle { layer: self.state.clone(), source });
        if let Resolution::Done(state) = resolution {
            extensions.insert(state);
            return ResponseFuture::ready(self.inner.call(request));
        }
        // The inner service was made ready by `poll_ready`: take that one into the
        // future and leave a clone behind (tower's documented pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        ResponseFuture::resolving(Box::pin(async move {
            let (auth, update) = match resolution {
                Resolution::NeedsKeys(jwt) => (state.resolve_with_refresh(&jwt).await, None),
                Resolution::NeedsAuthority { token, expired } => {
                    state.resolve_with_authority(&token, expired.as_ref(), source).await
                }
                Resolution::Done(auth) => (auth, None),
            };
            request.extensions_mut().insert(auth);
            let mut response = inner.call(request).await?;
            // A guard, extractor or handler that wrote the session cookies itself
            // (cleared after a revocation, renewed from a newer confirmation, a
            // logout) knows better than this earlier answer: keep theirs.
            if let Some(update) = update.filter(|_| !state.sets_session_cookie(response.headers())) {
                state.apply_cookies(response.headers_mut(), &update);
            }
            Ok(response)
        }))
    }
}
