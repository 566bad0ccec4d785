//! [`SessionService`]: authenticates each request, then calls the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower_service::Service;

use crate::cache::{token_hash, SessionCache};
use crate::credential::{Credential, CredentialConfig, CredentialSource};
use crate::error::{AuthError, AuthErrorKind};
use crate::future::ResponseFuture;
use crate::jwks::KeyStore;
use crate::session::AuthState;
use crate::verify::{Verified, Verifier};

/// The state shared by a layer, its services and the guards behind it.
pub(crate) struct LayerState {
    pub(crate) credentials: CredentialConfig,
    pub(crate) verifier: Verifier,
    pub(crate) keys: Arc<KeyStore>,
    pub(crate) cache: Option<SessionCache>,
    pub(crate) realm: String,
    pub(crate) guards: crate::guard::GuardConfig,
}

/// Lets guards and extractors reach the layer that authenticated the request.
#[derive(Clone)]
pub(crate) struct LayerHandle(pub(crate) Arc<LayerState>);

/// What the credential of a request is, as far as the request needs to know later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RequestCredential {
    pub(crate) source: Option<CredentialSource>,
}

/// The outcome of the synchronous part of authentication.
pub(crate) enum Resolution {
    Done(AuthState),
    /// The token names a key we do not have: refresh the key set, then verify again.
    NeedsKeys(String),
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
            return Resolution::Done(AuthState::Invalid(AuthErrorKind::OpaqueTokenUnsupported.into()));
        };
        let hash = token_hash(jwt);
        if let Some(cache) = &self.cache {
            if let Some(verified) = cache.get(&hash, &self.verifier.time) {
                return Resolution::Done(AuthState::Authenticated(verified.session.clone()));
            }
        }
        match self.verifier.verify(jwt, &self.keys.snapshot()) {
            Ok(verified) => Resolution::Done(AuthState::Authenticated(self.remember(hash, verified, jwt.len()))),
            Err(error) if error.kind() == AuthErrorKind::UnknownKey && self.keys.is_remote() => {
                Resolution::NeedsKeys(jwt.to_owned())
            }
            Err(error) => Resolution::Done(AuthState::Invalid(error)),
        }
    }

    /// The slow path: refresh the key set (coalesced, rate limited), verify again.
    pub(crate) async fn resolve_with_refresh(&self, jwt: &str) -> AuthState {
        if let Err(error) = self.keys.refresh_for_unknown_key().await {
            // A token we cannot check because the issuer is down is the issuer's
            // problem, not a bad token: say so.
            let kind = if self.keys.snapshot().len() == 0 { error.kind() } else { AuthErrorKind::UnknownKey };
            tracing::debug!(%error, "key refresh for an unknown kid failed");
            return AuthState::Invalid(AuthError::new(kind));
        }
        match self.verifier.verify(jwt, &self.keys.snapshot()) {
            Ok(verified) => AuthState::Authenticated(self.remember(token_hash(jwt), verified, jwt.len())),
            Err(error) => AuthState::Invalid(error),
        }
    }

    fn remember(&self, hash: crate::cache::TokenHash, verified: Verified, token_len: usize) -> crate::session::Session {
        let session = verified.session.clone();
        if let Some(cache) = &self.cache {
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

impl<S, B> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let credential = self.state.credentials.find(request.headers());
        let source = credential.as_ref().ok().and_then(|c| c.map(|c| c.source));
        let resolution = self.state.resolve(credential);
        let extensions = request.extensions_mut();
        extensions.insert(LayerHandle(self.state.clone()));
        extensions.insert(RequestCredential { source });
        match resolution {
            Resolution::Done(state) => {
                extensions.insert(state);
                ResponseFuture::ready(self.inner.call(request))
            }
            Resolution::NeedsKeys(jwt) => {
                // The inner service was made ready by `poll_ready`: take that one into
                // the future and leave a clone behind (tower's documented pattern).
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let state = self.state.clone();
                ResponseFuture::resolving(Box::pin(async move {
                    let auth = state.resolve_with_refresh(&jwt).await;
                    request.extensions_mut().insert(auth);
                    inner.call(request).await
                }))
            }
        }
    }
}
