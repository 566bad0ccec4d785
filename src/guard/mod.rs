//! Route guards: what a route requires of a session, checked per request.
//!
//! Put a [`Guard`] on a route with `route_layer` (so unknown paths stay `404`
//! instead of `401`), or on a group of routes, or take [`Require<R>`] as a handler
//! argument. Both use the same [`Requirement`] evaluation and the same challenges.
//!
//! **Which to choose.** A `Guard` keeps the rule next to the routing table, guards
//! a whole nested router at once, and works for any tower service. `Require<R>`
//! keeps the rule next to the handler's code and hands it the session in one
//! argument, but needs a named type per requirement (see [`requirement!`](crate::requirement)).

mod config;
#[cfg(feature = "axum")]
mod extract;
mod policy;
mod requirement;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use config::GuardConfig;
#[cfg(feature = "axum")]
pub use extract::{Require, RequirementSpec};
pub use policy::RbacPolicy;
pub use requirement::{FactorRequirement, Forbidden, Requirement, Shortfall, StepUpRequired};

use crate::authority::AuthorityCredential;
use crate::challenge::{safe_return_to, ChallengeContext, Rejection};
use crate::credential::{Credential, CredentialSource};
use crate::error::{AuthError, AuthErrorKind};
use crate::service::{CookieUpdate, LayerHandle, LayerState};
use crate::session::{AuthState, Session, TokenKind};

/// A tower [`Layer`] that lets a request through only when its session meets a
/// [`Requirement`]; otherwise it answers with a challenge (see
/// [`DefaultChallenge`](crate::DefaultChallenge)).
///
/// Needs a [`SessionLayer`](crate::SessionLayer) in front of it (a `500` names the
/// missing layer otherwise).
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use tower_stepup::{FactorKind, Guard, Requirement};
///
/// let five_minutes = Duration::from_secs(300);
/// let app: Router = Router::new()
///     .route("/me", get(|| async { "me" }).route_layer(Guard::authenticated()))
///     .route(
///         "/transfer",
///         get(|| async { "sent" }).route_layer(Guard::new(Requirement::any([
///             Requirement::factor(FactorKind::WEBAUTHN).within(five_minutes),
///             Requirement::factor(FactorKind::TOTP).within(five_minutes),
///         ]))),
///     );
/// // .layer(session_layer) goes on the outer router.
/// ```
#[derive(Clone, Debug)]
pub struct Guard {
    requirement: Arc<Requirement>,
    freshness: Option<Duration>,
    fail_open: bool,
}

impl Guard {
    /// A guard for `requirement`.
    pub fn new(requirement: impl Into<Requirement>) -> Self {
        Self { requirement: Arc::new(requirement.into()), freshness: None, fail_open: false }
    }
    /// Confirms the session with the issuer on every request before letting it
    /// through, so a session revoked at the issuer is refused at once. Concurrent
    /// requests with one token share one call (with one session, where the
    /// authority [confirms whole sessions](crate::Authority::confirms_whole_session),
    /// as Stytch does). Needs an authority on the layer
    /// ([`SessionLayerBuilder::with_authority`](crate::SessionLayerBuilder::with_authority)).
    ///
    /// What is confirmed is the credential that produced the locally verified
    /// session (the JWT, or the opaque token). The requirement is then judged on the
    /// session as the issuer returns it (with factors added by a step-up), and
    /// renewed tokens are written to the cookies. An answer about any other session
    /// is refused (`401`), as are errors about the credential (expired, another
    /// audience); only issuer faults are `503`.
    #[must_use]
    pub fn fresh(self) -> Self {
        self.fresh_within(Duration::ZERO)
    }
    /// Like [`fresh`](Self::fresh), but a confirmation at most `window` old is
    /// enough: one issuer call per token (per session, where the authority
    /// confirms whole sessions) per window, however many requests.
    #[must_use]
    pub fn fresh_within(mut self, window: Duration) -> Self {
        self.freshness = Some(window);
        self
    }
    /// When the issuer cannot be reached, judge the locally verified session instead
    /// of answering `503`. A session the issuer *says* is gone is still refused.
    ///
    /// # ⚠️ Warning
    /// Only for routes where serving a possibly revoked session during an issuer
    /// outage is acceptable. Sensitive routes should fail closed (the default).
    #[must_use]
    pub fn fail_open(mut self) -> Self {
        self.fail_open = true;
        self
    }
    /// A guard that requires any valid session.
    pub fn authenticated() -> Self {
        Self::new(Requirement::authenticated())
    }
    /// The requirement.
    pub fn requirement(&self) -> &Requirement {
        &self.requirement
    }
}

impl<S> Layer<S> for Guard {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService { inner, guard: self.clone() }
    }
}

/// The [`Service`] made by [`Guard`].
#[derive(Clone, Debug)]
pub struct GuardService<S> {
    inner: S,
    guard: Guard,
}

impl<S, B, ResBody> Service<Request<B>> for GuardService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let local = check(&self.guard.requirement, request.extensions(), request.headers(), request.uri());
        let Some(window) = self.guard.freshness else {
            return match local {
                Ok(_) => GuardFuture::allowed(self.inner.call(request)),
                Err(response) => GuardFuture::refused(response.map(ResBody::from)),
            };
        };
        // Fresh routes: anything refused locally (no session, bad token) is refused
        // without asking the issuer. A session that falls short locally is still
        // confirmed: the issuer may know of a step-up the token does not show yet.
        let session = match (local, request.extensions().get::<AuthState>()) {
            (Ok(session), _) => session,
            (Err(_), Some(AuthState::Authenticated(session))) => session.clone(),
            (Err(response), _) => return GuardFuture::refused(response.map(ResBody::from)),
        };
        let Some(LayerHandle { layer, .. }) = request.extensions().get::<LayerHandle>().cloned() else {
            return GuardFuture::refused(missing_layer().map(ResBody::from));
        };
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        GuardFuture::confirming(Box::pin(confirm_then_call(layer, guard, window, session, request, inner)))
    }
}

/// The fresh-route path: confirm with the issuer, judge the confirmed session, call
/// the route, write renewed cookies.
async fn confirm_then_call<S, B, ResBody>(
    layer: Arc<LayerState>,
    guard: Guard,
    window: Duration,
    local_session: Session,
    mut request: Request<B>,
    mut inner: S,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    let arrival = Instant::now();
    let Some(authority) = &layer.authority else {
        return Ok(no_authority().map(ResBody::from));
    };
    let from_cookie =
        request.extensions().get::<LayerHandle>().and_then(|h| h.source) == Some(CredentialSource::Cookie);
    let found = layer.credentials.find(request.headers()).ok().flatten();
    let Some(credential) = found.as_ref().and_then(|found| producing_credential(&local_session, found)) else {
        return Ok(refuse(&layer, Rejection::Unauthenticated, &request).map(ResBody::from));
    };
    let answer = authority.confirm(&local_session, credential, window, arrival).await;
    let (session, renewed) = match &answer.outcome {
        Ok(confirmation) if !local_session.is_same_session(&confirmation.session) => {
            // Not an answer about this request's session: judge nothing on it, write
            // none of its cookies, deny-list nothing.
            tracing::warn!("the issuer confirmed another session than the request's; refused");
            let error = AuthError::with_detail(AuthErrorKind::InvalidClaim, "the issuer confirmed another session");
            return Ok(refuse(&layer, Rejection::InvalidCredential(error), &request).map(ResBody::from));
        }
        Ok(confirmation) => (confirmation.session.clone(), confirmation.renewed.as_ref().filter(|_| from_cookie)),
        Err(error) if error.kind() == AuthErrorKind::SessionRevoked => {
            // The credential asked about is the one that produced `local_session`
            // (and a shared answer came from a token of the same session id): the
            // session that ended is this one.
            layer.forget(&local_session, credential.token());
            return Ok(refuse(&layer, Rejection::SessionEnded(error.clone()), &request).map(ResBody::from));
        }
        Err(error) if error.kind().is_server_fault() => {
            if guard.fail_open {
                tracing::warn!(%error, "issuer unavailable; fail-open guard uses the local session");
                (local_session, None)
            } else {
                if error.kind() == AuthErrorKind::BadServerCredentials {
                    tracing::error!(%error, "the issuer refused this server's credentials");
                }
                return Ok(refuse(&layer, Rejection::Unavailable(error.clone()), &request).map(ResBody::from));
            }
        }
        // About the credential (expired, another audience, a bad claim in the answer):
        // the client's token is at fault, not the issuer; `fail_open` does not apply.
        Err(error) => {
            return Ok(refuse(&layer, Rejection::InvalidCredential(error.clone()), &request).map(ResBody::from));
        }
    };
    let mut response = match judge(&guard.requirement, &layer.guards, &session) {
        None => {
            request.extensions_mut().insert(AuthState::Authenticated(session));
            inner.call(request).await?
        }
        Some(rejection) => refuse(&layer, rejection, &request).map(ResBody::from),
    };
    if let Some(renewed) = renewed {
        layer.apply_cookies(response.headers_mut(), &CookieUpdate::Renew(renewed.clone()));
    }
    Ok(response)
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

pin_project! {
    /// Response future of [`GuardService`]: the route's own future when the session
    /// passed locally, a ready refusal, or (fresh routes only) a boxed confirmation
    /// with the issuer.
    pub struct GuardFuture<F, ResBody, E> {
        #[pin]
        kind: GuardKind<F, ResBody, E>,
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pin_project! {
    #[project = GuardKindProj]
    enum GuardKind<F, ResBody, E> {
        Allowed { #[pin] future: F },
        Refused { response: Option<Response<ResBody>> },
        Confirming { future: BoxFuture<Result<Response<ResBody>, E>> },
    }
}

impl<F, ResBody, E> GuardFuture<F, ResBody, E> {
    fn allowed(future: F) -> Self {
        Self { kind: GuardKind::Allowed { future } }
    }
    fn refused(response: Response<ResBody>) -> Self {
        Self { kind: GuardKind::Refused { response: Some(response) } }
    }
    fn confirming(future: BoxFuture<Result<Response<ResBody>, E>>) -> Self {
        Self { kind: GuardKind::Confirming { future } }
    }
}

impl<F, ResBody, E> Future for GuardFuture<F, ResBody, E>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            GuardKindProj::Allowed { future } => future.poll(cx),
            GuardKindProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled after completion: a contract violation by the caller.
                None => Poll::Pending,
            },
            GuardKindProj::Confirming { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, ResBody, E> std::fmt::Debug for GuardFuture<F, ResBody, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardFuture").finish_non_exhaustive()
    }
}

/// The rejection for a session that falls short of `requirement`, if it does.
fn judge(requirement: &Requirement, config: &GuardConfig, session: &Session) -> Option<Rejection> {
    let now = SystemTime::now();
    if requirement.is_met(session, config, now) {
        return None;
    }
    let shortfall = requirement.shortfall(session, config, now)?;
    match (shortfall.forbidden, shortfall.step_up) {
        (Some(forbidden), _) => Some(Rejection::Forbidden(forbidden)),
        (None, Some(step_up)) => Some(Rejection::StepUp(step_up)),
        // Unmet, yet nothing to ask for (e.g. an empty `any`): fail closed.
        (None, None) => Some(Rejection::Forbidden(Forbidden::default())),
    }
}

/// Checks a requirement against the request's [`AuthState`]. `Ok` carries the
/// session; `Err` the challenge response (with the typed reason in its extensions).
pub(crate) fn check(
    requirement: &Requirement,
    extensions: &http::Extensions,
    headers: &http::HeaderMap,
    uri: &http::Uri,
) -> Result<Session, Response<Bytes>> {
    let (Some(LayerHandle { layer, .. }), Some(state)) =
        (extensions.get::<LayerHandle>(), extensions.get::<AuthState>())
    else {
        return Err(missing_layer());
    };
    let rejection = match state {
        AuthState::Authenticated(session) => match judge(requirement, &layer.guards, session) {
            None => return Ok(session.clone()),
            Some(rejection) => rejection,
        },
        AuthState::Anonymous => Rejection::Unauthenticated,
        AuthState::Invalid(error) if error.kind() == AuthErrorKind::SessionRevoked => {
            Rejection::SessionEnded(error.clone())
        }
        AuthState::Invalid(error) if error.kind().is_server_fault() => Rejection::Unavailable(error.clone()),
        AuthState::Invalid(error) => Rejection::InvalidCredential(error.clone()),
    };
    Err(refuse_parts(layer, rejection, extensions, headers, uri))
}

fn refuse<B>(layer: &LayerState, rejection: Rejection, request: &Request<B>) -> Response<Bytes> {
    refuse_parts(layer, rejection, request.extensions(), request.headers(), request.uri())
}

/// Renders a refusal with the configured challenge, attaches the reason, and clears
/// the session cookies when the issuer ended the session.
fn refuse_parts(
    layer: &LayerState,
    rejection: Rejection,
    extensions: &http::Extensions,
    headers: &http::HeaderMap,
    uri: &http::Uri,
) -> Response<Bytes> {
    let config = &layer.guards;
    let source = extensions.get::<LayerHandle>().and_then(|h| h.source);
    // Inside `Router::nest` the URI lost its prefix; come back to the full path.
    #[cfg(feature = "axum")]
    let uri = extensions.get::<axum::extract::OriginalUri>().map_or(uri, |original| &original.0);
    let return_to = uri.path_and_query().map(http::uri::PathAndQuery::as_str).and_then(safe_return_to).unwrap_or("/");
    let context = ChallengeContext {
        realm: &layer.realm,
        source,
        accept: headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()),
        return_to,
        login_url: config.login_url.as_deref(),
        step_up_url: config.step_up_url.as_deref(),
    };
    let mut response = config.challenge.respond(&rejection, &context);
    tracing::debug!(?rejection, "guard refused the request");
    match &rejection {
        Rejection::SessionEnded(error) => {
            if source == Some(CredentialSource::Cookie) {
                layer.apply_cookies(response.headers_mut(), &CookieUpdate::Clear);
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

fn no_authority() -> Response<Bytes> {
    tracing::error!("a fresh() guard needs an authority on the SessionLayer");
    let mut response = Response::new(Bytes::from_static(
        b"tower-stepup: this route's guard is fresh() but the SessionLayer has no authority; configure one with `with_authority`",
    ));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

pub(crate) fn missing_layer() -> Response<Bytes> {
    tracing::error!("a tower-stepup guard ran without a SessionLayer in front of it");
    let mut response = Response::new(Bytes::from_static(
        b"tower-stepup: this route has a guard but no SessionLayer runs before it; add `.layer(session_layer)` to the Router",
    ));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.extensions_mut().insert(AuthError::new(AuthErrorKind::MissingLayer));
    response
}
